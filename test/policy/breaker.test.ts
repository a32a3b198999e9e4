/**
 * The circuit breaker state machine on a fake clock, the outcome classification, the retry
 * budget and the backoff bounds.
 */
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Code, FanError } from "../../src/runtime/errors.js";
import { Breaker, Breakers, verdictOf } from "../../src/runtime/policy/breaker.js";
import { backoffMs, LatencyWindow, LOST_WINDOW_MS, RetryBudget } from "../../src/runtime/policy/budget.js";
import { PolicyEvents, type PolicyEvent } from "../../src/runtime/policy/events.js";
import { Refused } from "./fixtures/generated/fan/policytest.js";

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

function breaker(opts = {}) {
  const c = clock();
  const moves: string[] = [];
  const b = new Breaker(
    "svc",
    "i1",
    { failures: 3, ratio: 0.5, windowMs: 1000, openMs: 500, ...opts },
    c.now,
    (_b, from, to) => moves.push(`${from}->${to}`),
  );
  return { b, c, moves };
}

describe("circuit breaker", () => {
  it("stays closed below the threshold and opens at it", () => {
    const { b, moves } = breaker();
    b.record("failure", false);
    b.record("failure", false);
    expect(b.state).toBe("closed");
    expect(b.admits).toBe(true);
    b.record("failure", false);
    expect(b.state).toBe("open");
    expect(b.admits).toBe(false);
    expect(moves).toEqual(["closed->open"]);
  });

  it("needs the failure ratio too: 3 failures among many successes keep it closed", () => {
    const { b } = breaker();
    for (let i = 0; i < 10; i++) b.record("success", false);
    for (let i = 0; i < 3; i++) b.record("failure", false);
    expect(b.state).toBe("closed");
  });

  it("forgets failures that slid out of the window", () => {
    const { b, c } = breaker();
    b.record("failure", false);
    b.record("failure", false);
    c.advance(1100);
    b.record("failure", false);
    expect(b.state).toBe("closed");
    expect(b.window.failures).toBe(1);
  });

  it("half-open after openMs lets exactly one probe through; its success closes", () => {
    const { b, c, moves } = breaker();
    for (let i = 0; i < 3; i++) b.record("failure", false);
    c.advance(499);
    expect(b.state).toBe("open");
    c.advance(1);
    expect(b.state).toBe("half-open");
    expect(b.admits).toBe(true);
    const probe = b.acquire();
    expect(probe).toBe(true);
    // A second caller is not admitted while the probe is out; it may wait for the outcome.
    expect(b.admits).toBe(false);
    expect(b.probing).toBe(true);
    let woke = false;
    void b.probeSettled().then(() => (woke = true));
    b.record("success", true);
    expect(b.state).toBe("closed");
    expect(moves).toEqual(["closed->open", "open->half-open", "half-open->closed"]);
    return Promise.resolve().then(() => expect(woke).toBe(true));
  });

  it("a failing probe opens it again for another openMs", () => {
    const { b, c, moves } = breaker();
    for (let i = 0; i < 3; i++) b.record("failure", false);
    c.advance(500);
    expect(b.acquire()).toBe(true);
    b.record("failure", true);
    expect(b.state).toBe("open");
    c.advance(499);
    expect(b.state).toBe("open");
    c.advance(1);
    expect(b.state).toBe("half-open");
    expect(moves).toEqual(["closed->open", "open->half-open", "half-open->open", "open->half-open"]);
  });

  it("a cancelled probe frees the slot without deciding", () => {
    const { b, c } = breaker();
    for (let i = 0; i < 3; i++) b.record("failure", false);
    c.advance(500);
    expect(b.acquire()).toBe(true);
    b.record("neutral", true);
    expect(b.state).toBe("half-open");
    expect(b.admits).toBe(true);
  });

  it("declared errors and the caller's mistakes never count; transport failures do", () => {
    expect(verdictOf(new Refused({ why: "no" }))).toBe("success");
    expect(new Refused({ why: "no" }).code).toBe(Code.UNAVAILABLE);
    expect(verdictOf(new FanError(Code.INVALID_ARGUMENT, "x"))).toBe("success");
    expect(verdictOf(new FanError(Code.NOT_FOUND, "x"))).toBe("success");
    expect(verdictOf(new FanError(Code.CANCELLED, "x"))).toBe("neutral");
    for (const code of [Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.INTERNAL])
      expect(verdictOf(new FanError(code, "x"))).toBe("failure");
    expect(verdictOf(new Error("ECONNRESET"))).toBe("failure");
    const { b } = breaker();
    for (let i = 0; i < 10; i++) b.record(verdictOf(new Refused({ why: "no" })), false);
    expect(b.state).toBe("closed");
  });

  it("Breakers logs one line per transition and emits events", () => {
    const c = clock();
    const lines: { msg: string }[] = [];
    const log = pino({ level: "info" }, { write: (s: string) => lines.push(JSON.parse(s) as { msg: string }) });
    const events = new PolicyEvents(() => undefined);
    const seen: PolicyEvent[] = [];
    events.on((e) => seen.push(e));
    const all = new Breakers({ failures: 2, openMs: 100 }, log, events, c.now);
    const b = all.of("svc", "i1");
    for (let i = 0; i < 5; i++) b.record("failure", false);
    expect(all.anyNotClosed("svc")).toBe(true);
    expect(all.list()).toMatchObject([{ service: "svc", instanceId: "i1", state: "open" }]);
    c.advance(100);
    expect(b.state).toBe("half-open");
    b.acquire();
    b.record("success", true);
    expect(all.anyNotClosed("svc")).toBe(false);
    expect(lines.map((l) => l.msg)).toEqual([
      "circuit breaker of svc i1 opened",
      "circuit breaker of svc i1 half-open",
      "circuit breaker of svc i1 closed",
    ]);
    expect(seen.map((e) => (e.type === "breaker" ? e.to : e.type))).toEqual(["open", "half-open", "closed"]);
  });
});

