import { createApp, type ConfigSource, type TransportFactory } from "fan/runtime";
import { createTestApp } from "fan/testing";
import { describe, expect, it } from "vitest";
import { ObjectConfigSource } from "../../src/runtime/discovery/config.js";
import { memoryRegistry } from "../../src/runtime/discovery/index.js";
import {
  AuditImpl,
  captureLogger,
  CatalogImpl,
  catalogConfig,
  eventually,
  PricingImpl,
  sleep,
} from "./fixtures/impl.js";
import { Audit, Catalog, Pricing } from "./fixtures/shop.js";

/** A config source that records reads into `order`. */
function recordingConfig(order: string[], raw: Record<string, Record<string, unknown>>): ConfigSource {
  return {
    get: async (service) => {
      order.push(`config:${service}`);
      return raw[service] ?? {};
    },
    update: async () => undefined,
    watch: async () => async () => undefined,
    close: async () => undefined,
  };
}

describe("lifecycle", () => {
  it("runs config, preStart, start, postStart, then stop and postStop, in that order", async () => {
    const order: string[] = [];
    const impl = new CatalogImpl();
    impl.hooks = order;
    const app = createTestApp({ config: recordingConfig(order, { "test.shop.Catalog": catalogConfig }) }).serve(
      Catalog,
      impl,
      { instanceId: "cat-1" },
    );
    app.task("worker", async ({ signal }) => {
      order.push("task:start");
      await new Promise((r) => signal.addEventListener("abort", r));
      order.push("task:cancelled");
    });
    await app.start();
    expect(order).toEqual(["config:test.shop.Catalog", "preStart:cat-1", "start", "postStart", "task:start"]);
    await app.stop();
    expect(order.slice(5)).toEqual(["task:cancelled", "stop", "postStop"]);
  });

  it("fails start naming every missing required config key, and never runs preStart", async () => {
    const impl = new CatalogImpl();
    const app = createTestApp({ config: { "test.shop.Catalog": { db: { url: "x" } } } }).serve(Catalog, impl);
    const err = await app.start().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "FAILED_PRECONDITION" });
    expect((err as Error).message).toContain("config of test.shop.Catalog is missing apiKey, db.poolSize");
    expect(impl.hooks).toEqual([]);
    await app.stop();
  });

  it("fails start on a config value that breaks a constraint, and never logs secrets", async () => {
    const { log, records } = captureLogger();
    const bad = createTestApp({ logger: log }).serve(Catalog, new CatalogImpl(), {
      config: { ...catalogConfig, pageSize: 0 },
    });
    await expect(bad.start()).rejects.toThrow(/pageSize/);
    const ok = createTestApp({ logger: log }).serve(Catalog, new CatalogImpl(), { config: catalogConfig });
    await ok.start();
    const loaded = records.find((r) => r.msg === "config loaded");
    expect(loaded?.config).toMatchObject({ apiKey: "[secret]", db: { url: "mem://" } });
    expect(JSON.stringify(records)).not.toContain("s3cret");
    await ok.stop();
  });

  it("names every bad config value at once, and quotes no @secret value", async () => {
    const { log, records } = captureLogger();
    const config = { pageSize: 0, apiKey: 424242, db: { url: "mem://", poolSize: "two" } };
    const bad = createTestApp({ logger: log }).serve(Catalog, new CatalogImpl(), { config });
    const err = (await bad.start().then(
      () => new Error("start accepted a bad config"),
      (e: unknown) => e,
    )) as Error & { code?: string; cause?: { code?: string }; details?: { problems?: { key: string }[] }[] };
    // The App's start error holds each service's refusal in its details; it is the start's
    // FAILED_PRECONDITION, its cause the service's INVALID_ARGUMENT (docs/discovery.md).
    expect(err.code).toBe("FAILED_PRECONDITION");
    expect(err.message).toContain("the app cannot start: config of test.shop.Catalog is invalid");
    expect(err.cause?.code).toBe("INVALID_ARGUMENT");
    expect(err.message).toContain("config.pageSize: must be at least 1, got 0");
    expect(err.message).toContain("config.apiKey: expected a string (the value is @secret: not shown)");
    expect(err.message).toContain('config.db.poolSize: expected an int (a safe integer), got string "two"');
    expect(err.details?.[0]?.problems?.map((p) => p.key)).toEqual([
      "config.pageSize",
      "config.apiKey",
      "config.db.poolSize",
    ]);
    expect(JSON.stringify(err.details)).not.toContain("424242");
    expect(JSON.stringify(records)).not.toContain("424242");
  });

  it("warns naming config keys the IDL does not declare (a misspelt key leaves its default in force), at start and on update", async () => {
    const { log, records } = captureLogger();
    const source = new ObjectConfigSource({ "test.shop.Catalog": { ...catalogConfig, pageSise: 5 } }, log);
    const app = createTestApp({ logger: log, config: source }).serve(Catalog, new CatalogImpl());
    await app.start();
    const warned = () => records.filter((r) => r.level === 40 && Array.isArray(r.unknownKeys));
    expect(warned()).toHaveLength(1);
    expect(warned()[0]?.unknownKeys).toEqual(["pageSise"]);
    expect(String(warned()[0]?.msg)).toContain(
      "config of test.shop.Catalog has keys its IDL config block does not declare, ignored: pageSise (declared: ",
    );
    await source.replace("test.shop.Catalog", { ...catalogConfig, db: { ...catalogConfig.db, pool: 3 } });
    await eventually(() => warned().length === 2);
    expect(warned()[1]?.unknownKeys).toEqual(["db.pool"]);
    // The value of an undeclared key (maybe a misspelt secret) is not logged.
    const updated = records.filter((r) => r.msg === "config updated");
    expect((updated.at(-1)?.config as { db?: unknown } | undefined)?.db).toEqual({
      url: "mem://",
      poolSize: 2,
      pool: "[undeclared]",
    });
    expect(records.find((r) => r.msg === "config loaded")?.config).toMatchObject({ pageSise: "[undeclared]" });
    // A misspelt required key: the refusal names what is missing and what it was given instead.
    const { apiKey, ...noKey } = catalogConfig;
    void apiKey;
    const bad = createTestApp({ logger: log }).serve(Catalog, new CatalogImpl(), { config: { ...noKey, apiKye: "x" } });
    await expect(bad.start()).rejects.toThrow(
      "config of test.shop.Catalog is missing apiKey (keys it does not declare: apiKye)",
    );
    expect(JSON.stringify(records)).not.toContain('"apiKye":"x"');
    // A config with only declared keys says nothing.
    await source.replace("test.shop.Catalog", catalogConfig);
    await eventually(() => records.filter((r) => r.msg === "config updated").length === 2);
    expect(warned()).toHaveLength(2);
    await app.stop();
  });

  it("gives handlers their typed config with defaults", async () => {
    const impl = new CatalogImpl();
    impl.items.set("a", { id: "a", name: "n", price: 1, tags: [], createdAt: new Date(0) });
    const app = createTestApp().serve(Catalog, impl, { config: catalogConfig });
    await app.start();
    await app.client(Catalog).get({ id: "a" });
    expect(impl.seen[0]?.config).toEqual({ pageSize: 50, apiKey: "s3cret", db: { url: "mem://", poolSize: 2 } });
    await app.stop();
  });

  it("validates every config update: a good one reaches handlers, a bad one is refused and logged", async () => {
    const { log, records } = captureLogger();
    const source = new ObjectConfigSource({ "test.shop.Catalog": catalogConfig }, log);
    const impl = new CatalogImpl();
    impl.items.set("a", { id: "a", name: "n", price: 1, tags: [], createdAt: new Date(0) });
    const app = createTestApp({ logger: log, config: source }).serve(Catalog, impl);
    await app.start();
    const client = app.client(Catalog);
    await source.update("test.shop.Catalog", { pageSize: 7 });
    await eventually(() => records.some((r) => r.msg === "config updated"));
    await client.get({ id: "a" });
    expect(impl.seen.at(-1)?.config?.pageSize).toBe(7);
    await source.update("test.shop.Catalog", { pageSize: 0 });
    await eventually(() => records.some((r) => r.msg === "config update rejected; keeping the previous config"));
    await client.get({ id: "a" });
    expect(impl.seen.at(-1)?.config?.pageSize).toBe(7);
    await app.stop();
  });

  it("runs timers every interval until stop", async () => {
    const ticks: number[] = [];
    const app = createTestApp().timer("tick", "20ms", () => void ticks.push(Date.now()));
    await app.start();
    await eventually(() => ticks.length >= 3);
    await app.stop();
    const n = ticks.length;
    await sleep(60);
    expect(ticks.length).toBe(n);
    expect(() => app.timer("bad", "soon", () => undefined)).toThrow();
    expect(() => createTestApp().timer("bad", "soon", () => undefined)).toThrow(/timer interval/);
  });
});

