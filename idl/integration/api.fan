/// The integration layer between the catalogue and external point-of-sale systems.
package integration.api

import retail.common as common
import retail.wines // an import cycle between packages is allowed

version "1.4.0"

struct SyncStatus {
  storeId: string
  lastSync?: timestamp
  pending: int = 0
  errors: list<string> = []
}

error SyncFailed @code(UNAVAILABLE) { storeId: string; reason: string }

/// Talks to point-of-sale systems on behalf of the catalogue.
@transports(http, amqp)
service IntegrationApi {
  rpc ping(): string
  @idempotent
  rpc status(storeId: string): SyncStatus throws SyncFailed, common.NotAuthorized
  push resync(storeId: string, full: bool = false)
  @broadcast
  event storeSynced(status: SyncStatus)
}

/// The one active synchroniser: subscribes to catalogue changes and pushes them out.
@unique
@transports(amqp, redis)
service LightspeedSync {
  depends IntegrationApi "^1"
  on retail.wines.PublicWines.wineChanged
  on retail.wines.PublicWines.cacheFlush
  on IntegrationApi.storeSynced
  rpc ping(): string
}