describe("retry budget, backoff, latency window", () => {
  it("stops retries after sustained failure and allows them again after successes", () => {
    // Without the floor of retries a second (its own case below).
    const b = new RetryBudget({ maxTokens: 10, tokenRatio: 0.1, minRetriesPerSec: 0 });
    expect(b.allows()).toBe(true);
    let failures = 0;
    while (b.allows()) {
      b.failure();
      failures++;
    }
    expect(failures).toBe(5);
    for (let i = 0; i < 20; i++) b.failure();
    expect(b.tokens).toBe(0);
    let successes = 0;
    while (!b.allows()) {
      b.success();
      successes++;
    }
    // From empty, 51 successes (5.1 tokens) before the bucket is more than half full again.
    expect(successes).toBe(51);
  });

  it("allows minRetriesPerSec retries a second once the bucket is half empty, no more", () => {
    let now = 1_000_000;
    const b = new RetryBudget({ minRetriesPerSec: 10 }, () => now);
    for (let i = 0; i < 10; i++) b.failure();
    expect(b.tokens).toBe(0);
    let allowed = 0;
    while (b.allows()) allowed++;
    // The floor's bucket starts full: ten at once, then one every 100 ms.
    expect(allowed).toBe(10);
    now += 250;
    allowed = 0;
    while (b.allows()) allowed++;
    expect(allowed).toBe(2);
    now += 60_000;
    allowed = 0;
    while (b.allows()) allowed++;
    expect(allowed).toBe(10);
    expect(new RetryBudget({ minRetriesPerSec: 0 }, () => now).allows()).toBe(true);
  });

  it("takes one token for the failures of one lost instance within the window, one per instance", () => {
    let now = 1_000_000;
    const b = new RetryBudget({ minRetriesPerSec: 0 }, () => now);
    for (let i = 0; i < 16; i++) b.failure("i1");
    expect(b.tokens).toBe(9);
    for (let i = 0; i < 16; i++) b.failure("i2");
    expect(b.tokens).toBe(8);
    now += LOST_WINDOW_MS - 1;
    b.failure("i1");
    expect(b.tokens).toBe(8);
    now += 1;
    b.failure("i1");
    expect(b.tokens).toBe(7);
    // Failures not attributed to a lost instance take one each, as before.
    for (let i = 0; i < 3; i++) b.failure();
    expect(b.tokens).toBe(4);
    expect(b.allows()).toBe(false);
  });

  it("full-jitter exponential backoff stays within its cap", () => {
    expect(backoffMs(1, { baseMs: 100, maxMs: 1000 }, () => 0.999)).toBe(99);
    expect(backoffMs(3, { baseMs: 100, maxMs: 1000 }, () => 0.999)).toBe(399);
    expect(backoffMs(10, { baseMs: 100, maxMs: 1000 }, () => 0.999)).toBe(999);
    expect(backoffMs(2, { baseMs: 100 }, () => 0)).toBe(0);
  });

  it("p95 of the recent latencies", () => {
    const w = new LatencyWindow();
    for (let i = 0; i < 15; i++) w.add(i);
    expect(w.p95()).toBeUndefined();
    for (let i = 15; i < 100; i++) w.add(i);
    expect(w.p95()).toBeGreaterThanOrEqual(90);
    expect(w.p95()).toBeLessThanOrEqual(96);
  });
});