describe.each([{ serialize: false }, { serialize: true }])("dependencies (serialize: $serialize)", ({ serialize }) => {
  it("waits for a hard dependency to become discoverable, then starts", async () => {
    const registry = memoryRegistry();
    const pricingApp = createTestApp({ serialize, discovery: registry, dependencyTimeoutMs: 30_000 }).serve(
      Pricing,
      new PricingImpl(),
    );
    const starting = pricingApp.start();
    let started = false;
    void starting.then(() => (started = true));
    await sleep(100);
    expect(started).toBe(false);
    const catalogApp = createTestApp({ serialize, discovery: registry }).serve(Catalog, new CatalogImpl(), {
      config: catalogConfig,
    });
    await catalogApp.start();
    await starting;
    expect(started).toBe(true);
    // Once started, the dependant reaches its dependency.
    expect(await pricingApp.client(Catalog).sum({ a: 20, b: 22 })).toBe(42);
    await pricingApp.stop();
    await catalogApp.stop();
  });

  it("fails start naming the missing hard dependency and range when it never appears", async () => {
    const app = createTestApp({ serialize, dependencyTimeoutMs: 150 }).serve(Pricing, new PricingImpl());
    const err = await app.start().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "UNAVAILABLE" });
    expect((err as Error).message).toMatch(
      /hard dependencies not discoverable: test\.shop\.Catalog \^1 \(needed by test\.shop\.Pricing\): .*within 150 ms/,
    );
    await app.stop();
  });

  it("lets stop cancel a start that waits for a dependency, instead of waiting out the timeout", async () => {
    const app = createTestApp({ serialize, dependencyTimeoutMs: 20_000 }).serve(Pricing, new PricingImpl());
    const started = app.start().catch((e: unknown) => e);
    await sleep(50); // start is waiting for Catalog now, or soon: stop cancels it either way
    const t0 = Date.now();
    await app.stop();
    expect(Date.now() - t0).toBeLessThan(2000);
    const err = await started;
    expect(err).toMatchObject({ code: "CANCELLED", message: expect.stringMatching(/stopped while starting/) });
  });

  it("counts a dependency served by the same app as present, and never waits for a soft one", async () => {
    const app = createTestApp({ serialize, dependencyTimeoutMs: 100 })
      .serve(Pricing, new PricingImpl())
      .serve(Catalog, new CatalogImpl(), { config: catalogConfig })
      .serve(Audit, new AuditImpl());
    await app.start();
    expect(app.instances()["test.shop.Pricing"]).toHaveLength(1);
    await app.stop();
  });
});

