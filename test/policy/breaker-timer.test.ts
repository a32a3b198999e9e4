/**
 * An open breaker turns half-open at `openMs` by itself, while nobody calls or reads it: its
 * event (and so its log line and `fan_breaker_state`) comes on time, not at the next
 * `breakerStates()` or call; a breaker closed again, or an App stopped, leaves no timer behind.
 */
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { type App, type AppOptions, createApp } from "../../src/runtime/app/app.js";
import { memoryRegistry } from "../../src/runtime/discovery/index.js";
import { shortId } from "../../src/runtime/ids.js";
import { Breakers } from "../../src/runtime/policy/breaker.js";
import { type PolicyEvent, PolicyEvents } from "../../src/runtime/policy/events.js";
import { parse, sample } from "../telemetry/prom.js";
import { rejection, until } from "../transports/conformance.js";
import { FlakyImpl } from "./fixtures/handlers.js";
import { Flaky } from "./fixtures/generated/fan/policytest.js";

const silent = pino({ level: "silent" });
const service = Flaky.descriptor.name;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Breakers on the real clock, and the transitions they reported (read without touching a breaker). */
function breakers(openMs: number): { all: Breakers; moves: string[] } {
  const moves: string[] = [];
  const events = new PolicyEvents(() => undefined);
  events.on((e: PolicyEvent) => {
    if (e.type === "breaker") moves.push(`${e.instanceId}:${e.from}->${e.to}`);
  });
  return { all: new Breakers({ failures: 2, openMs }, silent, events), moves };
}

describe("breaker timer", () => {
  it("an open breaker nobody reads turns half-open at openMs", async () => {
    const { all, moves } = breakers(100);
    const b = all.of("svc", "i1");
    b.record("failure", false);
    b.record("failure", false);
    expect(moves).toEqual(["i1:closed->open"]);
    await sleep(60);
    expect(moves).toEqual(["i1:closed->open"]);
    await sleep(140);
    expect(moves).toEqual(["i1:closed->open", "i1:open->half-open"]);
  });

  it("a probe that fails opens it again, and the next half-open comes openMs later by itself", async () => {
    const { all, moves } = breakers(80);
    const b = all.of("svc", "i1");
    b.record("failure", false);
    b.record("failure", false);
    await until(() => moves.length === 2, 2000);
    expect(b.acquire()).toBe(true);
    b.record("failure", true);
    expect(moves.at(-1)).toBe("i1:half-open->open");
    await sleep(200);
    expect(moves.slice(2)).toEqual(["i1:half-open->open", "i1:open->half-open"]);
  });

  it("no transition after the App's breakers closed (the App stopped)", async () => {
    const { all, moves } = breakers(50);
    const b = all.of("svc", "i1");
    b.record("failure", false);
    b.record("failure", false);
    all.close();
    await sleep(120);
    expect(moves).toEqual(["i1:closed->open"]);
  });
});

describe("breaker timer in an App", () => {
  const apps: App[] = [];
  afterEach(async () => {
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
  });

  it("fan_breaker_state says half-open at openMs with no call and no breakerStates() in between", async () => {
    const cluster = `polt-${process.pid}-${shortId()}`;
    const base: AppOptions = { cluster, discovery: memoryRegistry(), logger: silent, transports: { http: {} } };
    const a = new FlakyImpl("a");
    a.mode = "internal";
    const server = createApp(base).serve(Flaky, a, { instanceId: "a", transports: ["http"] });
    apps.push(server);
    await server.start();
    const caller = createApp({ ...base, policy: { breaker: { failures: 2, openMs: 1000 }, retry: false } });
    apps.push(caller);
    const seen: string[] = [];
    let openedAt = 0;
    caller.policy.on((e) => {
      if (e.type !== "breaker") return;
      seen.push(e.to);
      if (e.to === "open") openedAt = Date.now();
    });
    await caller.start();
    const set = await caller.watch(service);
    await until(() => set.instances().length === 1);
    const client = caller.client(Flaky);
    for (let i = 0; i < 2; i++) await rejection(() => client.read({ n: i }));
    const state = async (): Promise<number | undefined> =>
      sample(parse(await caller.metrics()), "fan_breaker_state", { service, instance: "a" });
    expect(await state()).toBe(2);
    expect(seen).toEqual(["open"]);
    await until(() => seen.length > 1, 5000);
    expect(Date.now() - openedAt).toBeGreaterThanOrEqual(990);
    expect(seen).toEqual(["open", "half-open"]);
    expect(await state()).toBe(1);
    const s = parse(await caller.metrics());
    expect(sample(s, "fan_breaker_transitions_total", { service, instance: "a", to: "half-open" })).toBe(1);
    expect(a.arrivals).toHaveLength(2);
  });
});
