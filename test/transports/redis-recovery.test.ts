/**
 * redis-specific behaviour: against the shared Redis (each case in a cluster of its own), a
 * consumer that died holding a push (XAUTOCLAIM), undecodable stream entries, calls to a
 * version nobody serves, and calls while Redis is unreachable; against servers of this test's
 * own, the same rpc, push and event paths through Redis Sentinel and Redis Cluster options.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Transport } from "../../src/runtime/transports/transport.js";
import { redisTransport, type RedisTransportOptions } from "../../src/runtime/transports/redis/index.js";
import {
  deadLetterKey,
  formatEndpoint,
  parseEndpoint,
  PUSH_GROUP,
  pushKey,
} from "../../src/runtime/transports/redis/names.js";
import { describeWithBroker, reachable } from "./amqp-broker.js";
import { envelope, rejection, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { type CapturedLog, captureLog } from "./fixtures/log.js";
import {
  deleteKeys,
  PrivateCluster,
  PrivateRedis,
  PrivateSentinel,
  readStream,
  REDIS_URL,
  redisServerAvailable,
  withRedis,
} from "./redis-server.js";

const url = new URL(REDIS_URL);
const up = await reachable(url.hostname, Number(url.port || 6379));
const canSpawn = await redisServerAvailable();
const run = `rrec-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
let cases = 0;

const FAST: RedisTransportOptions = { blockMs: 200, claimIdleMs: 800, retryDelayMs: 20, maxDeliveries: 3 };

function make(cluster: string, opts: RedisTransportOptions): { t: Transport; log: CapturedLog } {
  const log = captureLog();
  return { t: redisTransport({ ...FAST, ...opts })({ cluster, log: log.log, maxPayloadBytes: 1 << 20 }), log };
}

/** Serves the conformance service and checks rpc, cancellation, push and an event through `opts`. */
async function roundTrip(cluster: string, opts: RedisTransportOptions): Promise<void> {
  const server = make(cluster, opts);
  const client = make(cluster, opts);
  const inbound = new TestInbound();
  try {
    const { endpoint } = await server.t.serve(ConformanceDescriptor, "i1", inbound);
    expect((await client.t.call(endpoint, envelope("echo", { n: 7 }), within(5000))).payload).toMatchObject({ n: 7 });
    const ac = new AbortController();
    const sleeping = envelope("sleep", { ms: 5000 });
    const pending = rejection(() => client.t.call(endpoint, sleeping, within(5000, ac.signal)));
    await until(() => inbound.active > 0);
    ac.abort();
    expect((await pending).code).toBe("CANCELLED");
    await until(() => inbound.cancelled.includes(sleeping.id));
    await client.t.push(endpoint, envelope("record", { id: "r1", failures: 1 }), within(5000));
    await until(() => inbound.delivered("r1").length === 1);
    const got: number[] = [];
    await server.t.subscribe(
      { source: ConformanceDescriptor, event: "ping", group: "svc.A", instanceId: "a1", broadcast: false },
      async (env) => {
        got.push((env.payload as { n: number }).n);
      },
    );
    await client.t.publish({ ...envelope("ping", { n: 3 }), kind: "event" }, within(5000));
    await until(() => got.length === 1);
  } finally {
    await Promise.all([client.t.close(), server.t.close()]);
  }
}

