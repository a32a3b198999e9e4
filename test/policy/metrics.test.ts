/**
 * Policy events in `/metrics`: after a known load over the http transport (a failing instance
 * that opens its breaker, retries of an idempotent method, a hedge, a bulkhead refusal, a shed
 * call), a scrape of the caller's and the server's `app.metrics()` shows the right counts.
 */
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { type App, type AppOptions, createApp } from "../../src/runtime/app/app.js";
import { memoryRegistry } from "../../src/runtime/discovery/index.js";
import { Code } from "../../src/runtime/errors.js";
import { shortId } from "../../src/runtime/ids.js";
import { LocalHub, localTransport } from "../../src/runtime/transports/local/index.js";
import { parse, sample } from "../telemetry/prom.js";
import { rejection, until } from "../transports/conformance.js";
import { FlakyImpl } from "./fixtures/handlers.js";
import { Flaky } from "./fixtures/generated/fan/policytest.js";

const silent = pino({ level: "silent" });
const service = Flaky.descriptor.name;
const apps: App[] = [];

afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
});

/** Each handler served over http by an App of its own; returns the caller App and the server Apps. */
async function system(
  handlers: FlakyImpl[],
  client: AppOptions = {},
  server: AppOptions = {},
): Promise<{ caller: App; servers: App[] }> {
  const cluster = `polm-${process.pid}-${shortId()}`;
  const discovery = memoryRegistry();
  const base = (): AppOptions => ({
    cluster,
    discovery,
    logger: silent,
    transports: { local: localTransport({ hub: new LocalHub() }), http: {} },
  });
  const servers: App[] = [];
  for (const h of handlers) {
    const app = createApp({ ...base(), ...server }).serve(Flaky, h, { instanceId: h.name, transports: ["http"] });
    apps.push(app);
    servers.push(app);
    await app.start();
  }
  const caller = createApp({ ...base(), ...client });
  apps.push(caller);
  await caller.start();
  const set = await caller.watch(service);
  await until(() => set.instances().length === handlers.length);
  return { caller, servers };
}

