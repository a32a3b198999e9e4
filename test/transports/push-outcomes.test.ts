/**
 * Issue 9 item 7 on Redis: what a producer is told about a push during a broker outage, and
 * that its retry does not run a handler twice. On a redis-server of this test's own: stopped
 * (SIGSTOP: the XADD is written and never answered) the push's fate is unknown, so it fails
 * with `details.maybeDelivered: true`; once Redis resumes it is delivered, and the producer's
 * retry with the same idempotency key is acknowledged without running the handler again.
 * Killed, a push never leaves: `maybeDelivered: false`.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { FanError } from "../../src/runtime/errors.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import { describeWithBroker } from "./amqp-broker.js";
import { until } from "./conformance.js";
import { Conformance, type ConformanceClient } from "./fixtures/generated/fan/conformance.js";
import { ConformanceService } from "./fixtures/handlers.js";
import { captureLog } from "./fixtures/log.js";
import { uniqueCluster } from "./processes.js";
import { PrivateRedis, redisServerAvailable } from "./redis-server.js";

const possible = await redisServerAvailable();

async function failure(p: Promise<unknown>): Promise<FanError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!FanError.is(e)) throw new Error(`expected a FanError, got ${String(e)}`);
  return e;
}

describeWithBroker(
  possible,
  "a private redis-server",
  "push outcomes",
)("push outcomes across a Redis outage (private redis-server)", () => {
  const redis = new PrivateRedis();
  const impl = new ConformanceService();
  const apps: App[] = [];
  let client: ConformanceClient;

  beforeAll(async () => {
    await redis.start();
    const cluster = uniqueCluster("pushout");
    const make = () =>
      createApp({
        cluster,
        discovery: "memory",
        transports: { redis: redisTransport({ url: redis.url, blockMs: 200, retryDelayMs: 20 }) },
        logger: captureLog().log,
      });
    const server = make().serve(Conformance, impl, { transports: ["redis"] });
    apps.push(server);
    await server.start();
    const caller = make();
    apps.push(caller);
    await caller.start();
    client = caller.client(Conformance, { transport: "redis" });
    await client.record({ id: "warm-up" });
    await until(() => impl.delivered("warm-up") === 1);
  });
  afterAll(async () => {
    try {
      redis.signal("SIGCONT");
    } catch {
      // already killed by the last case
    }
    for (const a of apps.reverse()) await a.stop().catch(() => undefined);
    await redis.destroy();
  });

  it("fate unknown says maybeDelivered; the retry with the same key does not run the handler again", async () => {
    const key = "unknown-fate-1";
    redis.signal("SIGSTOP");
    let err: FanError;
    try {
      err = await failure(client.record({ id: key }, { idempotencyKey: key, timeout: 300 }));
    } finally {
      redis.signal("SIGCONT");
    }
    expect(err.code).toBe("DEADLINE_EXCEEDED");
    expect(err.details).toMatchObject({ maybeDelivered: true });
    await until(() => impl.delivered(key) === 1, 15_000); // it was delivered after all
    await client.record({ id: key }, { idempotencyKey: key }); // the producer's retry
    await until(() => apps[0]!.counters.pushesDuplicate === 1, 15_000);
    expect(impl.pushes.filter((p) => p.id === key)).toHaveLength(1);
  });

  it("broker gone: the push never left, and says so", async () => {
    await redis.kill();
    // kill() returns once a new connection is refused; the client's own socket may not have
    // seen its close yet (another fd in the same poll), and a push written to it then is
    // honestly "maybe delivered". Give the client's event loop that close first.
    await new Promise((r) => setTimeout(r, 200));
    const err = await failure(client.record({ id: "never" }, { timeout: 300 }));
    expect(err.code).toBe("DEADLINE_EXCEEDED");
    expect(err.details).toMatchObject({ maybeDelivered: false });
  });
});
