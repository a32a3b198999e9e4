/**
 * Local transport: an event accepted before `stop()` is handled (stop drains the deliveries a
 * subscription holds, bounded by `stopGraceMs`); it was dropped without a word when `stop()`
 * followed the emit. In a test App an emit (a mock's too) resolves once the local subscribers
 * have run, so a test needs no sleep after it.
 */
import { createApp } from "fan/runtime";
import { createMock, createTestApp } from "fan/testing";
import { describe, expect, it } from "vitest";
import { AuditImpl, CatalogImpl, catalogConfig, sleep } from "./fixtures/impl.js";
import { Audit, Catalog, item } from "./fixtures/shop.js";

/** An Audit whose itemChanged handler takes `ms`. */
class SlowAudit extends AuditImpl {
  constructor(readonly ms: number) {
    super();
  }
  override async onItemChanged(e: Parameters<AuditImpl["onItemChanged"]>[0]): Promise<void> {
    await sleep(this.ms);
    super.onItemChanged(e);
  }
}

describe.each([{ serialize: false }, { serialize: true }])(
  "local events and stop (serialize: $serialize)",
  ({ serialize }) => {
    it("createApp: an event emitted just before stop() is handled before stop resolves", async () => {
      const audit = new SlowAudit(50);
      const app = createApp({ discovery: "memory", transports: { local: { serialize } } })
        .serve(Catalog, new CatalogImpl(), { config: catalogConfig })
        .serve(Audit, audit);
      await app.start();
      await app.publisher(Catalog).emit("itemChanged", { item: item("e1") });
      await app.stop();
      expect(audit.events).toEqual(["audit:changed:e1"]);
    });

    it("createApp: stop waits for held events at most stopGraceMs", async () => {
      const audit = new SlowAudit(60_000);
      const app = createApp({ discovery: "memory", stopGraceMs: 300, transports: { local: { serialize } } })
        .serve(Catalog, new CatalogImpl(), { config: catalogConfig })
        .serve(Audit, audit);
      await app.start();
      await app.publisher(Catalog).emit("itemChanged", { item: item("e2") });
      const t0 = Date.now();
      await app.stop();
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(audit.events).toEqual([]);
    });

    it("createTestApp: emit resolves once the subscribers ran, and stop after it loses nothing", async () => {
      const audit = new SlowAudit(30);
      const app = createTestApp({ serialize })
        .serve(Catalog, new CatalogImpl(), { config: catalogConfig })
        .serve(Audit, audit);
      await app.start();
      await app.publisher(Catalog).emit("itemChanged", { item: item("t1") });
      expect(audit.events).toEqual(["audit:changed:t1"]);
      await app.stop();
    });

    it("a subscriber that unsubscribes in its own handler is not held up by its own delivery", async () => {
      const app = createTestApp({ serialize }).serve(Catalog, new CatalogImpl(), { config: catalogConfig });
      await app.start();
      let got = 0;
      let unsubscribedIn = Number.POSITIVE_INFINITY;
      const sub = await app.client(Catalog).events.itemChanged.subscribe(async () => {
        got++;
        const t0 = Date.now();
        await sub.unsubscribe();
        unsubscribedIn = Date.now() - t0;
      });
      await app.publisher(Catalog).emit("itemChanged", { item: item("u1") });
      await app.publisher(Catalog).emit("itemChanged", { item: item("u2") });
      expect(got).toBe(1);
      expect(unsubscribedIn).toBeLessThan(500);
      await app.stop();
    });

    it("createTestApp: a mock's emit resolves once the App's subscribers ran", async () => {
      const catalog = createMock(Catalog);
      const audit = new SlowAudit(30);
      const app = createTestApp({ serialize }).mock(catalog).serve(Audit, audit);
      await app.start();
      await (catalog as unknown as { emit(n: string, p: unknown): Promise<void> }).emit("itemChanged", {
        item: item("m1"),
      });
      expect(audit.events).toEqual(["audit:changed:m1"]);
      await app.stop();
    });
  },
);
