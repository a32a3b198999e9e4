import type { CallContext } from "fan/runtime";
import { createMock, createTestApp } from "fan/testing";
import { describe, expect, it } from "vitest";
import { mockIntegrationApi, IntegrationApi, SyncFailed } from "../../generated/integration/api.js";
import { mockPublicWines, PublicWines, WineNotFound } from "../../generated/retail/wines.js";
import { memoryRegistry } from "../../src/runtime/discovery/index.js";
import { AuditImpl, CatalogImpl, catalogConfig, PricingImpl } from "./fixtures/impl.js";
import { Audit, Catalog, type CatalogConfig, type Item, item, Pricing } from "./fixtures/shop.js";

describe("the test kit", () => {
  it("serves a generated mock in place of a service, recording calls and returning typed errors", async () => {
    const integration = mockIntegrationApi().ping.returns("pong");
    integration.status.throws(new SyncFailed({ storeId: "s1", reason: "offline" }));
    const app = createTestApp().mock(integration);
    await app.start();
    const client = app.client(IntegrationApi);
    expect(await client.ping()).toBe("pong");
    const err = await client.status({ storeId: "s1" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SyncFailed);
    expect((err as SyncFailed).reason).toBe("offline");
    expect(integration.ping.calls).toHaveLength(1);
    expect(integration.status.calls[0]?.req).toEqual({ storeId: "s1" });
    await app.stop();
  });

  it("serves a mock without the mocked service's dependencies or required config", async () => {
    // PublicWines depends on IntegrationApi (hard) and requires config key apiKey: a mock needs neither.
    const wines = mockPublicWines().invalidate.implements((_req, ctx) => {
      seen.push(ctx?.config);
    });
    const seen: unknown[] = [];
    const app = createTestApp({ dependencyTimeoutMs: 5000 }).mock(wines);
    const started = Date.now();
    try {
      await app.start();
      expect(Date.now() - started).toBeLessThan(1000);
      await app.client(PublicWines).invalidate({ storeId: "s1" }); // a push: resolves once queued
      await expect.poll(() => seen).toEqual([{}]);
      expect(wines.invalidate.calls.map((c) => c.req)).toEqual([{ storeId: "s1" }]);
    } finally {
      await app.stop();
    }
  });

  it("gives a mock the config passed to mock(), checked against the IDL", async () => {
    const seen: unknown[] = [];
    const wines = mockPublicWines().invalidate.implements((_req, ctx) => {
      seen.push((ctx?.config as { apiKey?: string } | undefined)?.apiKey);
    });
    const app = createTestApp().mock(wines, { config: { apiKey: "k" } });
    try {
      await app.start();
      await app.client(PublicWines).invalidate({ storeId: "s1" });
      await expect.poll(() => seen).toEqual(["k"]);
    } finally {
      await app.stop();
    }
    const bad = createTestApp().mock(mockPublicWines(), { config: { pageSize: 5 } });
    await expect(bad.start()).rejects.toMatchObject({ code: "FAILED_PRECONDITION" });
    await bad.stop();
  });
});

class Capturing extends CatalogImpl {
  received: unknown;
  override add(req: { item: Item; quantity: number }, ctx?: CallContext<CatalogConfig>): void {
    this.received = req.item;
    void ctx;
    super.add(req);
  }
}

describe("what a served mock tells the test", () => {
  it("records each call as { req } with a non-enumerable ctx, so toEqual compares requests only", async () => {
    const integration = mockIntegrationApi().status.returns({ storeId: "s1", pending: 0, errors: [] });
    const app = createTestApp().mock(integration);
    await app.start();
    await app.client(IntegrationApi).status({ storeId: "s1" });
    await integration.client.status({ storeId: "s2" });
    expect(integration.status.calls).toEqual([{ req: { storeId: "s1" } }, { req: { storeId: "s2" } }]);
    expect(integration.status.calls[0]?.ctx?.method).toBe("status");
    expect(Object.keys(integration.status.calls[0] ?? {})).toEqual(["req"]);
    expect(integration.status.calls[1]?.ctx).toBeUndefined();
    await app.stop();
  });

  it("names the field and the rule of a configured reply that does not fit the IDL", async () => {
    for (const serialize of [false, true]) {
      const integration = mockIntegrationApi().status.returns({ storeId: "s1", pending: 1.5, errors: [] });
      const app = createTestApp({ serialize }).mock(integration);
      await app.start();
      const err = await app
        .client(IntegrationApi)
        .status({ storeId: "s1" })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: "INTERNAL",
        message: expect.stringMatching(
          /^invalid reply from integration\.api\.IntegrationApi\.status \(trace [0-9a-f]{32}\): reply\.pending: expected an int \(a safe integer\), got number 1\.5$/,
        ),
        cause: { code: "INVALID_ARGUMENT", details: { path: "reply.pending" } },
      });
      await app.stop();
    }
  });

  it("says why an error the method does not declare became INTERNAL", async () => {
    const integration = mockIntegrationApi().status.throws(new WineNotFound({ inventoryId: "i1" }));
    const app = createTestApp().mock(integration);
    await app.start();
    const err = (await app
      .client(IntegrationApi)
      .status({ storeId: "s1" })
      .catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({ code: "INTERNAL", cause: expect.any(WineNotFound) });
    expect(err.message).toMatch(
      /: integration\.api\.IntegrationApi\.status threw WineNotFound: WineNotFound \(at .*\); handler threw retail\.wines\.WineNotFound, which integration\.api\.IntegrationApi\.status does not declare$/,
    );
    await app.stop();
  });

  it("names the method of a request that does not fit the IDL, through the mock's own client too", async () => {
    const integration = mockIntegrationApi().status.returns({ storeId: "s1", pending: 0, errors: [] });
    const err = await integration.client.status({} as never).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: "INVALID_ARGUMENT",
      message: "storeId: missing required field of type string, in a request to integration.api.IntegrationApi.status",
      details: { path: "storeId" },
    });
    expect(integration.status.calls).toEqual([]);
  });
});

