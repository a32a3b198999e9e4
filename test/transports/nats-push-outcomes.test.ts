/**
 * push-outcomes.test.ts on NATS: what a producer is told about a push during an outage, and
 * that its retry does not run a handler twice. On a nats-server of this test's own: stopped
 * (SIGSTOP: the publish is written and its PubAck never comes) the push's fate is unknown, so it
 * fails with `details.maybeDelivered: true`; once NATS resumes it is stored and delivered, and
 * the producer's retry with the same idempotency key is acknowledged without running the
 * handler again. Killed, a push never leaves: `maybeDelivered: false`.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { FanError } from "../../src/runtime/errors.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { describeWithBroker } from "./amqp-broker.js";
import { until } from "./conformance.js";
import { Conformance, type ConformanceClient } from "./fixtures/generated/fan/conformance.js";
import { ConformanceService } from "./fixtures/handlers.js";
import { captureLog } from "./fixtures/log.js";
import { uniqueCluster } from "./processes.js";
import { natsServerAvailable, PrivateNats } from "./nats-server.js";

const possible = await natsServerAvailable();

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
  "a private nats-server",
  "nats push outcomes",
)("push outcomes across a NATS outage (private nats-server)", () => {
  const nats = new PrivateNats();
  const impl = new ConformanceService();
  const apps: App[] = [];
  let client: ConformanceClient;

  beforeAll(async () => {
    await nats.start();
    const cluster = uniqueCluster("natspushout");
    const make = () =>
      createApp({
        cluster,
        discovery: "memory",
        transports: { nats: natsTransport({ url: nats.url, retryDelayMs: 20 }) },
        logger: captureLog().log,
      });
    const server = make().serve(Conformance, impl, { transports: ["nats"] });
    apps.push(server);
    await server.start();
    const caller = make();
    apps.push(caller);
    await caller.start();
    client = caller.client(Conformance, { transport: "nats" });
    await client.record({ id: "warm-up" });
    await until(() => impl.delivered("warm-up") === 1);
  });
  afterAll(async () => {
    try {
      nats.signal("SIGCONT");
    } catch {
      // already killed by the last case
    }
    for (const a of apps.reverse()) await a.stop().catch(() => undefined);
    await nats.destroy();
  });

  it("fate unknown says maybeDelivered; the retry with the same key does not run the handler again", async () => {
    const key = "unknown-fate-1";
    nats.signal("SIGSTOP");
    let err: FanError;
    try {
      err = await failure(client.record({ id: key }, { idempotencyKey: key, timeout: 300 }));
    } finally {
      nats.signal("SIGCONT");
    }
    expect(err.code).toBe("DEADLINE_EXCEEDED");
    expect(err.details).toMatchObject({ maybeDelivered: true });
    await until(() => impl.delivered(key) === 1, 15_000); // it was delivered after all
    await client.record({ id: key }, { idempotencyKey: key }); // the producer's retry
    await until(() => apps[0]!.counters.pushesDuplicate === 1, 15_000);
    expect(impl.pushes.filter((p) => p.id === key)).toHaveLength(1);
  });

  it("broker gone: the push never left, and says so", async () => {
    await nats.kill();
    await new Promise((r) => setTimeout(r, 500)); // the client sees the connection drop
    const err = await failure(client.record({ id: "never" }, { timeout: 300 }));
    expect(err.code).toBe("DEADLINE_EXCEEDED");
    expect(err.details).toMatchObject({ maybeDelivered: false });
  });
});
