/**
 * A shard's owner whose activation is still loading the saved snapshot (a slow Redis) when the
 * shard is released again (ownership moved on at once): it must not start publishing the shard
 * when the load completes (it did: a second owner of the shard, heartbeating an epoch of its
 * own that watchers followed). Two activations at once share one epoch; one after a release
 * (the shard back again) publishes. The store is the Redis one against the shared Redis, its
 * loads held back for the test.
 */
import { afterAll, describe, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { type OwnerHost, type SnapshotStore, StateOwner } from "../../src/runtime/states/owner.js";
import type { StateMessage } from "../../src/runtime/states/protocol.js";
import { redisSnapshotStore } from "../../src/runtime/states/redis-store.js";
import { captureLog } from "../transports/fixtures/log.js";
import { deleteKeys, REDIS_URL, withRedis } from "../transports/redis-server.js";
import { ShardBoard } from "./fixtures/generated/fan/replica.js";

const cluster = `activate-release-${process.pid}-${shortId()}`;
const SHARD = 5;
const KEY = `fan.${cluster}.state.${ShardBoard.descriptor.name}.v1.carts.${SHARD}`;
const saved = { e: 1000, s: 4, v: { a: { n: 1, label: "saved" } }, o: "app-before (1.0.0)" };

afterAll(async () => {
  await deleteKeys(`fan.${cluster}*`).catch(() => undefined);
});

/** An owner of shard 5 whose store's loads take `loadMs`; `sent` holds what it published. */
function owner(loadMs: number) {
  const { log } = captureLog();
  const redis = redisSnapshotStore({ redis: REDIS_URL, intervalMs: 20 }, log);
  const store: SnapshotStore = {
    ...redis,
    load: async (key) => {
      await new Promise((r) => setTimeout(r, loadMs));
      return redis.load(key);
    },
  };
  const sent: StateMessage[] = [];
  const host: OwnerHost = {
    cluster,
    log,
    heartbeatMs: 60_000,
    store,
    publish: async (_s, env) => void sent.push(env.payload as StateMessage),
    serves: () => true,
    ownerId: "app-here",
  };
  const st = ShardBoard.descriptor.states.carts;
  if (st === undefined) throw new Error("ShardBoard has no carts state");
  return { o: new StateOwner(ShardBoard.descriptor, st, host, SHARD), sent, close: () => redis.close() };
}

describe("a shard released while its activation loads the saved snapshot", () => {
  it("is not published when the load completes; activated again, it is, once", async () => {
    await withRedis((r) => r.set(KEY, JSON.stringify(saved)));
    const { o, sent, close } = owner(300);
    try {
      const activating = o.activate();
      await new Promise((r) => setTimeout(r, 50));
      await o.release();
      await activating;
      expect(o.active).toBe(false);
      expect(sent, "nothing published for a shard released before it was published").toEqual([]);
      expect(o.value()).toBeUndefined();

      // Two activations at once (the ownership hook and a first use of the shard): one epoch, one heartbeat.
      await Promise.all([o.activate(), o.activate()]);
      expect(o.active).toBe(true);
      expect(o.value()).toEqual(saved.v);
      expect(o.seq).toBe(saved.s);
      expect(sent).toEqual([{ k: "h", e: o.epoch, s: saved.s, i: 60_000, o: "app-here (1.0.0)" }]);
    } finally {
      await close();
    }
  });

  it("released and gained again while the first load runs: published once, by the second activation", async () => {
    await withRedis((r) => r.set(KEY, JSON.stringify(saved)));
    const { o, sent, close } = owner(300);
    try {
      const first = o.activate();
      await new Promise((r) => setTimeout(r, 50));
      await o.release();
      const second = o.activate();
      await Promise.all([first, second]);
      expect(o.active).toBe(true);
      expect(o.value()).toEqual(saved.v);
      expect(sent.filter((m) => m.k === "h")).toHaveLength(1);
    } finally {
      await close();
    }
  });
});
