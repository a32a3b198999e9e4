import { createTestApp, type TestApp } from "fan/testing";
import { afterEach, describe, expect, it } from "vitest";
import { AuditImpl, CatalogImpl, catalogConfig, eventually, sleep, PricingImpl } from "./fixtures/impl.js";
import { Audit, Catalog, item, Pricing } from "./fixtures/shop.js";

const modes = [{ serialize: false }, { serialize: true }] as const;

describe.each(modes)("pushes (serialize: $serialize)", ({ serialize }) => {
  let app: TestApp;
  afterEach(async () => app?.stop());

  it("delivers a push once the handler acks it, and redelivers after a failure", async () => {
    const catalog = new CatalogImpl();
    catalog.failPushes = 2;
    app = createTestApp({ serialize, transports: { local: { backoffMs: 1 } } }).serve(Catalog, catalog, {
      config: catalogConfig,
    });
    await app.start();
    await app.client(Catalog).invalidate({ id: "s1" });
    await eventually(() => catalog.pushes.length === 3);
    expect(catalog.pushes).toEqual([
      { id: "s1", attempt: 1 },
      { id: "s1", attempt: 2 },
      { id: "s1", attempt: 3 },
    ]);
    expect(app.counters.deliveriesFailed).toBe(2);
    await sleep(30);
    expect(catalog.pushes).toHaveLength(3);
  });

  it("drops a push whose @ttl expired before it was handled, and counts it", async () => {
    const catalog = new CatalogImpl();
    catalog.failPushes = 1;
    // The first delivery fails; the redelivery comes after the 100 ms TTL and must be dropped.
    app = createTestApp({ serialize, transports: { local: { backoffMs: 150 } } }).serve(Catalog, catalog, {
      config: catalogConfig,
    });
    await app.start();
    await app.client(Catalog).invalidate({ id: "s2" });
    await eventually(() => app.counters.pushesExpired === 1, 3000);
    expect(catalog.pushes).toEqual([{ id: "s2", attempt: 1 }]);
  });

  it("rejects a push with bad arguments at the caller or drops it unprocessed", async () => {
    const catalog = new CatalogImpl();
    app = createTestApp({ serialize }).serve(Catalog, catalog, { config: catalogConfig });
    await app.start();
    const sent = await app
      .client(Catalog)
      .invalidate({ id: 5 } as never)
      .then(
        () => "sent",
        (e: { code: string }) => e.code,
      );
    if (serialize) expect(sent).toBe("INVALID_ARGUMENT");
    else await eventually(() => app.counters.pushesDropped === 1);
    expect(catalog.pushes).toEqual([]);
  });
});

describe.each(modes)("events (serialize: $serialize)", ({ serialize }) => {
  let app: TestApp;
  afterEach(async () => app?.stop());

  async function started() {
    const catalog = new CatalogImpl();
    const p1 = new PricingImpl("p1");
    const p2 = new PricingImpl("p2");
    const a1 = new AuditImpl("a1");
    app = createTestApp({ serialize })
      .serve(Catalog, catalog, { config: catalogConfig })
      .serve(Pricing, p1)
      .serve(Pricing, p2)
      .serve(Audit, a1);
    await app.start();
    return { p1, p2, a1, publisher: app.publisher(Catalog) };
  }

  it("delivers each event once per subscribing service, load-balanced across its instances", async () => {
    const { p1, p2, a1, publisher } = await started();
    for (const id of ["e1", "e2", "e3", "e4"]) await publisher.emit("itemChanged", { item: item(id) });
    await eventually(() => p1.events.length + p2.events.length === 4 && a1.events.length === 4);
    await sleep(20);
    const pricing = [...p1.events, ...p2.events].map((e) => e.split(":").slice(1).join(":")).sort();
    expect(pricing).toEqual(["changed:e1", "changed:e2", "changed:e3", "changed:e4"]);
    expect(p1.events.length).toBe(2);
    expect(p2.events.length).toBe(2);
    expect(a1.events).toEqual(["a1:changed:e1", "a1:changed:e2", "a1:changed:e3", "a1:changed:e4"]);
  });

  it("delivers a @broadcast event to every instance of every subscriber", async () => {
    const { p1, p2, a1, publisher } = await started();
    await publisher.emit("flush", {});
    await eventually(() => p1.events.length === 1 && p2.events.length === 1 && a1.events.length === 1);
    expect([...p1.events, ...p2.events, ...a1.events]).toEqual(["p1:flush", "p2:flush", "a1:flush"]);
  });

  it("lets a client subscribe through client.events and stop with unsubscribe", async () => {
    const { publisher } = await started();
    const got: string[] = [];
    const sub = await app.client(Catalog).events.itemChanged.subscribe(({ item: it }) => void got.push(it.id));
    await publisher.emit("itemChanged", { item: item("c1") });
    await eventually(() => got.length === 1);
    await sub.unsubscribe();
    await publisher.emit("itemChanged", { item: item("c2") });
    await sleep(20);
    expect(got).toEqual(["c1"]);
  });

  it("refuses to publish an invalid payload", async () => {
    const { publisher } = await started();
    await expect(publisher.emit("itemChanged", { item: { ...item("x"), price: -1 } })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      details: { path: "itemChanged.item.price" },
    });
    // A name the IDL does not declare is a type error, and still an error at run time for untyped callers.
    // The payload is checked against the IDL at compile time too (not run: a type-level check).
    // @ts-expect-error itemChanged carries { item: Item }
    void (() => publisher.emit("itemChanged", { wrong: 1 }));
    // @ts-expect-error "nope" is not an event of Catalog
    await expect(publisher.emit("nope", {})).rejects.toMatchObject({ code: "UNIMPLEMENTED" });
  });
});
