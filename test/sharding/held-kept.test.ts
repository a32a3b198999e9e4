/**
 * A sharded push from a broker's queue that its instance refuses for its own state, here at the
 * share of the push window held work may take while an `onShards` runs, is kept by the consumer
 * and offered again (kept-push.ts), not returned to the broker as a failed delivery: refused more
 * times than `maxDeliveries` (2), it is not dead-lettered, and once the hook resolves it is
 * handled, once. One process per broker (amqp, redis, nats), `pushPrefetch: 4` (three held at
 * most), an `onShards` that waits until released. The pushes come from a producer whose IDL has
 * no `@shard` on `stock` (as an older one's), so they wait in the service's shared push queue, and
 * the instance's guard, not the producer, decides.
 */
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { App } from "../../src/runtime/index.js";
import { HOLD_LIMITS } from "../../src/runtime/call/ownership.js";
import { shardOfKey } from "../../src/runtime/call/shards.js";
import { MemoryRegistry } from "../../src/runtime/discovery/memory.js";
import { token } from "../../src/runtime/transports/nats/names.js";
import { until } from "../discovery/helpers.js";
import { aGainingB, OWNERS_OF_A_AND_B, tearDown } from "./helpers.js";
import { AMQP_URL } from "../transports/amqp-broker.js";
import { deleteStreams, NATS_URL } from "../transports/nats-server.js";
import { REDIS_URL } from "../transports/redis-server.js";
import { Store } from "./fixtures/generated/test/shards.js";
import { StoreImpl } from "./fixtures/store.js";

const brokerOpts = { pushPrefetch: 4, maxDeliveries: 2, retryDelayMs: 20 };
const transports = {
  amqp: { amqp: { url: AMQP_URL, ...brokerOpts } },
  redis: { redis: { url: REDIS_URL, ...brokerOpts } },
  nats: { nats: { url: NATS_URL, ...brokerOpts } },
} as const;

/** Store as a producer built on an IDL without `@shard` on `stock` sees it: its pushes go to the shared queue. */
function unshardedStock(): typeof Store {
  const { shard: _, ...stock } = Store.descriptor.methods.stock as NonNullable<
    (typeof Store.descriptor.methods)["stock"]
  >;
  return { ...Store, descriptor: { ...Store.descriptor, methods: { ...Store.descriptor.methods, stock } } };
}

describe.each(["amqp", "redis", "nats"] as const)(
  "a push refused at the window bound is kept, not dead-lettered (%s)",
  (via) => {
    const apps: App[] = [];
    const clusters: string[] = [];
    afterEach(async () => {
      const stopping = apps.splice(0);
      for (const c of clusters.splice(0)) {
        await tearDown(c, [], stopping);
        await deleteStreams(`fan_${token(c)}_`).catch(() => undefined);
      }
    });

    /** A and B on `via`, A gaining B's shards (aGainingB); `keys` are B's, `refusals` counts log lines with `text`. */
    async function gaining() {
      const lines: string[] = [];
      const logger = pino({ level: "debug" }, { write: (l: string) => void lines.push(l) });
      const cluster = `held-kept-${via}-${process.pid}-${Date.now()}`;
      clusters.push(cluster);
      const opts = { cluster, discovery: new MemoryRegistry(), logger, transports: transports[via] };
      const keys = Array.from({ length: 200 }, (_, i) => `kept-${i}`).filter(
        (k) => OWNERS_OF_A_AND_B[shardOfKey([k], 16)] === "B",
      ) as [string, string, string, string];
      const impl = new StoreImpl();
      const stocked: string[] = [];
      impl.onStock = (w) => void stocked.push(w.storeId);
      const { caller, release, fail } = await aGainingB(opts, impl, apps, { transports: [via] });
      const producer = caller.client(unshardedStock(), { transport: via });
      const refusals = (text: string): number => lines.filter((l) => l.includes(text)).length;
      const deadLettered = (): string[] => lines.filter((l) => l.includes("dead-lettered"));
      return { keys, stocked, producer, release, fail, refusals, deadLettered };
    }

    it("refused at the window bound more times than maxDeliveries while A's onShards runs, it is handled once after the hook resolves, and nothing is dead-lettered", async () => {
      const { keys, stocked, producer, release, refusals, deadLettered } = await gaining();
      try {
        // Three pushes for shards A is gaining are held (three quarters of pushPrefetch 4); the
        // fourth comes once the hook has run past windowAfterMs and is refused at the bound.
        const [first, second, third, fourth] = keys;
        for (const storeId of [first, second, third]) await producer.stock({ storeId, count: 1 }, { timeout: 30_000 });
        await new Promise((r) => setTimeout(r, HOLD_LIMITS.windowAfterMs + 300));
        await producer.stock({ storeId: fourth, count: 1 }, { timeout: 30_000 });
        // Each refusal is logged: kept (debug), or before this change failed (info) and dead-lettered (warn).
        const atBound = "its onShards hook is still running";
        await until("refused more often than maxDeliveries", () => refusals(atBound) > 4, 10_000).catch(
          () => undefined,
        );
        expect(refusals(atBound)).toBeGreaterThan(brokerOpts.maxDeliveries);
        expect(stocked).toEqual([]);
        release();
        await until("all four pushes handled", () => stocked.length >= 4, 10_000).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 500));
        expect(stocked.sort()).toEqual([first, second, third, fourth].sort());
        expect(deadLettered()).toEqual([]);
      } finally {
        release();
      }
    }, 40_000);

    it("refused because the onShards gaining its shard failed, more times than maxDeliveries, it is handled once the hook, called again, resolves; nothing is dead-lettered", async () => {
      const { keys, stocked, producer, fail, refusals, deadLettered } = await gaining();
      const key = keys[0];
      await producer.stock({ storeId: key, count: 1 }, { timeout: 30_000 });
      await new Promise((r) => setTimeout(r, 300));
      // Held until the hook throws, then refused (UNAVAILABLE, hook failed) until it is called again after 1 s.
      fail(new Error("loading failed"));
      await until("the push handled", () => stocked.length >= 1, 10_000).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 500));
      expect(refusals("its onShards hook failed on gaining it")).toBeGreaterThan(brokerOpts.maxDeliveries);
      expect(stocked).toEqual([key]);
      expect(deadLettered()).toEqual([]);
    }, 40_000);
  },
);
