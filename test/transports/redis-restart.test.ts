/**
 * The redis transport across a Redis restart, on a redis-server of this test's own (the shared
 * one is never restarted or flushed), killed with SIGKILL mid-traffic and started again on its
 * append-only file: calls in flight fail with UNAVAILABLE by their deadline, calls made while
 * Redis is down fail with UNAVAILABLE at their deadline (nothing waits in ioredis's offline
 * queue), pushes sent during the outage wait for Redis, later calls succeed on the same
 * transports, and no push Redis acknowledged is lost.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { FanError } from "../../src/runtime/errors.js";
import type { Envelope, Transport } from "../../src/runtime/transports/transport.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import { eventKey, formatEndpoint, parseEndpoint } from "../../src/runtime/transports/redis/names.js";
import { describeWithBroker } from "./amqp-broker.js";
import { envelope, rejection, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { PrivateRedis, redisServerAvailable } from "./redis-server.js";

/** Handles pushes slowly, so a backlog of acknowledged pushes sits in the queue when it goes down. */
class SlowPushes extends TestInbound {
  override async push(env: Envelope): Promise<void> {
    await new Promise((r) => setTimeout(r, 40));
    return super.push(env);
  }
}

const possible = await redisServerAvailable();

function transport(url: string): Transport {
  const make = redisTransport({ url, blockMs: 200, claimIdleMs: 1000, retryDelayMs: 50, pushPrefetch: 1 });
  return make({ cluster: "restart", log: captureLog().log, maxPayloadBytes: 1 << 20 });
}