describe.each([{ serialize: false }, { serialize: true }])("graceful stop (serialize: $serialize)", ({ serialize }) => {
  it("drains in-flight calls before stopping, and refuses new ones meanwhile", async () => {
    const impl = new CatalogImpl();
    const app = createTestApp({ serialize }).serve(Catalog, impl, { config: catalogConfig });
    await app.start();
    const client = app.client(Catalog);
    const inflight = client.slow({ ms: 120 });
    await eventually(() => impl.calls.includes("slow")); // in flight when the stop begins
    const stopping = app.stop();
    await sleep(5);
    await expect(client.slow({ ms: 1 })).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await expect(inflight).resolves.toBe("done");
    await stopping;
    expect(impl.hooks.slice(-2)).toEqual(["stop", "postStop"]);
  });

  it("aborts the handlers still running when the grace period is over", async () => {
    const impl = new CatalogImpl();
    const app = createTestApp({ serialize, stopGraceMs: 50 }).serve(Catalog, impl, { config: catalogConfig });
    await app.start();
    const inflight = app
      .client(Catalog)
      .slow({ ms: 20_000 }, { timeout: 30_000 })
      .catch((e: { code: string }) => e.code);
    await eventually(() => impl.calls.includes("slow"));
    const t0 = Date.now();
    await app.stop();
    // The handler would run 20 s: stopping within a few seconds (grace 50 ms) shows it did not wait.
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await inflight).toBe("UNAVAILABLE");
    expect(impl.seen.find((s) => s.method === "slow")?.aborted).toBe(true);
  });
});

