import { Code, parseTraceparent, type Envelope } from "fan/runtime";
import { createTestApp, type TestApp } from "fan/testing";
import { afterEach, describe, expect, it } from "vitest";
import { CatalogImpl, catalogConfig, eventually, PricingImpl } from "./fixtures/impl.js";
import { Catalog, CatalogDescriptor, Pricing } from "./fixtures/shop.js";

const modes = [{ serialize: false }, { serialize: true }] as const;

describe.each(modes)("deadlines (serialize: $serialize)", ({ serialize }) => {
  let app: TestApp;
  afterEach(async () => app?.stop());

  async function started() {
    const catalog = new CatalogImpl();
    const pricing = new PricingImpl();
    app = createTestApp({ serialize }).serve(Catalog, catalog, { config: catalogConfig }).serve(Pricing, pricing);
    await app.start();
    return { catalog, pricing, client: app.client(Catalog) };
  }

  it("fails the client at the IDL @timeout with DEADLINE_EXCEEDED, and the handler's signal fires", async () => {
    const { catalog, client } = await started();
    const t0 = Date.now();
    const err = await client.slow({ ms: 2000 }).catch((e: unknown) => e);
    const took = Date.now() - t0;
    expect(err).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    expect(took).toBeGreaterThanOrEqual(195);
    expect(took).toBeLessThan(600);
    await eventually(() => catalog.seen.some((s) => s.method === "slow" && s.aborted === true));
    const seen = catalog.seen.find((s) => s.method === "slow");
    expect(seen?.deadline).toBeGreaterThanOrEqual(t0 + 200);
    expect(seen?.deadline).toBeLessThanOrEqual(t0 + 260);
  });

  it("honours a per-call timeout shorter or longer than the IDL's", async () => {
    const { client } = await started();
    const t0 = Date.now();
    await expect(client.slow({ ms: 500 }, { timeout: 50 })).rejects.toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    expect(Date.now() - t0).toBeLessThan(300);
    await expect(client.slow({ ms: 250 }, { timeout: 2000 })).resolves.toBe("done");
  });

  it("never sends a call whose deadline has already passed", async () => {
    const { catalog, client } = await started();
    await expect(client.slow({ ms: 1 }, { deadline: Date.now() - 1 })).rejects.toMatchObject({
      code: Code.DEADLINE_EXCEEDED,
    });
    expect(catalog.calls).toEqual([]);
  });

  it("cancels a call when the caller's signal aborts", async () => {
    const { client } = await started();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    await expect(client.slow({ ms: 150 }, { signal: ac.signal })).rejects.toMatchObject({ code: Code.CANCELLED });
  });

  it("gives a nested call the remaining deadline and the same trace", async () => {
    const { catalog, client } = await started();
    const t0 = Date.now();
    const quote = await client.nested({ ms: 0 });
    const outer = catalog.seen.find((s) => s.method === "nested");
    expect(outer).toBeDefined();
    // Pricing.quote's own timeout is 5 s; the nested call inherits Catalog.nested's 300 ms.
    expect(quote.deadline).toBe(outer?.deadline);
    expect(quote.deadline).toBeLessThanOrEqual(t0 + 320);
    expect(quote.traceId).toBe(outer?.traceId);
    const parent = parseTraceparent(quote.traceparent);
    expect(parent?.traceId).toBe(outer?.traceId);
  });

  it("fails a nested call at the inherited deadline even though its own timeout is longer", async () => {
    const { client } = await started();
    const t0 = Date.now();
    await expect(client.nested({ ms: 1000 })).rejects.toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    expect(Date.now() - t0).toBeLessThan(700);
  });

  it("continues a trace the caller passes in a traceparent header", async () => {
    const { catalog, client } = await started();
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    catalog.items.set("a", { id: "a", name: "n", price: 1, tags: [], createdAt: new Date(0) });
    await client.get({ id: "a" }, { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
    expect(catalog.seen.at(-1)?.traceId).toBe(traceId);
  });
});

describe("the server side", () => {
  const send = (app: TestApp, env: Envelope) =>
    app.localTransport.call(app.localTransport.hub.endpointOf("cat-1"), env, {
      signal: new AbortController().signal,
      deadline: Date.now() + 1000,
    });
  const late: Envelope = {
    v: 1,
    id: "late-1",
    kind: "call",
    service: CatalogDescriptor.name,
    method: "slow",
    headers: {},
    payload: { ms: 1 },
  };

  it.each(modes)(
    "refuses a call that arrives after its deadline without calling the handler (serialize: $serialize)",
    async ({ serialize }) => {
      const catalog = new CatalogImpl();
      const app = createTestApp({ serialize }).serve(Catalog, catalog, { config: catalogConfig, instanceId: "cat-1" });
      await app.start();
      const reply = await send(app, { ...late, headers: { deadline: Date.now() - 5 } });
      expect(reply.kind).toBe("error");
      expect(reply.payload).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
      expect(catalog.calls).toEqual([]);
      expect(app.counters.callsExpired).toBe(1);
      await app.stop();
    },
  );

  it("answers UNIMPLEMENTED for an unknown method and NOT_FOUND for a service it does not serve", async () => {
    const app = createTestApp().serve(Catalog, new CatalogImpl(), { config: catalogConfig, instanceId: "cat-1" });
    await app.start();
    expect((await send(app, { ...late, method: "nope" })).payload).toMatchObject({ code: Code.UNIMPLEMENTED });
    expect((await send(app, { ...late, method: "invalidate" })).payload).toMatchObject({ code: Code.UNIMPLEMENTED });
    expect((await send(app, { ...late, service: "test.shop.Other" })).payload).toMatchObject({ code: Code.NOT_FOUND });
    const bad = await send(app, { ...late, payload: { ms: "soon" } });
    // Decoded by the server: the message names the method it was for.
    expect(bad.payload).toMatchObject({
      code: Code.INVALID_ARGUMENT,
      details: { path: "ms" },
      message: expect.stringMatching(/^ms: expected .*, in a request to test\.shop\.Catalog\.slow$/),
    });
    await app.stop();
  });
});
