/**
 * The client policy chain end to end through generated clients: server and client in separate
 * Apps (memory discovery, the local transport between them), as a user's services would run.
 * Retries only of idempotent methods and never past the deadline, the retry budget, hedging,
 * the bulkhead, load shedding, credentials and header checks.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { App } from "../../src/runtime/app/app.js";
import { Code } from "../../src/runtime/errors.js";
import type { PolicyEvent } from "../../src/runtime/policy/events.js";
import { dependants } from "../runtime/fixtures/dependants.js";
import { rejection, until } from "../transports/conformance.js";
import { FlakyImpl } from "./fixtures/handlers.js";
import { Flaky } from "./fixtures/generated/fan/policytest.js";
import { flakySystem, policyEvents } from "./fixtures/system.js";

const apps: App[] = [];

afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
});

describe("retries", () => {
  it("retries an @idempotent method, never a method that is not (unless the call says so)", async () => {
    const a = new FlakyImpl("a");
    // A budget and breaker that stay out of the way: this case counts attempts.
    const app = await flakySystem(apps, [a], { policy: { breaker: false, retry: { budget: { maxTokens: 1000 } } } });
    const events = policyEvents(app);
    const client = app.client(Flaky);

    a.failNext = 1;
    expect(await client.read({ n: 1 })).toEqual({ instance: "a", n: 1 });
    expect(a.arrivals).toHaveLength(2);
    expect(events.filter((e) => e.type === "retry")).toMatchObject([
      { method: "read", attempt: 2, code: "UNAVAILABLE" },
    ]);

    a.failNext = 1;
    expect((await rejection(() => client.write({ n: 2 }))).code).toBe(Code.UNAVAILABLE);
    expect(a.arrivals).toHaveLength(3);

    a.failNext = 1;
    expect(await client.write({ n: 3 }, { retry: 1 })).toEqual({ instance: "a", n: 3 });
    expect(a.arrivals).toHaveLength(5);

    // @retry(4): four extra attempts, then the error.
    a.failNext = 10;
    expect((await rejection(() => client.readMore({ n: 4 }))).code).toBe(Code.UNAVAILABLE);
    expect(a.arrivals).toHaveLength(10);
  });

  it("retries only retryable codes: INTERNAL and declared errors reach the caller at once", async () => {
    const a = new FlakyImpl("a");
    const app = await flakySystem(apps, [a]);
    const client = app.client(Flaky);
    a.mode = "internal";
    expect((await rejection(() => client.read({ n: 1 }))).code).toBe(Code.INTERNAL);
    a.mode = "declared";
    expect((await rejection(() => client.read({ n: 1 }))).name).toBe("Refused");
    expect(a.arrivals).toHaveLength(2);
  });

  it("prefers another instance for the retry", async () => {
    const a = new FlakyImpl("a");
    const b = new FlakyImpl("b");
    a.mode = "unavailable";
    b.mode = "unavailable";
    const app = await flakySystem(apps, [a, b], { policy: { breaker: false, retry: { budget: { maxTokens: 1000 } } } });
    const client = app.client(Flaky, { policy: { retry: { max: 1 } } });
    for (let i = 0; i < 6; i++) await rejection(() => client.read({ n: i }));
    // Each call's two attempts went to two different instances.
    expect(a.arrivals).toHaveLength(6);
    expect(b.arrivals).toHaveLength(6);
  });

  it("never starts an attempt past the deadline", async () => {
    const a = new FlakyImpl("a");
    a.mode = "unavailable";
    const app = await flakySystem(apps, [a], { policy: { breaker: false, retry: { max: 50, baseMs: 40, maxMs: 40 } } });
    const client = app.client(Flaky);
    const started = Date.now();
    const deadline = started + 300;
    const err = await rejection(() => client.read({ n: 1 }, { deadline }));
    const took = Date.now() - started;
    expect([Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED]).toContain(err.code);
    expect(a.arrivals.length).toBeGreaterThanOrEqual(2);
    for (const t of a.arrivals) expect(t).toBeLessThan(deadline);
    // Gave up within the deadline (generous slack for a loaded machine), not after 50 retries.
    expect(took).toBeLessThan(300 + 1000);
  });

  it("the retry budget stops retries under sustained failure and lets them again once calls succeed", async () => {
    const a = new FlakyImpl("a");
    a.mode = "unavailable";
    // The bucket alone: without the floor of retries a second (budget-storm.test.ts).
    const app = await flakySystem(apps, [a], {
      policy: { breaker: false, retry: { budget: { minRetriesPerSec: 0 } } },
    });
    const events = policyEvents(app);
    const client = app.client(Flaky);
    for (let i = 0; i < 40; i++) await rejection(() => client.read({ n: i }));
    // Without a budget: 40 × 3 attempts. With it: a few retries, then none (at most ~10% extra).
    expect(a.arrivals.length).toBeLessThanOrEqual(44);
    expect(a.arrivals.length).toBeGreaterThan(40);
    expect(events.some((e) => e.type === "retry-throttled")).toBe(true);
    const before = a.arrivals.length;
    a.failNext = 0;
    a.mode = "unavailable";
    await rejection(() => client.read({ n: 0 }));
    expect(a.arrivals.length - before).toBe(1);

    a.mode = "ok";
    // From an empty bucket, 51 successes refill it past half; the failure of the next attempt takes one again.
    for (let i = 0; i < 70; i++) await client.read({ n: i });
    a.failNext = 1;
    const retries = events.filter((e) => e.type === "retry").length;
    expect(await client.read({ n: 7 })).toEqual({ instance: "a", n: 7 });
    expect(events.filter((e) => e.type === "retry").length).toBe(retries + 1);
  });
});

describe("a retry withheld says why", () => {
  it("the retry budget spent: the attempt's error, its code unchanged, with `(not retried: retry budget spent)`", async () => {
    const a = new FlakyImpl("a");
    a.mode = "unavailable";
    const app = await flakySystem(apps, [a], { policy: { breaker: false, retry: { max: 3 } } });
    const client = app.client(Flaky);
    // The budget is full: three retries, then the call fails with the last attempt's error as it is.
    const spentRetries = await rejection(() => client.read({ n: 0 }));
    expect(a.arrivals).toHaveLength(4);
    expect(spentRetries.message).toBe("a is unavailable");
    expect(spentRetries.details).toBeUndefined();
    let err = spentRetries;
    for (let i = 1; i < 20 && err.details === undefined; i++) err = await rejection(() => client.read({ n: i }));
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toBe("a is unavailable (not retried: retry budget spent)");
    expect(err.details).toEqual({ notRetried: "retry budget spent" });
    expect(err.traceId).toMatch(/^[0-9a-f]{32}$/);
  });

  it("the deadline too near for the backoff: `(not retried: the deadline is too near)`", async () => {
    const a = new FlakyImpl("a");
    a.mode = "unavailable";
    // A backoff of up to 10^9 ms: the retry would start past any deadline.
    const app = await flakySystem(apps, [a], {
      policy: { breaker: false, retry: { max: 3, baseMs: 1e9, maxMs: 1e9 } },
    });
    const err = await rejection(() => app.client(Flaky).read({ n: 1 }, { timeout: 5000 }));
    expect(a.arrivals).toHaveLength(1);
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toBe("a is unavailable (not retried: the deadline is too near)");
    expect(err.details).toEqual({ notRetried: "the deadline is too near" });
  });

  it("every breaker open after the attempt: the breaker's error says so, with the attempt's own failure", async () => {
    const a = new FlakyImpl("a");
    a.failNext = 5;
    const app = await flakySystem(apps, [a], { policy: { breaker: { failures: 1, openMs: 60_000 } } });
    const err = await rejection(() => app.client(Flaky).read({ n: 1 }));
    expect(a.arrivals).toHaveLength(1);
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toMatch(
      /circuit breaker of every instance is open \(a open\); the attempt before failed: a fails this one$/,
    );
    expect(err.details).toMatchObject({ openBreakers: ["a"], notRetried: "circuit breaker open for every instance" });
    expect((err.cause as Error).message).toBe("a fails this one");
  });
});

describe("hedging", () => {
  it("returns the faster instance's answer and cancels the other attempt", async () => {
    const slow = new FlakyImpl("slow");
    slow.delayMs = 5000;
    const fast = new FlakyImpl("fast");
    const app = await flakySystem(apps, [slow, fast]);
    const events = policyEvents(app);
    const client = app.client(Flaky, { strategy: "round-robin", policy: { hedge: { delayMs: 30 } } });
    const started = Date.now();
    for (let i = 0; i < 4; i++) expect(await client.read({ n: i })).toEqual({ instance: "fast", n: i });
    expect(Date.now() - started).toBeLessThan(4000);
    // Round-robin sent some first attempts to the slow instance: each was hedged and then cancelled.
    expect(slow.arrivals.length).toBeGreaterThan(0);
    expect(events.filter((e) => e.type === "hedge").length).toBe(slow.arrivals.length);
    await until(() => slow.cancelled === slow.arrivals.length);
  });

  it("leaves nothing on a long-lived caller signal once each hedged call settles", async () => {
    const app = await flakySystem(apps, [new FlakyImpl("a"), new FlakyImpl("b")]);
    const client = app.client(Flaky, { strategy: "round-robin", policy: { hedge: { delayMs: 1000 } } });
    const caller = new AbortController();
    for (let i = 0; i < 200; i++) await client.read({ n: i }, { signal: caller.signal });
    // Each attempt followed the caller's signal while it ran (`AbortSignal.any` kept one per call).
    expect(dependants(caller.signal)).toBeLessThan(5);
    // It still cancels a call in flight.
    const slow = new FlakyImpl("slow");
    slow.delayMs = 5000;
    const app2 = await flakySystem(apps, [slow]);
    const c2 = app2.client(Flaky, { policy: { hedge: { delayMs: 1000 } } });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    expect(await rejection(() => c2.read({ n: 1 }, { signal: ac.signal }))).toMatchObject({ code: Code.CANCELLED });
    await until(() => slow.cancelled === 1);
  });

  it("does not hedge methods that are not @idempotent", async () => {
    const slow = new FlakyImpl("slow");
    slow.delayMs = 200;
    const app = await flakySystem(apps, [slow, new FlakyImpl("other")]);
    const events = policyEvents(app);
    const client = app.client(Flaky, { strategy: "round-robin", policy: { hedge: { delayMs: 10 } } });
    for (let i = 0; i < 2; i++) await client.write({ n: i });
    expect(events.filter((e) => e.type === "hedge")).toHaveLength(0);
  });
});

describe("bulkhead and load shedding", () => {
  it("a client's bulkhead refuses calls beyond its bound at once", async () => {
    const a = new FlakyImpl("a");
    a.delayMs = 300;
    const app = await flakySystem(apps, [a]);
    const events = policyEvents(app);
    const client = app.client(Flaky, { policy: { bulkhead: { maxInFlight: 2 } } });
    const first = [client.read({ n: 1 }), client.read({ n: 2 })];
    const t = Date.now();
    const err = await rejection(() => client.read({ n: 3 }));
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(Date.now() - t).toBeLessThan(250);
    expect(await Promise.all(first)).toHaveLength(2);
    expect(events.filter((e) => e.type === "bulkhead")).toHaveLength(1);
    // Room again once they finished.
    expect(await client.read({ n: 4 })).toEqual({ instance: "a", n: 4 });
  });

  it("a served instance sheds calls beyond its in-flight bound, counted", async () => {
    const a = new FlakyImpl("a");
    a.delayMs = 300;
    const app = await flakySystem(apps, [a], {}, { server: { maxInFlight: 1 } });
    const server = apps[0] as App;
    const events: PolicyEvent[] = [];
    server.policy.on((e) => events.push(e));
    const client = app.client(Flaky);
    const first = client.write({ n: 1 });
    await until(() => a.arrivals.length === 1);
    const err = await rejection(() => client.write({ n: 2 }));
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.message).toMatch(/load shed/);
    expect(await first).toEqual({ instance: "a", n: 1 });
    expect(server.counters.callsShed).toBe(1);
    expect(events).toMatchObject([{ type: "shed", method: "write", instanceId: "a" }]);
    expect(a.arrivals).toHaveLength(1);
  });
});

describe("circuit breakers in process", () => {
  it("routes around an instance whose breaker is open, and fails fast naming it when none is left", async () => {
    const a = new FlakyImpl("a");
    a.mode = "internal";
    const app = await flakySystem(apps, [a], { policy: { breaker: { failures: 3, openMs: 60_000 } } });
    const client = app.client(Flaky);
    for (let i = 0; i < 3; i++) expect((await rejection(() => client.read({ n: i }))).code).toBe(Code.INTERNAL);
    expect(app.policy.breakerStates()).toMatchObject([{ instanceId: "a", state: "open" }]);
    const err = await rejection(() => client.read({ n: 9 }));
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toMatch(/circuit breaker of every instance is open \(a open\)/);
    expect(a.arrivals).toHaveLength(3);
  });

  it("half-open: concurrent callers wait for the one probe, and its success closes the breaker", async () => {
    const a = new FlakyImpl("a");
    a.mode = "internal";
    const app = await flakySystem(apps, [a], { policy: { breaker: { failures: 2, openMs: 200 }, retry: false } });
    const events = policyEvents(app);
    const client = app.client(Flaky);
    for (let i = 0; i < 2; i++) await rejection(() => client.read({ n: i }));
    a.mode = "ok";
    a.delayMs = 100;
    await new Promise((r) => setTimeout(r, 250));
    const answers = await Promise.all([1, 2, 3].map((n) => client.read({ n })));
    expect(answers.map((x) => x.n)).toEqual([1, 2, 3]);
    // The probe went alone; the two others waited for it and went after it closed the breaker.
    expect(a.arrivals).toHaveLength(5);
    expect((a.arrivals[3] as number) - (a.arrivals[2] as number)).toBeGreaterThanOrEqual(90);
    expect(events.filter((e) => e.type === "breaker").map((e) => (e.type === "breaker" ? e.to : ""))).toEqual([
      "open",
      "half-open",
      "closed",
    ]);
  });
});

describe("credentials and header checks", () => {
  it("app, client and call headers reach the server; CR/LF and oversized values are refused before sending", async () => {
    const a = new FlakyImpl("a");
    const seen: Record<string, unknown>[] = [];
    const app = await flakySystem(
      apps,
      [a],
      { headers: { "x-app": "1", authorization: "Bearer app" } },
      {
        server: { interceptors: [(call) => void seen.push({ ...call.headers })] },
      },
    );
    await app.client(Flaky).read({ n: 1 });
    await app.client(Flaky, { headers: () => ({ authorization: "Bearer client" }) }).read({ n: 2 });
    await app.client(Flaky).read({ n: 3 }, { headers: { authorization: "Bearer call" } });
    expect(seen.map((h) => [h["x-app"], h.authorization])).toEqual([
      ["1", "Bearer app"],
      ["1", "Bearer client"],
      ["1", "Bearer call"],
    ]);
    const bad = await rejection(() => app.client(Flaky).read({ n: 4 }, { headers: { "x-y": "a\r\nInjected: 1" } }));
    expect(bad.code).toBe(Code.INVALID_ARGUMENT);
    const big = await rejection(() => app.client(Flaky).read({ n: 5 }, { headers: { "x-y": "a".repeat(9000) } }));
    expect(big.code).toBe(Code.INVALID_ARGUMENT);
    expect(a.arrivals).toHaveLength(3);
  });
});
