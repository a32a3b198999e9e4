/**
 * Load shedding counts the calls and pushes an instance holds while the `onShards` gaining their
 * shard runs: they are in flight (a drain waits for them), so past `maxInFlight` a new call is
 * refused with RESOURCE_EXHAUSTED (load shed) as with any other work in flight, and a sharded push
 * that would be held is refused so too (the producer sends it again), instead of piling up on an
 * instance whose hook does not resolve. One process, over http.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { App } from "../../src/runtime/index.js";
import { shardOfKey } from "../../src/runtime/call/shards.js";
import { MemoryRegistry } from "../../src/runtime/discovery/memory.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { until } from "../discovery/helpers.js";
import { Store } from "./fixtures/generated/test/shards.js";
import { StoreImpl } from "./fixtures/store.js";
import { aGainingB, OWNERS_OF_A_AND_B } from "./helpers.js";

const apps: App[] = [];
afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
});

/** A call's or push's outcome: "ok", or its code and message. */
function outcome(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => "ok",
    (e: { code: string; message: string }) => `${e.code}: ${e.message}`,
  );
}

/**
 * Servers A (`maxInFlight: 3`) and B and a client over http; B stops, and A's `onShards` gaining
 * B's shards runs until `release` is called. `held`: keys of B's old shards (their calls and
 * pushes wait on A); `ready`: a key A owned all along (served at once). `stocked`: the keys of
 * the pushes A handled.
 */
async function gaining() {
  const cluster = `held-shed-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const opts = { cluster, discovery: new MemoryRegistry(), logger: silentLogger(), transports: { http: {} } };
  const keys = Array.from({ length: 200 }, (_, i) => `shed-${i}`);
  const held = keys.filter((k) => OWNERS_OF_A_AND_B[shardOfKey([k], 16)] === "B");
  const ready = keys.find((k) => OWNERS_OF_A_AND_B[shardOfKey([k], 16)] === "A") as string;
  const impl = new StoreImpl();
  const stocked: string[] = [];
  impl.onStock = (w) => void stocked.push(w.storeId);
  // B with the same bound: it stops before any call.
  const { a, caller, release } = await aGainingB(opts, impl, apps, { maxInFlight: 3 });
  const client = caller.client(Store, { transport: "http" });
  return { a, client, held, ready, stocked, release };
}

describe("held calls and pushes count toward maxInFlight (one process, http)", () => {
  it("3 held calls fill the bound: a 4th call, held or not, is shed with RESOURCE_EXHAUSTED; the held ones are served once the hook resolves", async () => {
    const { a, client, held, ready, release } = await gaining();
    const waiting = held.slice(0, 3).map((storeId) => outcome(client.store({ storeId }, { timeout: 10_000 })));
    await arrive();
    const shed = "RESOURCE_EXHAUSTED: test.shards.Store A is at its bound of 3 calls in flight (load shed)";
    expect(await outcome(client.store({ storeId: held[3] as string }))).toBe(shed);
    expect(await outcome(client.store({ storeId: ready }))).toBe(shed);
    expect(a.counters.callsShed).toBe(2);
    release();
    expect(await Promise.all(waiting)).toEqual(["ok", "ok", "ok"]);
  });

  it("3 held pushes fill the bound: a call is shed, and a push that would be held too is refused as load shed (sent again, then failed) instead of held; the held ones are handled once the hook resolves", async () => {
    const { a, client, held, ready, stocked, release } = await gaining();
    const waiting = held
      .slice(0, 3)
      .map((storeId) => outcome(client.stock({ storeId, count: 1 }, { timeout: 10_000 })));
    await arrive();
    // Before: held pushes were not in flight, so nothing was shed and every push was held.
    expect(await outcome(client.store({ storeId: ready }))).toBe(
      "RESOURCE_EXHAUSTED: test.shards.Store A is at its bound of 3 calls in flight (load shed)",
    );
    const fourth = held[3] as string;
    expect(await outcome(client.stock({ storeId: fourth, count: 1 }, { timeout: 10_000 }))).toMatch(
      /^UNAVAILABLE: .*push not acknowledged: test\.shards\.Store A is at its bound of 3 calls in flight \(load shed\)/,
    );
    // The producer sent it 5 times (the transport's push attempts), each shed.
    expect(a.counters.callsShed).toBe(6);
    release();
    expect(await Promise.all(waiting)).toEqual(["ok", "ok", "ok"]);
    expect(stocked.sort()).toEqual(held.slice(0, 3).sort());
    // Once the hook resolved the same push is handled.
    expect(await outcome(client.stock({ storeId: fourth, count: 1 }))).toBe("ok");
    expect(stocked).toContain(fourth);
  });

  it("a push shed while held shards wait is handled when sent again after the hook resolved (the producer's resends)", async () => {
    const { a, client, held, stocked, release } = await gaining();
    const waiting = held
      .slice(0, 3)
      .map((storeId) => outcome(client.stock({ storeId, count: 1 }, { timeout: 10_000 })));
    await arrive();
    const fourth = outcome(client.stock({ storeId: held[3] as string, count: 1 }, { timeout: 10_000 }));
    await until("the 4th push shed", () => a.counters.callsShed > 0, 3000).catch(() => undefined);
    release();
    expect(await Promise.all([...waiting, fourth])).toEqual(["ok", "ok", "ok", "ok"]);
    expect(stocked.sort()).toEqual(held.slice(0, 4).sort());
  });
});

/** Time for the calls or pushes just made to reach A and be held there. */
function arrive(): Promise<void> {
  return new Promise((r) => setTimeout(r, 500));
}
