package integration.api

version "1.0.0"

struct SyncStatus { storeId: string, pending: int = 0, errors: list<string> = [] }

service IntegrationApi {
  rpc status(storeId: string): SyncStatus
}
