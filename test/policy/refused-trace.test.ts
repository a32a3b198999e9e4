/**
 * Every way the client policy chain ends a call without an answer carries the call's trace id
 * (`err.traceId`), as docs/policies.md promises: the breaker open at the first attempt or at a
 * retry (the first attempt opened it), retries or the retry budget spent, a retry past the
 * deadline, a cancel during a backoff, a deadline while waiting for a half-open probe, the
 * bulkhead, a shed call, no instance. Server and client are separate Apps through the
 * generated client (memory discovery, in process); the retry refused by the breaker its first
 * attempt opened is run over amqp too (the user's report).
 */
import { pino } from "pino";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { Code, type FanError } from "../../src/runtime/errors.js";
import { shortId } from "../../src/runtime/ids.js";
import { AMQP_URL, deleteByPrefix, describeWithBroker, reachable } from "../transports/amqp-broker.js";
import { rejection, until } from "../transports/conformance.js";
import { FlakyImpl } from "./fixtures/handlers.js";
import { Flaky } from "./fixtures/generated/fan/policytest.js";
import { flakySystem, policyEvents } from "./fixtures/system.js";

const silent = pino({ level: "silent" });
const amqpUp = await reachable("127.0.0.1", Number(new URL(AMQP_URL).port || 5672));
const apps: App[] = [];

afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
});

/** The call's rejection, asserting it carries a trace id. */
async function traced(call: () => Promise<unknown>): Promise<FanError> {
  const err = await rejection(call);
  expect(err.traceId, `${err.code}: ${err.message}`).toMatch(/^[0-9a-f]{32}$/);
  return err;
}