describe("policy metrics", () => {
  it("breaker state and transitions, and retries of an idempotent method", async () => {
    const good = new FlakyImpl("good");
    const bad = new FlakyImpl("bad");
    bad.mode = "internal";
    const { caller } = await system([good, bad], {
      policy: { breaker: { failures: 3, openMs: 60_000 }, retry: { max: 3, budget: { maxTokens: 1000 } } },
    });
    const client = caller.client(Flaky, { strategy: "round-robin" });
    // Not idempotent and INTERNAL is not retryable: each failure is one attempt on "bad".
    for (let i = 0; i < 40 && !caller.policy.breakerStates().some((b) => b.state === "open"); i++)
      await client.write({ n: i }).catch(() => undefined);
    const states = new Map(caller.policy.breakerStates().map((b) => [b.instanceId, b.state]));
    expect(states).toEqual(
      new Map([
        ["bad", "open"],
        ["good", "closed"],
      ]),
    );
    expect(bad.arrivals).toHaveLength(3);

    // Successes that keep the failure ratio of "good" below its breaker's (3 failures are coming).
    for (let i = 0; i < 6; i++) await client.read({ n: i });
    // "bad" is routed around; "good" fails twice with UNAVAILABLE, and the third attempt answers.
    good.failNext = 2;
    expect(await client.read({ n: 1 })).toEqual({ instance: "good", n: 1 });
    // A method that is not idempotent is not retried.
    good.failNext = 1;
    expect((await rejection(() => client.write({ n: 2 }))).code).toBe(Code.UNAVAILABLE);

    const s = parse(await caller.metrics());
    expect(sample(s, "fan_breaker_state", { service, instance: "bad" })).toBe(2);
    expect(sample(s, "fan_breaker_transitions_total", { service, instance: "bad", to: "open" })).toBe(1);
    expect(sample(s, "fan_breaker_transitions_total", { service, instance: "good" })).toBeUndefined();
    expect(sample(s, "fan_client_retries_total", { service, method: "read" })).toBe(2);
    expect(sample(s, "fan_client_retries_total", { service, method: "write" })).toBeUndefined();
  });

  it("a half-open probe that succeeds shows the breaker closed again, with each transition counted", async () => {
    const a = new FlakyImpl("a");
    a.mode = "internal";
    const { caller } = await system([a], { policy: { breaker: { failures: 2, openMs: 200 }, retry: false } });
    const client = caller.client(Flaky);
    for (let i = 0; i < 2; i++) await rejection(() => client.read({ n: i }));
    expect(sample(parse(await caller.metrics()), "fan_breaker_state", { service, instance: "a" })).toBe(2);
    a.mode = "ok";
    await new Promise((r) => setTimeout(r, 250));
    expect(await client.read({ n: 3 })).toEqual({ instance: "a", n: 3 });
    const s = parse(await caller.metrics());
    expect(sample(s, "fan_breaker_state", { service, instance: "a" })).toBe(0);
    for (const to of ["open", "half-open", "closed"])
      expect(sample(s, "fan_breaker_transitions_total", { service, instance: "a", to })).toBe(1);
  });

  it("hedges and bulkhead refusals on the caller, shed calls on the server", async () => {
    const slow = new FlakyImpl("slow");
    slow.delayMs = 5000;
    const fast = new FlakyImpl("fast");
    const { caller } = await system([slow, fast]);
    const client = caller.client(Flaky, {
      strategy: "round-robin",
      policy: { hedge: { delayMs: 30 }, bulkhead: { maxInFlight: 2 } },
    });
    for (let i = 0; i < 4; i++) expect(await client.read({ n: i })).toEqual({ instance: "fast", n: i });
    // Round-robin sent some first attempts to the slow instance: each was hedged.
    const hedged = slow.arrivals.length;
    expect(hedged).toBeGreaterThan(0);

    fast.delayMs = 300;
    slow.delayMs = 300;
    const first = [client.write({ n: 1 }), client.write({ n: 2 })];
    expect((await rejection(() => client.write({ n: 3 }))).code).toBe(Code.RESOURCE_EXHAUSTED);
    await Promise.all(first);

    const s = parse(await caller.metrics());
    expect(sample(s, "fan_client_hedges_total", { service, method: "read" })).toBe(hedged);
    expect(sample(s, "fan_client_bulkhead_rejected_total", { service })).toBe(1);
  });

  it("a call cancelled during a retry's backoff counts only its sent attempt, not a refusal", async () => {
    const a = new FlakyImpl("a");
    a.mode = "unavailable";
    const { caller } = await system([a], {
      policy: { breaker: false, retry: { max: 1, baseMs: 60_000, maxMs: 60_000, budget: { maxTokens: 1000 } } },
    });
    const client = caller.client(Flaky);
    const abort = new AbortController();
    const call = rejection(() => client.read({ n: 1 }, { signal: abort.signal, timeout: 120_000 }));
    await until(() => a.arrivals.length === 1);
    await new Promise((r) => setTimeout(r, 50)); // the attempt's failure reaches the caller: it waits to retry
    abort.abort();
    const err = await call;
    const s = parse(await caller.metrics());
    // Full jitter: the backoff is almost always long enough to be cancelled in (else the retry went out).
    if (err.code === Code.CANCELLED) {
      expect(a.arrivals).toHaveLength(1);
      expect(sample(s, "fan_client_calls_total", { service, method: "read", transport: "http", code: "UNAVAILABLE" })).toBe(1);
    }
    expect(sample(s, "fan_client_calls_total", { service, method: "read", transport: "none" })).toBeUndefined();
  });

  it("a retry that finds every breaker open after a sent attempt is not counted as a refusal", async () => {
    const a = new FlakyImpl("a");
    a.mode = "unavailable";
    const { caller } = await system([a], {
      policy: { breaker: { failures: 1, openMs: 60_000 }, retry: { max: 2, baseMs: 1, maxMs: 1, budget: { maxTokens: 1000 } } },
    });
    const client = caller.client(Flaky);
    expect((await rejection(() => client.read({ n: 1 }))).code).toBe(Code.UNAVAILABLE);
    expect(a.arrivals).toHaveLength(1);
    const s = parse(await caller.metrics());
    expect(sample(s, "fan_breaker_state", { service, instance: "a" })).toBe(2);
    expect(sample(s, "fan_client_calls_total", { service, method: "read", transport: "http", code: "UNAVAILABLE" })).toBe(1);
    expect(sample(s, "fan_client_calls_total", { service, method: "read", transport: "none" })).toBeUndefined();
  });

  it("a served instance's shed calls, by method and transport", async () => {
    const a = new FlakyImpl("a");
    a.delayMs = 300;
    const { caller, servers } = await system([a], { policy: { retry: false } }, { server: { maxInFlight: 1 } });
    const client = caller.client(Flaky);
    const first = client.write({ n: 1 });
    await until(() => a.arrivals.length === 1);
    for (let i = 0; i < 2; i++)
      expect((await rejection(() => client.write({ n: 2 }))).code).toBe(Code.RESOURCE_EXHAUSTED);
    await first;
    const s = parse(await (servers[0] as App).metrics());
    expect(sample(s, "fan_server_shed_total", { service, method: "write", transport: "http" })).toBe(2);
    expect(sample(s, "fan_server_shed_total", { service, method: "read" })).toBeUndefined();
  });
});