describeWithBroker(
  up,
  "Redis",
  "redis recovery",
)("redis edge cases (shared Redis)", () => {
  afterAll(async () => {
    await deleteKeys(`fan.${run}*`);
  });

  it("takes over a push that a dead consumer read and never acknowledged (XAUTOCLAIM), counting the delivery", async () => {
    const cluster = `${run}-${++cases}`;
    const key = pushKey({ cluster, service: ConformanceDescriptor.name, version: ConformanceDescriptor.version });
    await withRedis(async (r) => {
      await r.xgroup("CREATE", key, PUSH_GROUP, "0", "MKSTREAM");
      await r.xadd(key, "*", "e", JSON.stringify(envelope("record", { id: "orphan" })));
      await r.xreadgroup("GROUP", PUSH_GROUP, "ghost", "COUNT", 1, "STREAMS", key, ">");
    });
    const s = make(cluster, {});
    const inbound = new TestInbound();
    await s.t.serve(ConformanceDescriptor, "heir", inbound);
    await until(() => inbound.delivered("orphan").length === 1, 5000);
    expect(inbound.pushes.find((p) => p.id === "orphan")?.attempt).toBe(2);
    await until(async () => (await withRedis((r) => r.xlen(key))) === 0);
    await s.t.close();
  });

  it("dead-letters, with a warning, a push its consumers took too often and never acknowledged", async () => {
    const cluster = `${run}-${++cases}`;
    const key = pushKey({ cluster, service: ConformanceDescriptor.name, version: ConformanceDescriptor.version });
    let id = "";
    await withRedis(async (r) => {
      await r.xgroup("CREATE", key, PUSH_GROUP, "0", "MKSTREAM");
      id = (await r.xadd(key, "*", "e", JSON.stringify(envelope("record", { id: "cursed" })))) as string;
      await r.xreadgroup("GROUP", PUSH_GROUP, "ghost", "COUNT", 1, "STREAMS", key, ">");
      // As if consumers that died holding it had taken it 5 times (FAST allows 3 deliveries).
      await r.xclaim(key, PUSH_GROUP, "ghost", 0, id, "RETRYCOUNT", 5);
    });
    const s = make(cluster, {});
    const inbound = new TestInbound();
    await s.t.serve(ConformanceDescriptor, "heir", inbound);
    await until(async () => (await readStream(deadLetterKey(key))).length === 1, 5000);
    expect((await readStream(deadLetterKey(key)))[0]?.[1].reason).toMatch(/^not acknowledged after \d+ deliveries$/);
    const warned = s.log.find("(its consumers went away holding it); dead-lettered");
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({
      level: 40,
      stream: key,
      id,
      targetService: ConformanceDescriptor.name,
      targetMethod: "record",
    });
    expect(inbound.delivered("cursed")).toEqual([]);
    await s.t.close();
  });

  it("dead-letters undecodable stream entries with their reason and a log line, and keeps serving", async () => {
    const cluster = `${run}-${++cases}`;
    const s = make(cluster, {});
    const c = make(cluster, {});
    const inbound = new TestInbound();
    const { endpoint } = await s.t.serve(ConformanceDescriptor, "i1", inbound);
    const key = pushKey(parseEndpoint(endpoint));
    await withRedis(async (r) => {
      await r.xadd(key, "*", "junk", "no envelope here");
      await r.xadd(key, "*", "e", Buffer.from([0xff, 0x00, 0x7b]));
      await r.xadd(
        key,
        "*",
        "e",
        '{"v":1,"id":"x","kind":"push","service":"s","method":"m","payload":{"constructor":{"prototype":{}}}}',
      );
    });
    await until(async () => (await readStream(deadLetterKey(key))).length === 3);
    const reasons = (await readStream(deadLetterKey(key))).map(([, f]) => f.reason);
    expect(reasons.every((r) => r?.startsWith("undecodable"))).toBe(true);
    expect(s.log.find("undecodable redis stream entry dead-lettered")).toHaveLength(3);
    await c.t.push(endpoint, envelope("record", { id: "fine" }), within(5000));
    await until(() => inbound.delivered("fine").length === 1);
    await Promise.all([s.t.close(), c.t.close()]);
  });

  it("fails a call to a version nobody serves with UNAVAILABLE at once, also after the last server stopped", async () => {
    const cluster = `${run}-${++cases}`;
    const s = make(cluster, {});
    const c = make(cluster, {});
    const served = await s.t.serve(ConformanceDescriptor, "i1", new TestInbound());
    const nobody = formatEndpoint({ ...parseEndpoint(served.endpoint), version: "9.9.9" });
    const t0 = Date.now();
    expect((await rejection(() => c.t.call(nobody, envelope("echo", { n: 1 }), within(5000)))).code).toBe(
      "UNAVAILABLE",
    );
    expect((await c.t.call(served.endpoint, envelope("echo", { n: 1 }), within(5000))).kind).toBe("reply");
    await served.stop();
    expect((await rejection(() => c.t.call(served.endpoint, envelope("echo", { n: 2 }), within(5000)))).code).toBe(
      "UNAVAILABLE",
    );
    expect(Date.now() - t0, "failed at once, not at the 5 s deadlines").toBeLessThan(4500);
    await Promise.all([s.t.close(), c.t.close()]);
  });

  it("fails calls and pushes at their deadline with UNAVAILABLE while Redis cannot be reached", async () => {
    const c = make(`${run}-${++cases}`, { url: "redis://127.0.0.1:1" });
    const endpoint = formatEndpoint({ cluster: "x", service: ConformanceDescriptor.name, version: "1.0.0" });
    await new Promise((r) => setTimeout(r, 100));
    for (const send of [
      () => c.t.call(endpoint, envelope("echo", { n: 1 }), within(400)),
      () => c.t.push(endpoint, envelope("record", { id: "x" }), within(400)),
    ]) {
      const t0 = Date.now();
      expect((await rejection(send)).code).toBe("UNAVAILABLE");
      expect(Date.now() - t0).toBeGreaterThanOrEqual(350); // it waited until its deadline
      expect(Date.now() - t0).toBeLessThan(400 + 5000);
    }
    await c.t.close();
  });
});

describeWithBroker(
  canSpawn,
  "redis-server (to start private servers)",
  "redis sentinel and cluster",
)("redis through Sentinel and Cluster options (private servers)", () => {
  const master = new PrivateRedis(["--appendonly", "no"]);
  const sentinel = new PrivateSentinel("fanmaster", master.port);
  const cluster = new PrivateCluster();
  beforeAll(async () => {
    await master.start();
    await Promise.all([sentinel.start(), cluster.start()]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([sentinel.destroy(), master.destroy(), cluster.destroy()]);
  });

  it("serves rpc, cancellation, pushes and events through a Sentinel-managed master", async () => {
    await roundTrip("sentinel", {
      redis: { sentinels: [{ host: "127.0.0.1", port: sentinel.port }], name: "fanmaster" },
    });
  });

  it("serves rpc, cancellation, pushes and events through a Redis Cluster", async () => {
    const nodes = cluster.nodes.map((n) => ({ host: "127.0.0.1", port: n.port }));
    await roundTrip("cluster", { cluster: { nodes } });
  });
});
