/**
 * Two owners of one shard, each with its own snapshot store (its own Redis connection, as two
 * processes have), against the shared Redis: the older owner's save arrives after the newer
 * owner took the shard over and saved (a slow owner's throttled save; a release's save during a
 * hand-over). The newer snapshot is kept and the late save refused with a warning naming the
 * state, the shard and both epochs; without the conditional save the late one replaced it and a
 * restart resumed the old owner's value.
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { type OwnerHost, StateOwner } from "../../src/runtime/states/owner.js";
import type { StateSnapshot } from "../../src/runtime/states/protocol.js";
import { redisSnapshotStore } from "../../src/runtime/states/redis-store.js";
import { captureLog } from "../transports/fixtures/log.js";
import { deleteKeys, REDIS_URL, withRedis } from "../transports/redis-server.js";
import { ShardBoard } from "./fixtures/generated/fan/replica.js";

const cluster = `stale-save-${process.pid}-${shortId()}`;
const SHARD = 3;
const KEY = `fan.${cluster}.state.${ShardBoard.descriptor.name}.v1.carts.${SHARD}`;
const STATE = `${ShardBoard.descriptor.name}.carts`;

const closing: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.allSettled(closing.splice(0).map((c) => c()));
  await deleteKeys(KEY);
});
afterAll(async () => {
  await deleteKeys(`fan.${cluster}*`).catch(() => undefined);
});

/** An owner of shard 3 of ShardBoard.carts with a store of its own, saving every `intervalMs`. */
function owner(app: string, intervalMs: number) {
  const { log, find } = captureLog();
  const store = redisSnapshotStore({ redis: REDIS_URL, intervalMs }, log);
  const host: OwnerHost = {
    cluster,
    log,
    heartbeatMs: 60_000,
    store,
    publish: async () => undefined,
    serves: () => true,
    ownerId: app,
  };
  const st = ShardBoard.descriptor.states.carts;
  if (st === undefined) throw new Error("ShardBoard has no carts state");
  const o = new StateOwner(ShardBoard.descriptor, st, host, SHARD);
  closing.push(() => store.close());
  return { o, store, refusals: () => find("a stale snapshot save") };
}

const stored = (): Promise<StateSnapshot | undefined> =>
  withRedis(async (r) => {
    const raw = await r.get(KEY);
    return raw === null ? undefined : (JSON.parse(raw) as StateSnapshot);
  });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("a snapshot save of an owner the shard moved away from", () => {
  it("arriving late (a slow owner's throttled save) does not replace the newer owner's snapshot", async () => {
    const old = owner("app-old", 800);
    await old.o.activate();
    old.o.set({ a: { n: 1, label: "old" } });
    old.o.patch({ b: { n: 2, label: "old" } });
    await sleep(5);
    // The shard moves: the new owner finds nothing saved yet (the old one is slow) and starts its epoch.
    const now = owner("app-new", 20);
    await now.o.activate();
    expect(now.o.epoch).toBeGreaterThan(old.o.epoch);
    now.o.set({ c: { n: 3, label: "new" } });
    await sleep(200);
    expect(await stored()).toMatchObject({ e: now.o.epoch, s: 1, v: { c: { n: 3, label: "new" } } });

    // The old owner's save comes now: refused, the new owner's snapshot kept.
    await sleep(800);
    const kept = await stored();
    expect(kept).toMatchObject({ e: now.o.epoch, s: 1, v: { c: { n: 3, label: "new" } } });
    const refused = old.refusals();
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({
      level: 40,
      key: KEY,
      state: STATE,
      shard: SHARD,
      epoch: old.o.epoch,
      seq: 2,
      storedEpoch: now.o.epoch,
      storedSeq: 1,
    });
    expect(refused[0]?.msg).toContain(`of ${STATE} shard ${SHARD} was refused`);

    // A restart resumes the newer snapshot.
    const next = owner("app-next", 20);
    await next.o.activate();
    expect(next.o.value()).toEqual({ c: { n: 3, label: "new" } });
    expect(next.o.epoch).toBeGreaterThan(now.o.epoch);
    expect(now.refusals()).toEqual([]);
  });

  it("written as the old owner releases it late (a hand-over it outlived) does not replace the newer one either", async () => {
    const old = owner("app-old", 10_000);
    await old.o.activate();
    old.o.set({ a: { n: 1, label: "old" } });
    await sleep(5);
    const now = owner("app-new", 20);
    await now.o.activate();
    now.o.set({ c: { n: 3, label: "new" } });
    now.o.patch({ d: { n: 4, label: "new" } });
    await sleep(200);
    // The old owner releases the shard now (its bound passed, its calls drained): the release's save.
    const t0 = Date.now();
    await old.o.release(true);
    // Refused at once: not an error, so not tried again.
    expect(Date.now() - t0).toBeLessThan(300);
    expect(await stored()).toMatchObject({ e: now.o.epoch, s: 2, v: { c: { n: 3, label: "new" }, d: { n: 4 } } });
    expect(old.refusals()).toHaveLength(1);
    expect(old.refusals()[0]).toMatchObject({ epoch: old.o.epoch, storedEpoch: now.o.epoch, shard: SHARD });
    // The newer owner's saves go on.
    now.o.patch({ e: { n: 5, label: "new" } });
    await sleep(200);
    expect(await stored()).toMatchObject({ e: now.o.epoch, s: 3 });
  });
});

describe("the conditional save's cost in Redis", () => {
  it("reads the stored snapshot's epoch and sequence without decoding its value: a save over a big snapshot costs what the first one did", async () => {
    const threshold = await withRedis(async (r) =>
      Number(((await r.config("GET", "slowlog-log-slower-than")) as string[])[1]),
    );
    expect(
      threshold,
      "Redis's slowlog must log commands slower than 20 ms for this test to see them",
    ).toBeGreaterThanOrEqual(0);
    expect(threshold).toBeLessThanOrEqual(20_000);
    const { log } = captureLog();
    const store = redisSnapshotStore({ redis: REDIS_URL, intervalMs: 10_000 }, log);
    closing.push(() => store.close());
    // 1.5 million small numbers (10 MB of JSON): slow to decode in Lua, no slower to copy than any 10 MB.
    const items = Array.from({ length: 1_500_000 }, (_, i) => i % 1000);
    const e = Date.now();
    const since = Math.floor(Date.now() / 1000);
    // The second save's script finds the first in Redis.
    for (const s of [1, 2]) {
      store.save(KEY, () => ({ e, s, v: { items } }), { state: STATE, shard: SHARD });
      await store.flush?.(KEY);
    }
    expect(await stored()).toMatchObject({ e, s: 2 });
    const slow = await withRedis(
      async (r) => (await r.call("SLOWLOG", "GET", "128")) as [number, number, number, string[]][],
    );
    // Each save's time in Redis (not in the slowlog: under its threshold); the newest first.
    const [second = 0, first = 0] = slow
      .filter(([, at, , args]) => at >= since && args.includes(KEY))
      .map(([, , us]) => Math.round(us / 1000));
    expect(second - first, `the second save blocked Redis ${second} ms, the first ${first} ms`).toBeLessThan(100);
  });
});
