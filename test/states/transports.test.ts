/**
 * Replicated states between processes over every network transport: an owner process and
 * watcher processes (test/states/fixtures/node.ts), discovery on the shared etcd, each run in
 * a cluster of its own. Late joiners, 10,000 deltas in order, invalid patches, owner restart
 * with a persisted snapshot, and `@unique` failover, per transport.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import { deleteStreams } from "../transports/nats-server.js";
import { REDIS_URL, deleteKeys } from "../transports/redis-server.js";
import { Board, HttpBoard } from "./fixtures/generated/fan/replica.js";
import { casesWithHttp, Node, converged, type TransportCase, until } from "./processes.js";

const CASES: readonly TransportCase[] = casesWithHttp();

const nodes: Node[] = [];
afterEach(async () => {
  await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));
});

for (const c of CASES) {
  describe(`replicated states over ${c.name}, owner and watchers in separate processes`, () => {
    let cluster: string;
    const env = (extra: Record<string, string> = {}): Record<string, string> => ({
      FAN_STATES_CLUSTER: cluster,
      FAN_STATES_TRANSPORTS: JSON.stringify(c.transports()),
      ...extra,
    });
    const start = async (role: "owner" | "watcher", extra?: Record<string, string>): Promise<Node> => {
      const n = await Node.start(role, env(extra));
      nodes.push(n);
      return n;
    };

    beforeAll(() => {
      cluster = `states-${c.name}-${process.pid}-${shortId()}`;
    });
    afterAll(async () => {
      await deleteKeys(`fan.${cluster}*`).catch(() => undefined);
      if (c.name === "nats") await deleteStreams(`fan_${cluster}`).catch(() => undefined);
    });

    it("a late joiner gets the current value", async () => {
      const owner = await start("owner");
      await owner.send("deltas", { n: 50, keys: 20 });
      const late = await start("watcher");
      await converged(late, owner, "late joiner in sequence");
      expect((await late.report()).value).toEqual((await owner.report()).value);
    }, 60_000);

    it("10,000 deltas arrive in order and every replica equals the owner", async () => {
      // The runtime's default heartbeat (1 s; the suite runs at 200 ms): a loaded runner that
      // starves the owner or the broker for 600 ms mid-burst made a watcher take the owner for
      // absent and resync, which a snapshot covers correctly but the patch count below refuses.
      const beat = { FAN_STATES_HEARTBEAT_MS: "1000" };
      const owner = await start("owner", beat);
      const watchers = [await start("watcher", beat), await start("watcher", beat)];
      for (const w of watchers)
        await until(
          "watcher live",
          () => w.report(),
          (r) => r.status === "live",
        );
      await owner.send("deltas", { n: 10_000, keys: 500 });
      const want = await owner.report();
      expect(want.seq).toBeGreaterThanOrEqual(10_000);
      for (const w of watchers) {
        const got = await converged(w, owner, "replica caught up");
        expect(got.value).toEqual(want.value);
        expect(got.violations).toBe(0);
        // Delivered, not skipped over by snapshots: brokers lose nothing here; zmq PUB/SUB may
        // drop at its high-water mark in a burst, and the replica takes a snapshot instead.
        if (c.name !== "zmq") expect(got.patches).toBeGreaterThan(9_000);
        else expect(got.patches).toBeGreaterThan(0);
      }
    }, 180_000);

    it("an invalid patch is rejected at the owner and never reaches a watcher", async () => {
      const owner = await start("owner");
      const watcher = await start("watcher");
      await owner.send("patch", { patch: { a: { n: 1, label: "one" } } });
      await expect(owner.send("patch", { patch: { bad: { n: "x", label: "y" } } })).rejects.toThrow(/invalid|int/i);
      await expect(owner.send("patch", { patch: { a: { label: null } } })).rejects.toThrow(/required/);
      await owner.send("patch", { patch: { b: { n: 2, label: "two" } } });
      const got = await converged(watcher, owner, "watcher after invalid patches");
      expect(got.value).toEqual({ a: { n: 1, label: "one" }, b: { n: 2, label: "two" } });
      expect(got.seq).toBe(2);
    }, 60_000);

    it("owner restart: watchers say the owner is absent, then resync to the new epoch; a persisted snapshot resumes value and seq", async () => {
      // FAN_STATES_FIRST: the start hook sets {} when no value was resumed (what `fanc new` writes).
      const persist = { FAN_STATES_PERSIST: REDIS_URL, FAN_STATES_FIRST: "{}" };
      const first = await start("owner", persist);
      expect((await first.report()).atStart).toEqual({ value: undefined });
      const watcher = await start("watcher");
      await first.send("deltas", { n: 300, keys: 50 });
      const before = await first.report();
      await converged(watcher, first, "watcher before the restart");
      await new Promise((r) => setTimeout(r, 100)); // the store writes every 20 ms
      first.kill();
      await until(
        "owner absent",
        () => watcher.report(),
        (r) => r.status === "owner-absent",
      );
      const second = await start("owner", persist);
      const resumed = await second.report();
      // The start hook saw the saved value, so its first-value `set({})` did not replace it.
      expect(resumed.atStart).toEqual({ value: before.value });
      expect(resumed.value).toEqual(before.value);
      expect(resumed.seq).toBe(before.seq);
      expect(resumed.epoch).toBeGreaterThan(before.epoch);
      await second.send("patch", { patch: { after: { n: 1, label: "restart" } } });
      const got = await converged(watcher, second, "watcher after the restart");
      expect(got.epoch).toBeGreaterThan(before.epoch);
      expect(got.value).toEqual((await second.report()).value);
    }, 90_000);

    it("@unique failover: the new leader continues under a new epoch and watchers resync", async () => {
      // Every instance's start hook sets {} when it resumed nothing (the standby too): the new
      // leader must still take what the first one saved, and the standby must not save its {}.
      const leader = {
        FAN_STATES_SERVICE: "Leader",
        FAN_STATES_STATE: "counter",
        FAN_STATES_PERSIST: REDIS_URL,
        FAN_STATES_FIRST: "{}",
      };
      const a = await start("owner", leader);
      await until(
        "a leads",
        () => a.report(),
        (r) => r.active === true,
      );
      const b = await start("owner", leader);
      const watcher = await start("watcher", leader);
      await a.send("deltas", { n: 200, keys: 30 });
      await converged(watcher, a, "watcher of the first leader");
      expect((await b.report()).active).toBe(false);
      const before = await a.report();
      await new Promise((r) => setTimeout(r, 100));
      a.kill();
      await until(
        "b leads",
        () => b.report(),
        (r) => r.active === true,
        30_000,
      );
      await b.send("patch", { patch: { failover: 1 } });
      const got = await converged(watcher, b, "watcher of the new leader");
      expect(got.epoch).toBeGreaterThan(before.epoch);
      expect(got.value).toEqual({ ...(before.value as object), failover: 1 });
    }, 90_000);
  });
}

describe("states over http without a broker, discovery across processes", () => {
  // With a memory registry everything is in one process and the local hub carries updates;
  // with etcd, only a broker transport reaches the other processes.
  const discovery = "etcd://127.0.0.1:2379";
  it("an owner refuses to start, naming what is missing, instead of replicating nothing", () => {
    const inProcess = createApp({ transports: { http: {} } });
    expect(() => inProcess.serve(Board, { ping: () => "pong" })).not.toThrow();
    const app = createApp({ discovery, transports: { http: {} } });
    expect(() => app.serve(Board, { ping: () => "pong" })).toThrow(/need a broker transport.*amqp, redis, nats or zmq/);
    const both = createApp({ discovery, transports: { http: {}, redis: { url: REDIS_URL } } });
    expect(() => both.serve(HttpBoard, { ping: () => "pong" })).toThrow(/HttpBoard allows http, local/);
  });

  it("a watcher's watch() fails naming what is missing", async () => {
    const app = createApp({ discovery, cluster: `states-http-${process.pid}`, transports: { http: {} } });
    await app.start();
    try {
      expect(() => app.client(Board).states.entries.watch()).toThrow(/need a broker transport/);
      await expect(app.client(Board).states.entries.watch(() => undefined)).rejects.toThrow(/need a broker transport/);
    } finally {
      await app.stop();
    }
  });
});