describeWithBroker(
  possible,
  "a private redis-server",
  "redis restart",
)("redis across a restart (private redis-server)", () => {
  const redis = new PrivateRedis();
  beforeAll(async () => {
    await redis.start();
  }, 30_000);
  afterAll(async () => {
    await redis.destroy();
  });

  it("fails calls by their deadline while Redis is down, recovers without restarting, and loses no acknowledged push", async () => {
    const server = transport(redis.url);
    const client = transport(redis.url);
    const inbound = new SlowPushes();
    const { endpoint } = await server.serve(ConformanceDescriptor, "r1", inbound);
    expect((await client.call(endpoint, envelope("echo", { n: 0 }), within(3000))).payload).toMatchObject({ n: 0 });

    const acknowledged: string[] = [];
    let pushing = true;
    const pusher = (async () => {
      for (let i = 0; pushing; i++) {
        const id = `p-${i}`;
        await client.push(endpoint, envelope("record", { id }), within(500)).then(
          () => acknowledged.push(id),
          () => undefined,
        );
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await until(() => acknowledged.length >= 20);

    // Pushes are handled slowly (40 ms each, one at a time): wait for a backlog rather than expect one.
    await until(() => acknowledged.length - inbound.pushes.length >= 5, 30_000);
    const slowDeadline = Date.now() + 8000;
    const slow = client.call(endpoint, envelope("sleep", { ms: 10_000 }), within(8000)).then(
      () => "answered",
      (e: unknown) => FanError.from(e).code,
    );
    await until(() => inbound.active > 0);
    expect(
      acknowledged.length - inbound.pushes.length,
      "acknowledged pushes still queued when the server goes down",
    ).toBeGreaterThan(0);
    await redis.kill();
    expect(await slow).toBe("UNAVAILABLE");
    expect(Date.now() - slowDeadline, "the call in flight ended by its deadline (generous)").toBeLessThan(5000);

    const t0 = Date.now();
    const gap = await rejection(() => client.call(endpoint, envelope("echo", { n: 1 }), within(600)));
    expect(gap.code).toBe("UNAVAILABLE");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(550); // it waited for the broker until its deadline
    expect(Date.now() - t0).toBeLessThan(600 + 5000);

    const waiting = client.push(endpoint, envelope("record", { id: "during-outage" }), within(60_000));
    await redis.start();
    await waiting;
    pushing = false;
    acknowledged.push("during-outage");

    await until(async () => {
      const reply = await client.call(endpoint, envelope("echo", { n: 2 }), within(1000)).catch(() => undefined);
      return reply?.kind === "reply";
    }, 30_000);
    await pusher;
    await until(() => acknowledged.every((id) => inbound.delivered(id).length >= 1), 30_000);
    expect(acknowledged.length).toBeGreaterThan(20);

    await client.close();
    await server.close();
  }, 120_000);

  it("bursts of events acknowledged together: a Redis kill mid-burst loses no acknowledged event, and every entry is XACKed", async () => {
    const sub = transport(redis.url);
    const pub = transport(redis.url);
    const got = new Map<number, number>();
    await sub.subscribe(
      { source: ConformanceDescriptor, event: "ping", group: "events.Burst", instanceId: "b1", broadcast: false },
      async (env) => {
        const n = (env.payload as { n: number }).n;
        got.set(n, (got.get(n) ?? 0) + 1);
      },
    );
    const acknowledged: number[] = [];
    let next = 0;
    let failed = 0;
    let bursting = true;
    // Bursts of 50 emits in flight at once (one turn's XADDs, one turn's XACKs on the other side).
    const bursts = (async () => {
      while (bursting) {
        await Promise.all(
          Array.from({ length: 50 }, () => {
            const n = next++;
            return pub.publish({ ...envelope("ping", { n }), kind: "event" }, within(2000)).then(
              () => void acknowledged.push(n),
              () => void failed++,
            );
          }),
        );
      }
    })();
    await until(() => acknowledged.length >= 500, 30_000);
    await redis.kill();
    await new Promise((r) => setTimeout(r, 300));
    await redis.start();
    // Bursts are acknowledged again after the restart. (Not `next - 50`: each emit that failed
    // during the outage, 2 s deadlines, widens that gap for good; a slow restart on a loaded CI
    // runner failed more than one burst and the wait never ended.)
    const before = acknowledged.length;
    await until(() => acknowledged.length >= Math.max(1500, before + 500), 60_000).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}: ${acknowledged.length} acknowledged, ${failed} failed of ${next}`);
    });
    bursting = false;
    await bursts;
    await until(() => acknowledged.every((n) => got.has(n)), 30_000);
    const missing = acknowledged.filter((n) => !got.has(n));
    expect(missing, "acknowledged events never delivered").toEqual([]);
    // Every delivered entry was acknowledged (batched XACKs): nothing stays pending in the group.
    const admin = new Redis(redis.url);
    try {
      await until(async () => {
        const pending = (await admin.xpending(
          eventKey("restart", ConformanceDescriptor.name, "ping"),
          "events.Burst",
        )) as unknown[];
        return Number(pending[0]) === 0;
      }, 10_000);
    } finally {
      admin.disconnect();
    }
    await pub.close();
    await sub.close();
  }, 120_000);

  it("calls run their script again after Redis forgot it (NOSCRIPT: EVAL, not a failed call)", async () => {
    const server = transport(redis.url);
    const client = transport(redis.url);
    const { endpoint } = await server.serve(ConformanceDescriptor, "noscript-1", new TestInbound());
    const nobody = formatEndpoint({ ...parseEndpoint(endpoint), version: "9.9.9" });
    const admin = new Redis(redis.url);
    try {
      expect((await client.call(endpoint, envelope("echo", { n: 1 }), within(3000))).payload).toMatchObject({ n: 1 });
      await admin.script("FLUSH");
      expect((await client.call(endpoint, envelope("echo", { n: 2 }), within(3000))).payload).toMatchObject({ n: 2 });
      await admin.script("FLUSH");
      // A version nobody serves still fails at once with UNAVAILABLE through the EVAL fallback.
      const e = await rejection(() => client.call(nobody, envelope("echo", { n: 3 }), within(3000)));
      expect(e.code).toBe("UNAVAILABLE");
      expect(e.message).toContain("no live instance");
      expect((await client.call(endpoint, envelope("echo", { n: 4 }), within(3000))).payload).toMatchObject({ n: 4 });
    } finally {
      admin.disconnect();
      await client.close();
      await server.close();
    }
  }, 60_000);
});
