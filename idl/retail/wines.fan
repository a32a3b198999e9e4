/// Wine catalogue of the retail domain.
package retail.wines

import retail.common
import integration.api as api

version "2.1.0"

/// The colour of a wine.
enum Color { RED = 1, WHITE = 2, ROSE = 3 }

/// How a wine is sold; values are implicit (0, 1, 2).
enum Unit { BOTTLE, CASE, MAGNUM }

/// One wine in a store's catalogue.
struct Wine {
  id: uuid
  name: string @maxLength(200)
  color: Color
  unit: Unit = BOTTLE
  vintage?: int @min(1800) @max(2100)
  price: retail.common.Money
  tags: list<string> = [] @maxItems(32)
  stock: map<string, int>
  byColor?: map<Color, int>
  byYear?: map<int, string>
  createdAt: timestamp
  /// Label scan, at most 1 MiB.
  label?: bytes @maxLength(1048576)
  barcode?: int64 @min(0)
  abv: float = 12.5 @min(0.0) @max(100.0)
  decanting?: duration @max(4h)
  extra?: json
  /// `class` and `delete` are reserved in TypeScript; the generated code still compiles.
  class?: string
  delete?: bool
}

/// Filters for `list`; every field optional.
struct WineFilter {
  color?: Color
  minPrice?: decimal @min(0)
  search?: string @minLength(1)
  page?: retail.common.Page
}

struct CardPayment { last4: string @pattern("^[0-9]{4}$"); brand: string }
struct CashPayment { tendered: retail.common.Money }

/// A tagged union: the TypeScript type is a discriminated union on `kind`.
union Payment {
  card: CardPayment
  cash: CashPayment
  voucher: string
}

/// Thrown by methods that list it in `throws`.
error WineNotFound @code(NOT_FOUND) {
  inventoryId: string
}

/// The default code of an error is FAILED_PRECONDITION.
error OutOfStock {
  inventoryId: string
  available: int
}

/// The public face of the wine catalogue.
@version("2.1.0")
@transports(http, amqp, redis, zmq)
@shards(64)
service PublicWines {
  depends api.IntegrationApi "^1.0"
  depends soft Lightspeed "^2"

  config {
    pageSize: int = 50 @min(1)
    /// Never logged.
    apiKey: string @secret
    cacheTtl: duration = 30s
  }

  /// Fetch one wine of a store.
  @route("/store/{storeId}/item/{inventoryId}")
  @idempotent
  @shard(storeId)
  @timeout(2s)
  rpc get(storeId: string, inventoryId: string): Wine throws WineNotFound

  /// List a store's wines.
  @idempotent @retry(3)
  rpc list(storeId: string, filter?: WineFilter): list<Wine>

  @since("2.1.0")
  @shard(storeId, wine.id)
  rpc create(storeId: string, wine: Wine): Wine throws retail.common.NotAuthorized

  @deprecated("use create")
  rpc add(storeId: string, wine: Wine): Wine

  /// Sell a bottle; fails when none is left.
  rpc sell(storeId: string, inventoryId: string, payment: Payment, quantity: int = 1 @min(1)): void
    throws WineNotFound, OutOfStock

  /// Drop cached entries of a store.
  @ttl(30s)
  push invalidate(storeId: string)

  /// A wine was created or changed.
  event wineChanged(wine: Wine)

  /// Every instance of every subscriber drops its cache.
  @broadcast
  event cacheFlush()

  state inventory: map<string, Wine> @delta
  state settings: StoreSettings @full
}

/// Per-store settings, replicated to watchers in full.
struct StoreSettings {
  currency: string = "EUR"
  open: bool = true
}

/// A soft dependency of PublicWines: its absence never blocks start.
@version("2.0.3")
@transports(http)
service Lightspeed {
  /// A method named like a keyword: keywords are contextual.
  rpc state(service: string, event?: string): string
}
