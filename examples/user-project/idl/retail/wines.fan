package retail.wines
import integration.api as api

version "2.1.0"

struct Wine { id: string, name: string @maxLength(200), vintage?: int @min(1800) }
error WineNotFound @code(NOT_FOUND) { inventoryId: string }

service PublicWines {
  depends api.IntegrationApi "^1.0" // start waits until it is discoverable
  config { pageSize: int = 50 @min(1), apiKey: string @secret }

  @route("GET /store/{storeId}/item/{inventoryId}") @idempotent @timeout(2s) // GET needs @idempotent
  rpc get(storeId: string, inventoryId: string): Wine throws WineNotFound
  @ttl(30s) push invalidate(storeId: string) // at-least-once, acknowledged after the handler
  event wineChanged(wine: Wine)
  state inventory: map<string, Wine> @delta
}
