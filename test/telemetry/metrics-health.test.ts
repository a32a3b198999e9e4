/**
 * Metrics and health through Apps and real transports: `/metrics` scraped over http after a
 * known load parses and shows the right counts on both sides; redeliveries are counted; the
 * admin port answers /metrics, /health and /ready; `/health` flips to NOT_SERVING as soon as
 * stop begins; `fan.Health` check and watch over a broker transport (redis).
 */
import { describe, expect, it } from "vitest";
import { createApp, type App, HealthService } from "../../src/runtime/index.js";
import { memoryRegistry } from "../../src/runtime/discovery/index.js";
import { LocalHub, localTransport } from "../../src/runtime/transports/local/index.js";
import { captureLogger, eventually as waitFor } from "../runtime/fixtures/impl.js";
import { describeWithBroker, reachable } from "../transports/amqp-broker.js";
import { C, Hop } from "./fixtures.js";
import { parse, sample } from "./prom.js";

/** A local transport on a hub of its own: Apps of this one process then call each other over the network. */
const ownHub = () => localTransport({ hub: new LocalHub() });
const redisUp = await reachable("127.0.0.1", 6379);
const cluster = (): string => `telm-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const quiet = () => captureLogger("warn").log;

async function httpEndpoint(app: App, service: string): Promise<string> {
  const set = await app.watch(service);
  await waitFor(() => set.instances().length > 0, 10_000);
  return set.instances()[0]?.endpoints.http as string;
}

describe("metrics", () => {
  it("GET /metrics on the http transport shows the calls of a known load, both sides", async () => {
    const registry = memoryRegistry();
    const cl = cluster();
    const c = new Hop();
    const server = createApp({
      cluster: cl,
      discovery: registry,
      logger: quiet(),
      transports: { local: ownHub(), http: {} },
    }).serve(C, c, { transports: ["http"] });
    const caller = createApp({
      cluster: cl,
      discovery: registry,
      logger: quiet(),
      transports: { local: ownHub(), http: {} },
    });
    await server.start();
    await caller.start();
    try {
      const client = caller.client(C);
      for (let i = 0; i < 7; i++) await client.hop({ n: i });
      for (let i = 0; i < 3; i++) await client.hop({ n: i, fail: "NOT_FOUND" }).catch(() => undefined);
      const url = await httpEndpoint(caller, C.descriptor.name);
      const res = await fetch(`${url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/plain");
      const text = await res.text();
      const s = parse(text);
      const labels = { service: "test.tel.C", method: "hop", transport: "http" };
      expect(sample(s, "fan_server_calls_total", { ...labels, code: "OK" })).toBe(7);
      expect(sample(s, "fan_server_calls_total", { ...labels, code: "NOT_FOUND" })).toBe(3);
      expect(sample(s, "fan_server_call_duration_seconds_count", labels)).toBe(10);
      expect(sample(s, "fan_server_call_duration_seconds_bucket", { ...labels, le: "+Inf" })).toBe(10);
      expect(sample(s, "fan_server_in_flight", labels)).toBe(0);
      // The caller's own registry counts the same calls from its side.
      const mine = parse(await caller.metrics());
      expect(sample(mine, "fan_client_calls_total", { ...labels, code: "OK" })).toBe(7);
      expect(sample(mine, "fan_client_calls_total", { ...labels, code: "NOT_FOUND" })).toBe(3);
      expect(sample(mine, "fan_server_calls_total", labels)).toBeUndefined();
    } finally {
      await caller.stop();
      await server.stop();
    }
  });

  it("an in-process call counts both sides, with the same durations, and a call its caller gave up on", async () => {
    // The local value path counts the server side on the caller's pending call (one pair of
    // clock readings for both): the same counts and codes as an ObservedSink would give.
    const c = new Hop();
    const app = createApp({ logger: quiet() }).serve(C, c);
    await app.start();
    try {
      const client = app.client(C);
      for (let i = 0; i < 7; i++) await client.hop({ n: i });
      for (let i = 0; i < 3; i++) await client.hop({ n: i, fail: "NOT_FOUND" }).catch(() => undefined);
      // Held past its deadline: the caller fails at once, the server side ends when the handler does.
      let open: () => void = () => undefined;
      c.gate = new Promise((r) => (open = r));
      const late = await client.hop({ n: 0 }, { timeout: 30 }).catch((e: unknown) => e);
      expect((late as { code?: string }).code).toBe("DEADLINE_EXCEEDED");
      const labels = { service: "test.tel.C", method: "hop", transport: "local" };
      const during = parse(await app.metrics());
      expect(sample(during, "fan_server_in_flight", labels)).toBe(1);
      expect(sample(during, "fan_client_in_flight", labels)).toBe(0);
      c.gate = undefined;
      open();
      let s = parse(await app.metrics());
      for (let i = 0; i < 100 && sample(s, "fan_server_in_flight", labels) !== 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
        s = parse(await app.metrics());
      }
      for (const side of ["client", "server"]) {
        expect(sample(s, `fan_${side}_calls_total`, { ...labels, code: "OK" })).toBe(7);
        expect(sample(s, `fan_${side}_calls_total`, { ...labels, code: "NOT_FOUND" })).toBe(3);
        expect(sample(s, `fan_${side}_call_duration_seconds_sum`, labels)).toBeGreaterThan(0);
      }
      expect(sample(s, "fan_client_calls_total", { ...labels, code: "DEADLINE_EXCEEDED" })).toBe(1);
      expect(sample(s, "fan_server_calls_total", { ...labels, code: "DEADLINE_EXCEEDED" })).toBe(1);
      expect(sample(s, "fan_client_call_duration_seconds_count", labels)).toBe(11);
      expect(sample(s, "fan_server_call_duration_seconds_count", labels)).toBe(11);
    } finally {
      await app.stop();
    }
  });

  it("counts push redeliveries and expired pushes, per App registry", async () => {
    const c = new Hop();
    c.noteFailures = 2;
    const app = createApp({ logger: quiet(), transports: { local: { serialize: true } } }).serve(C, c);
    const other = createApp({ logger: quiet() });
    await app.start();
    try {
      await app.client(C).note({ id: "x" });
      await waitFor(() => c.notes.length >= 3, 10_000);
      const s = parse(await app.metrics());
      const labels = { service: "test.tel.C", method: "note", transport: "local" };
      expect(sample(s, "fan_push_redeliveries_total", labels)).toBe(2);
      expect(sample(s, "fan_server_calls_total", { ...labels, code: "UNAVAILABLE" })).toBe(2);
      expect(sample(s, "fan_server_calls_total", { ...labels, code: "OK" })).toBe(1);
      expect(sample(s, "fan_dropped_total", { reason: "deliveriesFailed" })).toBe(2);
      // Another App in the same process has its own registry: nothing of the first one's.
      expect(sample(parse(await other.metrics()), "fan_server_calls_total", labels)).toBeUndefined();
    } finally {
      await app.stop();
    }
  });

  it("exposes the policy slots", async () => {
    const app = createApp({ logger: quiet() });
    const m = app.telemetry.metrics;
    m?.retry("s", "m");
    m?.breakerState("s", "i1", "open");
    m?.shed("s", "m", "http");
    const s = parse(await app.metrics());
    expect(sample(s, "fan_client_retries_total", { service: "s", method: "m" })).toBe(1);
    expect(sample(s, "fan_breaker_state", { service: "s", instance: "i1" })).toBe(2);
    expect(sample(s, "fan_server_shed_total", { service: "s", transport: "http" })).toBe(1);
  });
});

