package demo.rpc

version "1.2.0"

struct Item { id: uuid, name: string }
struct Query { text: string; page?: int = 0 }
error Missing @code(NOT_FOUND) { id: string }
error Denied @code(PERMISSION_DENIED) {}

/// Every method decorator.
service Store {
  /// Fetch one item.
  @route("/items/{id}")
  @timeout(250ms)
  rpc get(id: uuid): Item throws Missing

  @idempotent @retry(2)
  @shard(query.text)
  rpc search(query: Query, limit: int = 10 @min(1) @max(100)): list<Item>

  @since("1.1.0")
  rpc put(item: Item): void throws Missing, Denied

  @deprecated("use put")
  @route("PATCH /items")
  rpc save(item: Item): Item

  rpc count(): int

  @ttl(5s)
  push touch(id: uuid, at?: timestamp)

  push reindex()
}
