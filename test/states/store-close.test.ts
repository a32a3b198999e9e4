/**
 * Closing the Redis snapshot store when Redis takes the connection and never answers (a hung
 * node, a proxy whose backend is gone): its last saves are waited for a bounded time, then the
 * store warns, naming the snapshots not saved, and disconnects. Before, close waited for the
 * save, then for QUIT's answer, for ever, and so did the App's stop. Against a real Redis the
 * same close saves and quits as before.
 */
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { redisSnapshotStore } from "../../src/runtime/states/redis-store.js";
import { captureLog } from "../transports/fixtures/log.js";
import { deleteKeys, REDIS_URL, withRedis } from "../transports/redis-server.js";

const key = `fan.store-close-${process.pid}-${shortId()}.state.S.v1.s`;
afterAll(() => deleteKeys(key));

const snapshot = { e: 1, s: 1, v: { n: 1 } };

describe("closing the redis snapshot store", () => {
  it("past its bound, warns and disconnects from a Redis that never answers", async () => {
    // Takes connections, reads what ioredis sends, answers nothing.
    const sockets = new Set<Socket>();
    const silent: Server = createServer((s) => {
      sockets.add(s);
      s.on("data", () => undefined);
      s.on("error", () => undefined);
    });
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as { port: number }).port;
    const { log, find } = captureLog();
    const store = redisSnapshotStore({ redis: `redis://127.0.0.1:${port}`, intervalMs: 50 }, log);
    try {
      store.save("k1", () => snapshot, { state: "S.s" });
      const t0 = Date.now();
      await store.close();
      const took = Date.now() - t0;
      expect(took).toBeGreaterThanOrEqual(2900);
      expect(took).toBeLessThan(10_000);
      const warned = find("state snapshot(s) on close did not finish");
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatchObject({ keys: ["k1"] });
      // Disconnected: the server sees its connection closed.
      await expect.poll(() => [...sockets].every((s) => s.destroyed || s.readableEnded), { timeout: 5000 }).toBe(true);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  }, 20_000);

  it("with a Redis that answers, saves the last snapshot and closes at once, with no warning", async () => {
    const { log, warnings } = captureLog();
    const store = redisSnapshotStore({ redis: REDIS_URL, intervalMs: 60_000 }, log);
    store.save(key, () => snapshot, { state: "S.s" });
    const t0 = Date.now();
    await store.close();
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(warnings()).toEqual([]);
    expect(await withRedis((r) => r.get(key))).toBe(JSON.stringify(snapshot));
  });
});