describe("health", () => {
  it("/health flips to NOT_SERVING (503) as soon as stop begins, while a call still drains", async () => {
    const c = new Hop();
    const registry = memoryRegistry();
    const cl = cluster();
    const app = createApp({
      cluster: cl,
      discovery: registry,
      logger: quiet(),
      transports: { local: ownHub(), http: {} },
    }).serve(C, c, {
      transports: ["http"],
    });
    await app.start();
    const url = await httpEndpoint(app, C.descriptor.name);
    expect(await (await fetch(`${url}/health`)).json()).toEqual({ status: "SERVING" });
    expect((await fetch(`${url}/ready`)).status).toBe(200);
    let open: () => void = () => undefined;
    c.gate = new Promise((r) => (open = r));
    const caller = createApp({
      cluster: cl,
      discovery: registry,
      logger: quiet(),
      transports: { local: ownHub(), http: {} },
    });
    const inFlight = caller.client(C).hop({ n: 1 });
    await waitFor(() => c.contexts.length === 1, 10_000);
    const stopping = app.stop();
    const res = await fetch(`${url}/health`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: "NOT_SERVING" });
    const ready = await fetch(`${url}/ready`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { reasons: string[] }).reasons).toEqual(["the app is stopping"]);
    open();
    await expect(inFlight).resolves.toBeDefined();
    await stopping;
    await caller.stop();
  });

  it("the admin port answers /metrics, /health and /ready for an App not on http", async () => {
    const app = createApp({ logger: quiet(), admin: { port: 0 } }).serve(C, new Hop());
    await app.start();
    const base = `http://127.0.0.1:${app.adminPort}`;
    try {
      await app.client(C).hop({ n: 1 });
      expect((await fetch(`${base}/health`)).status).toBe(200);
      expect(await (await fetch(`${base}/ready`)).json()).toEqual({ ready: true, reasons: [] });
      const s = parse(await (await fetch(`${base}/metrics`)).text());
      expect(sample(s, "fan_server_calls_total", { service: "test.tel.C", method: "hop", code: "OK" })).toBe(1);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    } finally {
      await app.stop();
    }
    await expect(fetch(`${base}/health`)).rejects.toThrow();
  });
});

