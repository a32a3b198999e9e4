/**
 * Calls held while an `onShards` runs keep their slot of the transport's window (redis
 * `maxInFlight`, amqp `rpcPrefetch`): once the hook has run `windowAfterMs` (3 s), held work may
 * take three quarters of it at most, and a call that would be held past that is refused (UNAVAILABLE naming the shard and its running hook), so
 * unsharded calls and calls for shards the instance already had are still answered, as
 * docs/sharding.md says, even while a hook never resolves. One process, a window of 4.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { App } from "../../src/runtime/index.js";
import { HOLD_LIMITS } from "../../src/runtime/call/ownership.js";
import { shardOfKey } from "../../src/runtime/call/shards.js";
import { MemoryRegistry } from "../../src/runtime/discovery/memory.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { deleteKeys, REDIS_URL } from "../transports/redis-server.js";
import { AMQP_URL, deleteByPrefix } from "../transports/amqp-broker.js";
import { Store } from "./fixtures/generated/test/shards.js";
import { StoreImpl } from "./fixtures/store.js";
import { aGainingB, OWNERS_OF_A_AND_B } from "./helpers.js";

const windowOf4 = {
  redis: { redis: { url: REDIS_URL, maxInFlight: 4 } },
  amqp: { amqp: { url: AMQP_URL, rpcPrefetch: 4 } },
} as const;

/** A call's outcome: the instance that answered, or the error's code and message. */
function outcome(p: Promise<{ instanceId: string }>): Promise<string> {
  return p.then(
    (w) => w.instanceId,
    (e: { code: string; message: string }) => `${e.code} ${e.message}`,
  );
}

describe.each(["redis", "amqp"] as const)("held calls take part of the transport's window (%s, one process)", (via) => {
  const apps: App[] = [];
  const clusters: string[] = [];
  afterEach(async () => {
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
    for (const c of clusters.splice(0)) {
      await deleteKeys(`fan.${c}.*`).catch(() => undefined);
      await deleteByPrefix(`fan.${c}`).catch(() => undefined);
    }
  });

  it("calls for a shard A already had, and unsharded calls, are answered while A's onShards gaining other shards runs; held calls past 3 of 4 are refused", async () => {
    const cluster = `held-window-${via}-${process.pid}-${Date.now()}`;
    clusters.push(cluster);
    const opts = { cluster, discovery: new MemoryRegistry(), logger: silentLogger(), transports: windowOf4[via] };
    const impl = new StoreImpl();
    const keys = Array.from({ length: 200 }, (_, i) => `window-${i}`);
    const bKey = keys.find((k) => OWNERS_OF_A_AND_B[shardOfKey([k], 16)] === "B") as string;
    const aKey = keys.find((k) => OWNERS_OF_A_AND_B[shardOfKey([k], 16)] === "A") as string;
    const { caller, release } = await aGainingB(opts, impl, apps, { transports: [via] });
    try {
      const client = caller.client(Store, { transport: via });
      // Four calls for a shard A is gaining, the fourth once the hook has run past windowAfterMs
      // (3 s; until then a burst may fill the window): three are held, the fourth is refused.
      const held = Array.from({ length: 3 }, () => outcome(client.store({ storeId: bKey }, { timeout: 8000 })));
      await new Promise((r) => setTimeout(r, HOLD_LIMITS.windowAfterMs + 300));
      held.push(outcome(client.store({ storeId: bKey }, { timeout: 3000 })));
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      // Not held by the gate: a shard A owned all along, and an unsharded method.
      const [own, any] = await Promise.all([
        outcome(client.store({ storeId: aKey }, { timeout: 1500 })),
        outcome(client.any({ n: 1 }, { timeout: 1500 })),
      ]);
      const took = Date.now() - t0;
      release();
      const answers = await Promise.all(held);
      expect({ own, any }).toEqual({ own: "A", any: "A" });
      expect(took).toBeLessThan(1000);
      expect(answers.filter((x) => x === "A")).toHaveLength(3);
      const refused = answers.find((x) => x !== "A") as string;
      const shard = shardOfKey([bKey], 16);
      expect(refused).toMatch(
        new RegExp(
          `^UNAVAILABLE shard ${shard} of test\\.shards\\.Store is not ready on A: its onShards hook is still running`,
        ),
      );
      expect(refused).toContain(via === "redis" ? "redis maxInFlight 4" : "amqp rpcPrefetch 4");
    } finally {
      release();
    }
  }, 30_000);
});
