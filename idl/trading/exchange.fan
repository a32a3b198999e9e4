/// A small exchange: an order book replicated as deltas and market prices in full.
package trading

import retail.common
import integration.api

version "1.0.0"

enum Side { BUY, SELL }

struct Order {
  id: uuid
  symbol: string @pattern("^[A-Z]{1,6}$")
  side: Side
  price: decimal @min(0)
  quantity: int64 @min(1)
  placedAt: timestamp
}

struct Level { price: decimal, quantity: int64 }

/// One side per key: `bids` and `asks`, best first.
struct OrderBook {
  bids: list<Level> = []
  asks: list<Level> = []
  sequence: int64 = 0
}

struct MarketPrice {
  symbol: string
  last: retail.common.Money
  at: timestamp
}

error OrderRejected @code(INVALID_ARGUMENT) { reason: string }

@transports(zmq, redis, amqp)
@shards(8)
service Exchange {
  depends soft integration.api.IntegrationApi "^1"

  config {
    symbols: list<string> = ["WINE", "GRAPE"]
    maxOrderQuantity: int64 = 1000000
    tick: duration = 250ms
  }

  @shard(order.symbol)
  @timeout(500ms)
  rpc place(order: Order): Order throws OrderRejected
  @idempotent @retry(2)
  rpc cancel(orderId: uuid): bool
  @ttl(5s)
  push quote(symbol: string, price: retail.common.Money)
  event traded(symbol: string, price: decimal, quantity: int64)

  /// The book, replicated as JSON Merge Patches with sequence numbers.
  state book: map<string, OrderBook> @delta
  /// The last price per symbol, replaced on every update.
  state prices: map<string, MarketPrice> @full
}