describe("a served mock's events", () => {
  it("reach the services the test App serves that subscribe, as well as the mock client's subscribers", async () => {
    const catalog = createMock(Catalog);
    const pricing = new PricingImpl();
    const audit = new AuditImpl();
    const app = createTestApp().mock(catalog).serve(Pricing, pricing).serve(Audit, audit);
    await app.start();
    try {
      const seen: string[] = [];
      await catalog.client.events.itemChanged.subscribe((e) => void seen.push(e.item.id));
      await catalog.emit("itemChanged", { item: item("w1") });
      expect(seen).toEqual(["w1"]);
      await expect
        .poll(() => [...pricing.events, ...audit.events].sort())
        .toEqual(["audit:changed:w1", "pricing:changed:w1"]);
      // Checked against the IDL before anything is published anywhere.
      await expect(catalog.emit("itemChanged", { item: { id: 5 } } as never)).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
      expect(seen).toEqual(["w1"]);
    } finally {
      await app.stop();
    }
  });

  it("go through an App only while it runs: one mock reused by the Apps of several tests", async () => {
    const catalog = createMock(Catalog);
    const seen: string[] = [];
    await catalog.client.events.itemChanged.subscribe((e) => void seen.push(e.item.id));
    const first = new PricingImpl("first");
    const a = createTestApp().mock(catalog).serve(Pricing, first);
    await catalog.emit("itemChanged", { item: item("before-start") }); // a not started: mock client only
    await a.start();
    await catalog.emit("itemChanged", { item: item("a") });
    await expect.poll(() => first.events).toEqual(["first:changed:a"]);
    await a.stop();
    await catalog.emit("itemChanged", { item: item("after-stop") }); // resolves: a is out of it
    const second = new PricingImpl("second");
    const b = createTestApp().mock(catalog).serve(Pricing, second);
    await b.start();
    try {
      await catalog.emit("itemChanged", { item: item("b") });
      await expect.poll(() => second.events).toEqual(["second:changed:b"]);
      expect(first.events).toEqual(["first:changed:a"]);
      expect(seen).toEqual(["before-start", "a", "after-stop", "b"]);
    } finally {
      await b.stop();
    }
  });
});

describe("value and serialised local modes", () => {
  it("hands the caller's value over as is by default, and a decoded copy when serialising", async () => {
    for (const serialize of [false, true]) {
      const impl = new Capturing();
      const app = createTestApp({ serialize }).serve(Catalog, impl, { config: catalogConfig });
      await app.start();
      const it1 = item("v1", { tags: ["a"] });
      await app.client(Catalog).add({ item: it1, quantity: 2 });
      if (serialize) {
        expect(impl.received).not.toBe(it1);
        expect(impl.received).toEqual(it1);
        expect((impl.received as Item).createdAt).toBeInstanceOf(Date);
      } else expect(impl.received).toBe(it1);
      await app.stop();
    }
  });

  it("lets a serialising app and a value app call each other (the caller's mode decides)", async () => {
    const registry = memoryRegistry();
    for (const [serverSerializes, callerSerializes] of [
      [true, false],
      [false, true],
    ]) {
      const impl = new Capturing();
      const server = createTestApp({ serialize: serverSerializes, discovery: registry }).serve(Catalog, impl, {
        config: catalogConfig,
      });
      const caller = createTestApp({ serialize: callerSerializes, discovery: registry });
      await server.start();
      await caller.start();
      const sent = item("m1");
      await caller.client(Catalog).add({ item: sent, quantity: 1 });
      if (callerSerializes) expect(impl.received).not.toBe(sent);
      else expect(impl.received).toBe(sent);
      impl.items.set("m1", sent);
      const got = await caller.client(Catalog).get({ id: "m1" });
      expect(got.createdAt).toBeInstanceOf(Date);
      expect(got).toEqual(sent);
      await caller.stop();
      await server.stop();
    }
  });

  it("refuses an oversized payload in serialised mode with RESOURCE_EXHAUSTED", async () => {
    const app = createTestApp({ serialize: true, maxPayloadBytes: 2048 }).serve(Catalog, new CatalogImpl(), {
      config: catalogConfig,
    });
    await app.start();
    const err = await app
      .client(Catalog)
      .add({ item: item("big", { tags: Array.from({ length: 200 }, (_, i) => `tag-${i}`) }) })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "RESOURCE_EXHAUSTED" });
    await app.stop();
  });
});
