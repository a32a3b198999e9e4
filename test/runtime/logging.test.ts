import { componentLogger, type CallContext } from "fan/runtime";
import { createTestApp } from "fan/testing";
import { describe, expect, it } from "vitest";
import { captureLogger, CatalogImpl, catalogConfig } from "./fixtures/impl.js";
import { Catalog, type CatalogConfig, type Item } from "./fixtures/shop.js";

class LoggingCatalog extends CatalogImpl {
  override get(req: { id: string }, ctx: CallContext<CatalogConfig>): Item {
    ctx.log.info({ id: req.id }, "looking up");
    return super.get(req, ctx);
  }
}

describe("logging", () => {
  it.each([false, true])(
    "tags every record of a call with service, instance, method and trace id (serialize: %s)",
    async (serialize) => {
      const { log, records } = captureLogger();
      const impl = new LoggingCatalog();
      impl.items.set("a", { id: "a", name: "n", price: 1, tags: [], createdAt: new Date(0) });
      const app = createTestApp({ serialize, logger: log }).serve(Catalog, impl, {
        config: catalogConfig,
        instanceId: "cat-7",
      });
      await app.start();
      const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
      await app.client(Catalog).get({ id: "a" }, { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
      const rec = records.find((r) => r.msg === "looking up");
      expect(rec).toMatchObject({
        service: "test.shop.Catalog",
        instanceId: "cat-7",
        method: "get",
        traceId,
        id: "a",
        app: app.appId,
      });
      expect(rec?.spanId).toMatch(/^[0-9a-f]{16}$/);
      expect(rec?.spanId).not.toBe("00f067aa0ba902b7");
      await app.stop();
    },
  );

  it("gives libraries child loggers of the app's logger, never a global one", () => {
    const { log, records } = captureLogger();
    const app = createTestApp({ logger: log });
    componentLogger(app.logger, "legacy-lib").warn("hello from a library");
    expect(records.at(-1)).toMatchObject({ component: "legacy-lib", msg: "hello from a library", level: 40 });
    expect(app.logger).toBe(log);
  });
});
