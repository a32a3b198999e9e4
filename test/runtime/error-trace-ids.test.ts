/**
 * Every error a call or push rejects with carries its trace id (docs/runtime.md), including
 * those refused before anything was sent: a push no instance can take (its error is rewrapped to
 * say `maybeDelivered`, which used to drop the id), and a call made after its App stopped (which
 * rejected with a bare "directory is closed" naming neither the App's state nor the service).
 */
import { createTestApp } from "fan/testing";
import { expect, it } from "vitest";
import { CatalogImpl, catalogConfig } from "./fixtures/impl.js";
import { Catalog, item } from "./fixtures/shop.js";

const rejection = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: { code: string; message: string; traceId?: string; details?: Record<string, unknown> }) => e,
  );

it("a push no instance serves is refused with its trace id and maybeDelivered: false", async () => {
  const app = createTestApp();
  await app.start();
  const err = await rejection(app.client(Catalog).invalidate({ id: "a" }));
  expect(err?.code).toBe("UNAVAILABLE");
  expect(err?.traceId).toMatch(/^[0-9a-f]{32}$/);
  expect(err?.details?.maybeDelivered).toBe(false);
  // The rpc of the same client, for comparison: the same kind of refusal, the same id shape.
  const call = await rejection(app.client(Catalog).get({ id: "a" }));
  expect(call?.code).toBe("UNAVAILABLE");
  expect(call?.traceId).toMatch(/^[0-9a-f]{32}$/);
  await app.stop();
});

it("a call or push after the App stopped says so, naming the service, with a trace id", async () => {
  const app = createTestApp().serve(Catalog, new CatalogImpl(), { config: catalogConfig });
  await app.start();
  // One client used before the stop (its route and instance list cached), one made after it.
  const used = app.client(Catalog, { policy: false });
  await used.add({ item: item("a"), quantity: 1 });
  const usedWithPolicy = app.client(Catalog);
  await usedWithPolicy.add({ item: item("b"), quantity: 1 });
  await app.stop();
  const fresh = app.client(Catalog);
  for (const p of [
    fresh.get({ id: "a" }),
    fresh.invalidate({ id: "a" }),
    used.get({ id: "a" }),
    used.invalidate({ id: "a" }),
    usedWithPolicy.get({ id: "a" }),
  ]) {
    const err = await rejection(p);
    expect(err?.code).toBe("UNAVAILABLE");
    expect(err?.message).toContain("test.shop.Catalog");
    expect(err?.message).toContain("the App is stopped");
    expect(err?.traceId).toMatch(/^[0-9a-f]{32}$/);
  }
});
