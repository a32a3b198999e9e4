import { FanError } from "fan/runtime";
import { createTestApp, type TestApp } from "fan/testing";
import { afterEach, describe, expect, it } from "vitest";
import { AuditImpl, captureLogger, CatalogImpl, catalogConfig } from "./fixtures/impl.js";
import { Audit, Catalog, item, ItemNotFound, OutOfStock } from "./fixtures/shop.js";

const modes = [{ serialize: false }, { serialize: true }] as const;

describe.each(modes)("rpc through the generated client (serialize: $serialize)", ({ serialize }) => {
  let app: TestApp;
  afterEach(async () => app?.stop());

  async function started(impl = new CatalogImpl(), logger = captureLogger(), revealErrors = true) {
    app = createTestApp({ serialize, logger: logger.log, revealErrors }).serve(Catalog, impl, {
      config: catalogConfig,
    });
    await app.start();
    return { impl, client: app.client(Catalog), records: logger.records };
  }

  it("returns the typed reply of an rpc", async () => {
    const impl = new CatalogImpl();
    impl.items.set("a", item("a", { tags: ["red"] }));
    const { client } = await started(impl);
    const got = await client.get({ id: "a" });
    expect(got).toEqual(item("a", { tags: ["red"] }));
    expect(got.createdAt).toBeInstanceOf(Date);
    expect(await client.sum({ a: 2, b: 40 })).toBe(42);
  });

  it("resolves a void rpc with undefined and fills defaulted parameters", async () => {
    const { impl, client } = await started();
    await expect(client.add({ item: item("b") })).resolves.toBeUndefined();
    await client.add({ item: item("c"), quantity: 3 });
    expect(impl.calls).toEqual(["add:1", "add:3"]);
    expect(impl.items.has("b")).toBe(true);
  });

  it("rebuilds IDL errors as the generated class with their fields", async () => {
    const { client } = await started();
    const err = await client.get({ id: "nope" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ItemNotFound);
    expect(err).toMatchObject({ code: "NOT_FOUND", itemId: "nope", message: "no item nope" });
    const oos = await client.add({ item: item("d"), quantity: 11 }).catch((e: unknown) => e);
    expect(oos).toBeInstanceOf(OutOfStock);
    expect((oos as OutOfStock).available).toBe(10);
    expect((oos as OutOfStock).since).toEqual(new Date("2024-01-02T03:04:05.000Z"));
    expect((oos as OutOfStock).code).toBe("FAILED_PRECONDITION");
  });

  it("rejects bad arguments with INVALID_ARGUMENT naming the field, without calling the handler", async () => {
    const { impl, client } = await started();
    const err = await client.add({ item: { ...item("e"), name: "x".repeat(21) } }).catch((e: unknown) => e);
    expect(FanError.is(err)).toBe(true);
    expect(err).toMatchObject({ code: "INVALID_ARGUMENT", details: { path: "item.name" } });
    // Checked by the client (serialize) or by the server (values): either way the message names the method.
    expect((err as Error).message).toMatch(/^item\.name: .*, in a request to test\.shop\.Catalog\.add$/);
    const err2 = await client.add({ item: item("e"), quantity: 0 }).catch((e: unknown) => e);
    expect(err2).toMatchObject({ code: "INVALID_ARGUMENT", details: { path: "quantity" } });
    const err3 = await client.sum({ a: 1 } as never).catch((e: unknown) => e);
    expect(err3).toMatchObject({
      code: "INVALID_ARGUMENT",
      details: { path: "b" },
      message: "b: missing required field of type int, in a request to test.shop.Catalog.sum",
    });
    expect(impl.calls).toEqual([]);
  });

  it("turns an invalid reply into INTERNAL with the trace id only, and logs the field as an error", async () => {
    const { impl, client, records } = await started(new CatalogImpl(), captureLogger(), false);
    const err = (await client.bad().catch((e: unknown) => e)) as FanError;
    expect(err).toMatchObject({ code: "INTERNAL" });
    expect(err.message).toMatch(/^invalid reply from test\.shop\.Catalog\.bad \(trace [0-9a-f]{32}\)$/);
    expect(err.cause).toBeUndefined();
    expect(impl.calls).toEqual(["bad"]);
    expect(app.counters.badReplies).toBe(1);
    const why = "reply.name: expected a string, got number 42";
    const rec = records.find((r) => r.msg === `test.shop.Catalog.bad returned an invalid reply: ${why}`);
    expect(rec).toMatchObject({ service: "test.shop.Catalog", method: "bad", level: 50 });
    expect(err.message).toContain(String(rec?.traceId));
  });

  it("in a test app, an invalid reply's INTERNAL error names the method, the field and the rule", async () => {
    const { client } = await started();
    const err = (await client.bad().catch((e: unknown) => e)) as FanError;
    expect(err.code).toBe("INTERNAL");
    expect(err.message).toMatch(
      /^invalid reply from test\.shop\.Catalog\.bad \(trace [0-9a-f]{32}\): reply\.name: expected a string, got number 42$/,
    );
    expect(err.cause).toMatchObject({ code: "INVALID_ARGUMENT", details: { path: "reply.name" } });
  });

  it("turns unknown exceptions into INTERNAL without leaking the message or stack, logged with the trace id", async () => {
    const { client, records } = await started(new CatalogImpl(), captureLogger(), false);
    const err = (await client.boom().catch((e: unknown) => e)) as FanError;
    expect(err.code).toBe("INTERNAL");
    expect(err.message).not.toContain("hunter2");
    expect(JSON.stringify(err.details ?? null)).not.toContain("hunter2");
    expect(err.cause).toBeUndefined();
    const rec = records.find((r) => r.msg === "handler failed");
    expect(rec).toBeDefined();
    expect(JSON.stringify(rec)).toContain("hunter2");
    expect(err.message).toContain(String(rec?.traceId));
    expect(rec).toMatchObject({ service: "test.shop.Catalog", method: "boom" });
  });

  it("serve refuses a handler that lacks a function for an rpc or push, naming every one", async () => {
    const partial = { get: () => item("z"), sum: "not a function" } as unknown as CatalogImpl;
    const err = (() => {
      try {
        createTestApp({ serialize }).serve(Catalog, partial, { config: catalogConfig });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(FanError.is(err)).toBe(true);
    expect(err).toMatchObject({ code: "INVALID_ARGUMENT" });
    const message = (err as Error).message;
    expect(message).toMatch(/^serve test\.shop\.Catalog: the handler has no function for /);
    for (const m of ["rpc sum", "rpc add", "rpc bad", "rpc boom", "push invalidate"]) expect(message).toContain(m);
    expect(message).not.toContain("rpc get");
  });
});

describe("serve checks the handler's subscriptions", () => {
  it("names each `on` subscription whose handler function is missing", () => {
    const half = { onItemChanged: () => undefined } as unknown as AuditImpl;
    expect(() => createTestApp().serve(Audit, half)).toThrow(
      "serve test.shop.Audit: the handler has no function for on test.shop.Catalog.flush (onFlush)",
    );
    expect(() => createTestApp().serve(Audit, new AuditImpl())).not.toThrow();
  });
});

describe("calls with nothing to reach", () => {
  it("fail with UNAVAILABLE naming the service and what is registered", async () => {
    const app = createTestApp();
    await app.start();
    const err = await app
      .client(Catalog)
      .get({ id: "a" })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "UNAVAILABLE" });
    expect((err as Error).message).toContain("test.shop.Catalog");
    expect((err as Error).message).toContain("no instance is registered");
    // The generated code's range, as written (semver would print `<2.0.0-0` for 1.x).
    expect((err as Error).message).toMatch(/^no instance of test\.shop\.Catalog \d+\.x \(no instance is registered\)$/);
    await app.stop();
  });

  it("fail with UNAVAILABLE naming the versions when none satisfies the range", async () => {
    const app = createTestApp().serve(Catalog, new CatalogImpl(), { config: catalogConfig });
    await app.start();
    const err = await app
      .client(Catalog, { version: "^2" })
      .sum({ a: 1, b: 1 })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "UNAVAILABLE", details: { range: "^2" } });
    // The range as written, not semver's `>=2.0.0 <3.0.0-0`.
    expect((err as Error).message).toMatch(/^no instance of test\.shop\.Catalog \^2 \(versions available: 1\.2\.0\)$/);
    expect(() => app.client(Catalog, { version: "not a range" })).toThrow(/invalid version range/);
    await app.stop();
  });

  it("fail with a FanError after the app stopped, and name a pinned transport the app lacks", async () => {
    const app = createTestApp().serve(Catalog, new CatalogImpl(), { config: catalogConfig });
    await app.start();
    const pinned = await app
      .client(Catalog, { transport: "http" })
      .sum({ a: 1, b: 1 })
      .catch((e: unknown) => e);
    expect(pinned).toMatchObject({ code: "UNAVAILABLE" });
    expect((pinned as Error).message).toContain("pinned to http, which this app does not have");
    const client = app.client(Catalog);
    expect(await client.sum({ a: 1, b: 1 })).toBe(2);
    await app.stop();
    const after = await client.sum({ a: 1, b: 1 }).catch((e: unknown) => e);
    expect(FanError.is(after)).toBe(true);
    expect(after).toMatchObject({ code: "UNAVAILABLE" });
    const unstarted = createTestApp();
    const fresh = await unstarted
      .client(Catalog)
      .sum({ a: 1, b: 1 })
      .catch((e: unknown) => e);
    expect(fresh).toMatchObject({ code: "UNAVAILABLE" });
    await unstarted.stop();
  });
});
