/**
 * `npm run bench -- sharding`: what routing by shard costs on the call path. Four in-process
 * instances of `test.shards.Store` (local transport, unserialised); an unsharded call (the
 * client's strategy picks) against a `@shard` call (key tuple → FNV-1a → owner table → the
 * owner), and the key hash alone.
 */
import { createApp } from "../src/runtime/index.js";
import { shardOfKey } from "../src/runtime/call/shards.js";
import { silentLogger } from "../src/runtime/telemetry/logging.js";
import { Store } from "../test/sharding/fixtures/generated/test/shards.js";
import { StoreImpl } from "../test/sharding/fixtures/store.js";
import { type BenchRow, compare } from "./lib.js";

export default async function run(): Promise<BenchRow[]> {
  const app = createApp({ logger: silentLogger() });
  for (let i = 0; i < 4; i++) app.serve(Store, new StoreImpl(), { instanceId: `Store-${i}` });
  await app.start();
  const store = app.client(Store);
  let n = 0;
  try {
    return await compare(
      [
        { name: "unsharded call (any)", op: () => store.any({ n: n++ }) },
        { name: "sharded call (store, 1-part key)", op: () => store.store({ storeId: `store-${n++ & 1023}` }) },
        {
          name: "sharded call (item, 2-part key)",
          op: () => store.item({ storeId: `store-${n & 1023}`, itemId: `item-${n++ & 255}` }),
        },
        { name: "key hash alone (2 parts, mod 16)", op: () => shardOfKey([`store-${n & 1023}`, `item-${n++ & 255}`], 16) },
      ],
      // In-process calls: timed in batches of 100 (bench/lib.ts), p99 from single calls.
      { durationMs: 500, rounds: 3, warmupOps: 2000, batch: 100 },
    );
  } finally {
    await app.stop();
  }
}
