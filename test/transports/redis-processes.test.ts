/**
 * redis between processes and across an outage: the pushes a SIGKILLed consumer held are
 * redelivered as soon as its live-consumer entry expires (not after `claimIdleMs`), and a
 * server is back in the alive set as soon as Redis is (not on its refresh timer).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import type { Transport } from "../../src/runtime/transports/transport.js";
import { describeWithBroker } from "./amqp-broker.js";
import { envelope, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { type Peer, startPeer } from "./fixtures/peers.js";
import { deleteKeys, PrivateRedis, REDIS_URL, redisServerAvailable } from "./redis-server.js";

const ETCD = "etcd://127.0.0.1:2379";

describe("redis pushes of a SIGKILLed consumer", () => {
  const peers: Peer[] = [];
  const apps: App[] = [];
  const clusters: string[] = [];
  afterEach(async () => {
    await Promise.allSettled(peers.splice(0).map((p) => p.kill()));
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
    for (const c of clusters.splice(0)) await deleteKeys(`fan.${c}.*`);
  });

  it("are claimed by another instance once its live entry expires, well before claimIdleMs", async () => {
    const name = `redisp-${process.pid}-${shortId()}`;
    clusters.push(name);
    // claimIdleMs two minutes: only the live-consumer check can redeliver within the test.
    const options = JSON.stringify({ url: REDIS_URL, claimIdleMs: 120_000, aliveTtlMs: 3000 });
    const env = { TRANSPORT: "redis", CLUSTER: name, TRANSPORT_OPTIONS: options, LEASE_TTL_MS: "3000" };
    const stuck = await startPeer({ ...env, PUSH_MS: "600000" });
    peers.push(stuck);
    const app = createApp({
      cluster: name,
      discovery: ETCD,
      logger: captureLog().log,
      transports: { redis: { url: REDIS_URL } },
    });
    apps.push(app);
    await app.start();
    const client = app.client(Conformance, { transport: "redis" });
    const ids = ["d1", "d2", "d3", "d4", "d5"];
    for (const id of ids) await client.record({ id }, { timeout: 20_000 });
    for (const id of ids) await stuck.waitFor((l) => l.received === id, 20_000);

    await stuck.kill();
    const killedAt = Date.now();
    const healthy = await startPeer(env);
    peers.push(healthy);
    for (const id of ids) await healthy.waitFor((l) => l.push === id, 60_000);
    const after = Date.now() - killedAt;
    console.log(`redis: pushes of a SIGKILLed consumer redelivered ${after} ms after the kill`);
    expect(after).toBeLessThan(60_000);
  }, 180_000);
});

const possible = await redisServerAvailable();

describeWithBroker(
  possible,
  "a private redis-server",
  "redis announce",
)("redis server announce after an outage (private redis-server)", () => {
  // No append-only file: the restarted Redis has lost the alive set, as after a failover.
  const redis = new PrivateRedis(["--appendonly", "no"]);
  beforeAll(() => redis.start(), 30_000);
  afterAll(() => redis.destroy());

  it("is back in the alive set as soon as it reconnects: calls succeed without waiting for the refresh timer", async () => {
    const make = (aliveTtlMs: number): Transport =>
      redisTransport({ url: redis.url, aliveTtlMs, blockMs: 200 })({
        cluster: `ann-${shortId()}`,
        log: captureLog().log,
        maxPayloadBytes: 1 << 20,
      });
    // A refresh timer of 200 s (a third of the TTL): only the reconnect announces it in time.
    const server = make(600_000);
    const client = make(600_000);
    const { endpoint } = await server.serve(ConformanceDescriptor, "a1", new TestInbound());
    expect((await client.call(endpoint, envelope("echo", { n: 0 }), within(3000))).kind).toBe("reply");
    await redis.kill();
    await redis.start();
    const restarted = Date.now();
    let refused = "";
    await until(async () => {
      const reply = await client.call(endpoint, envelope("echo", { n: 1 }), within(1000)).catch((e: unknown) => {
        refused = String(e);
        return undefined;
      });
      return reply?.kind === "reply";
    }, 20_000).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}; last refusal: ${refused}`);
    });
    console.log(`redis: calls answered ${Date.now() - restarted} ms after the restart`);
    await client.close();
    await server.close();
  }, 120_000);
});