describe.each([{ serialize: false }, { serialize: true }])(
  "apps in one process (serialize: $serialize)",
  ({ serialize }) => {
    it("do not see each other's services unless they share discovery", async () => {
      const a = createTestApp({ serialize }).serve(Catalog, new CatalogImpl(), { config: catalogConfig });
      const b = createTestApp({ serialize });
      await a.start();
      await b.start();
      await expect(b.client(Catalog).sum({ a: 1, b: 2 })).rejects.toMatchObject({ code: "UNAVAILABLE" });
      await a.stop();
      await b.stop();

      const registry = memoryRegistry();
      const c = createTestApp({ serialize, discovery: registry }).serve(Catalog, new CatalogImpl(), {
        config: catalogConfig,
      });
      const d = createTestApp({ serialize, discovery: registry });
      await c.start();
      await d.start();
      expect(await d.client(Catalog).sum({ a: 1, b: 2 })).toBe(3);
      await c.stop();
      await d.stop();
    });

    it("apps sharing discovery reach each other's events", async () => {
      const sample = { id: "s1", name: "n", price: 1, tags: ["t"], createdAt: new Date(0) };
      const registry = memoryRegistry();
      const pub = createTestApp({ serialize, discovery: registry }).serve(Catalog, new CatalogImpl(), {
        config: catalogConfig,
      });
      const audit = new AuditImpl();
      const sub = createTestApp({ serialize, discovery: registry }).serve(Audit, audit);
      await pub.start();
      await sub.start();
      await pub.publisher(Catalog).emit("flush", {});
      await eventually(() => audit.events.length === 1);
      expect(audit.events).toEqual(["audit:flush"]);
      // The publishing App's mode decides: a serialising one hands the subscriber a decoded copy.
      await pub.publisher(Catalog).emit("itemChanged", { item: sample });
      await eventually(() => audit.events.length === 2);
      expect(audit.items.at(-1)).toEqual(sample);
      expect(audit.items.at(-1) === sample).toBe(!serialize);
      await pub.stop();
      await sub.stop();
    });

    it("serve refuses a transport the service does not allow or the app lacks", () => {
      expect(() =>
        createApp({ logger: captureLogger().log }).serve(Audit, new AuditImpl(), { transports: ["amqp"] }),
      ).toThrow(/may not be served over amqp/);
      expect(() =>
        createApp({ logger: captureLogger().log }).serve(Catalog, new CatalogImpl(), { transports: ["amqp"] }),
      ).toThrow(/no amqp transport/);
      expect(() => createApp({ logger: captureLogger().log, transports: { carrier: {} } as never })).toThrow(
        /unknown transport "carrier"/,
      );
    });
  },
);

describe("stop when a step fails", () => {
  it("still finishes stopping (state, signal handlers), then reports the first failure", async () => {
    const stuck: TransportFactory = () => ({
      name: "http",
      serve: async () => {
        throw new Error("not used");
      },
      call: async () => {
        throw new Error("not used");
      },
      push: async () => undefined,
      publish: async () => undefined,
      subscribe: async () => ({ close: async () => undefined }),
      close: async () => {
        throw new Error("socket stuck");
      },
    });
    const before = process.listenerCount("SIGTERM");
    const app = createApp({ logger: captureLogger().log, transports: { http: stuck }, handleSignals: true }).serve(
      Audit,
      new AuditImpl(),
      { transports: ["local"] },
    );
    await app.start();
    expect(process.listenerCount("SIGTERM")).toBe(before + 1);
    await expect(app.stop()).rejects.toThrow("socket stuck");
    expect(process.listenerCount("SIGTERM")).toBe(before);
    // stop() is idempotent: a second call reports the same outcome and runs nothing again.
    await expect(app.stop()).rejects.toThrow("socket stuck");
  });
});