describe("calls the policy chain refuses carry their trace id", () => {
  it("the breaker open at the first attempt", async () => {
    const a = new FlakyImpl("a");
    a.mode = "internal";
    const app = await flakySystem(apps, [a], { policy: { breaker: { failures: 2, openMs: 60_000 }, retry: false } });
    const client = app.client(Flaky);
    for (let i = 0; i < 2; i++) await traced(() => client.read({ n: i }));
    const err = await traced(() => client.read({ n: 9 }));
    expect(err.message).toMatch(/circuit breaker of every instance is open/);
    expect(a.arrivals).toHaveLength(2);
  });

  it("a retry refused by the breaker the first attempt opened", async () => {
    const a = new FlakyImpl("a");
    a.failNext = 5;
    const app = await flakySystem(apps, [a], { policy: { breaker: { failures: 1, openMs: 60_000 } } });
    // The call's own trace id, as the caller was told it.
    let id: string | undefined;
    const err = await traced(() => app.client(Flaky).read({ n: 1 }, { onTrace: (t) => (id = t.traceId) }));
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toMatch(/circuit breaker of every instance is open \(a open\)/);
    expect(err.traceId).toBe(id);
    expect(a.arrivals).toHaveLength(1);
  });

  it("a retry refused when the last breaker still closed opens (the retry loop from the start)", async () => {
    const a = new FlakyImpl("a");
    const b = new FlakyImpl("b");
    a.mode = "internal";
    b.failNext = 5;
    const app = await flakySystem(apps, [a, b], { policy: { breaker: { failures: 1, openMs: 60_000 } } });
    const client = app.client(Flaky);
    // a's breaker opens (INTERNAL is not retried); then a call goes to b, fails, opens b's.
    await until(async () => {
      await rejection(() => client.read({ n: 0 }));
      return app.policy.breakerStates().some((s) => s.instanceId === "a" && s.state === "open");
    });
    const err = await traced(() => client.read({ n: 1 }));
    expect(err.message).toMatch(/circuit breaker of every instance is open/);
  });

  it("retries spent, the retry budget spent, and a retry past the deadline", async () => {
    const a = new FlakyImpl("a");
    a.mode = "unavailable";
    const app = await flakySystem(apps, [a], {
      policy: { breaker: false, retry: { budget: { maxTokens: 4, minRetriesPerSec: 0 } } },
    });
    const events = policyEvents(app);
    const client = app.client(Flaky);
    await traced(() => client.read({ n: 1 }));
    for (let i = 0; i < 5 && !events.some((e) => e.type === "retry-throttled"); i++)
      await traced(() => client.read({ n: i }));
    expect(events.some((e) => e.type === "retry-throttled")).toBe(true);
    // Backoffs of up to 5 s within a 300 ms deadline: a retry that would start past it is not made.
    const slow = app.client(Flaky, { policy: { retry: { max: 5, baseMs: 5_000, maxMs: 5_000 } } });
    const t0 = Date.now();
    await traced(() => slow.read({ n: 2 }, { timeout: 300 }));
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it("cancelled during a backoff", async () => {
    const a = new FlakyImpl("a");
    // Two failures: the two backoffs (uniform in [0, 10 s]) both ending within 50 ms is ~1 in 80,000.
    a.failNext = 3;
    const app = await flakySystem(apps, [a], {
      policy: { breaker: false, retry: { max: 2, baseMs: 10_000, maxMs: 10_000 } },
    });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const err = await traced(() => app.client(Flaky).read({ n: 1 }, { signal: ac.signal, timeout: 30_000 }));
    expect(err.code).toBe(Code.CANCELLED);
  });

  it("the deadline passing while waiting for a half-open breaker's probe", async () => {
    const a = new FlakyImpl("a");
    a.mode = "internal";
    const app = await flakySystem(apps, [a], { policy: { breaker: { failures: 1, openMs: 100 }, retry: false } });
    const client = app.client(Flaky);
    await traced(() => client.read({ n: 0 }));
    a.mode = "ok";
    a.delayMs = 1_000;
    await new Promise((r) => setTimeout(r, 150));
    const probe = client.read({ n: 1 });
    const err = await traced(() => client.read({ n: 2 }, { timeout: 100 }));
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(await probe).toEqual({ instance: "a", n: 1 });
  });

  it("the bulkhead full, a call shed by the server, and no instance at all", async () => {
    const a = new FlakyImpl("a");
    a.delayMs = 300;
    const app = await flakySystem(apps, [a], {}, { server: { maxInFlight: 1 } });
    const bounded = app.client(Flaky, { policy: { bulkhead: { maxInFlight: 1 } } });
    const first = bounded.read({ n: 1 });
    expect((await traced(() => bounded.read({ n: 2 }))).message).toMatch(/bulkhead/);
    // The server's bound: a second client's call is shed (not retried: RESOURCE_EXHAUSTED).
    expect((await traced(() => app.client(Flaky).write({ n: 3 }))).message).toMatch(/load shed/);
    await first;
    const alone = createApp({ cluster: `ptrace-${process.pid}-${shortId()}`, discovery: "memory", logger: silent });
    apps.push(alone);
    await alone.start();
    const none = await traced(() => alone.client(Flaky).read({ n: 4 }, { timeout: 500 }));
    expect([Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED]).toContain(none.code);
  });
});

const amqpSuite = "a retry refused by the breaker over amqp";
describeWithBroker(
  amqpUp,
  "RabbitMQ",
  amqpSuite,
)(amqpSuite, () => {
  const cluster = `ptrace-${process.pid}-amqp-${shortId()}`;

  afterAll(async () => {
    await deleteByPrefix(`fan.${cluster}`).catch(() => undefined);
  });

  it("carries the call's trace id (the first attempt opened the breaker)", async () => {
    const a = new FlakyImpl("a");
    a.failNext = 5;
    const amqp = { transports: { amqp: { url: AMQP_URL } } };
    const app = await flakySystem(
      apps,
      [a],
      { ...amqp, policy: { breaker: { failures: 1, openMs: 60_000 } } },
      amqp,
      cluster,
    );
    const err = await traced(() => app.client(Flaky).read({ n: 1 }));
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toMatch(/circuit breaker of every instance is open/);
    expect(err.details).toMatchObject({ notRetried: "circuit breaker open for every instance" });
    expect(a.arrivals).toHaveLength(1);
  }, 30_000);

  it("a retry the spent budget withholds says so, over amqp", async () => {
    const a = new FlakyImpl("a");
    a.mode = "unavailable";
    const amqp = { transports: { amqp: { url: AMQP_URL } } };
    const app = await flakySystem(apps, [a], { ...amqp, policy: { breaker: false } }, amqp, cluster);
    const client = app.client(Flaky);
    let err = await traced(() => client.read({ n: 0 }));
    for (let i = 1; i < 20 && err.details === undefined; i++) err = await traced(() => client.read({ n: i }));
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toBe("a is unavailable (not retried: retry budget spent)");
    expect(err.details).toEqual({ notRetried: "retry budget spent" });
  }, 30_000);
});