describeWithBroker(
  redisUp,
  "Redis",
  "fan.Health over redis",
)("fan.Health over a broker transport (redis)", () => {
  it("check answers per service, and watch answers when stop begins", async () => {
    const registry = memoryRegistry();
    const cl = cluster();
    const server = createApp({
      cluster: cl,
      discovery: registry,
      logger: quiet(),
      transports: { local: ownHub(), redis: {} },
    }).serve(C, new Hop(), { transports: ["redis"] });
    const caller = createApp({
      cluster: cl,
      discovery: registry,
      logger: quiet(),
      transports: { local: ownHub(), redis: {} },
    });
    await server.start();
    await caller.start();
    try {
      const health = caller.client(HealthService, { transport: "redis" });
      expect(await health.check({ service: "test.tel.C" })).toEqual({ status: "SERVING" });
      expect(await health.check({ service: "test.tel.Nope" })).toEqual({ status: "SERVICE_UNKNOWN" });
      expect(await health.check({})).toEqual({ status: "SERVING" });
      const watching = health.watch({ service: "test.tel.C", last: "SERVING" }, { timeout: 20_000 });
      await new Promise((r) => setTimeout(r, 200));
      const stopping = server.stop();
      expect(await watching).toEqual({ status: "NOT_SERVING" });
      await stopping;
    } finally {
      await server.stop();
      await caller.stop();
    }
  }, 60_000);

  it("counts redeliveries and the dead letter of a push that keeps failing", async () => {
    const registry = memoryRegistry();
    const cl = cluster();
    const c = new Hop();
    c.noteFailures = 100;
    const redis = { maxDeliveries: 2, retryDelayMs: 20, claimIdleMs: 200 };
    const server = createApp({
      cluster: cl,
      discovery: registry,
      logger: quiet(),
      transports: { local: ownHub(), redis },
    }).serve(C, c, { transports: ["redis"] });
    const caller = createApp({
      cluster: cl,
      discovery: registry,
      logger: quiet(),
      transports: { local: ownHub(), redis },
    });
    await server.start();
    await caller.start();
    try {
      await caller.client(C, { transport: "redis" }).note({ id: "doomed" });
      const labels = { service: "test.tel.C", method: "note", transport: "redis" };
      const deadline = Date.now() + 20_000;
      let s = parse(await server.metrics());
      while (sample(s, "fan_dead_letters_total", labels) === undefined && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        s = parse(await server.metrics());
      }
      expect(sample(s, "fan_dead_letters_total", labels)).toBe(1);
      expect(sample(s, "fan_push_redeliveries_total", labels)).toBe(1);
      expect(c.notes.map((n) => n.attempt)).toEqual([1, 2]);
    } finally {
      await caller.stop();
      await server.stop();
    }
  }, 60_000);
});
