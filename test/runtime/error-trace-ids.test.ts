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

it("one error object two calls were rejected with gets a copy per call, each with its own trace id and called service", async () => {
  // A transport failing every call of a lost connection rejects them with one FanError.
  const { Code, FanError, calledService } = await import("../../src/runtime/errors.js");
  const { withTraceId } = await import("../../src/runtime/telemetry/calls.js");
  const { formatTraceparent, newSpanId, newTraceId } = await import("../../src/runtime/ids.js");
  const shared = new FanError(Code.UNAVAILABLE, "connection lost");
  const t1 = newTraceId();
  const t2 = newTraceId();
  const first = withTraceId(
    shared,
    { traceparent: formatTraceparent(t1, newSpanId()) },
    "a.Inventory",
  ) as typeof shared;
  const second = withTraceId(shared, { traceparent: formatTraceparent(t2, newSpanId()) }, "a.Orders") as typeof shared;
  expect(first.traceId).toBe(t1);
  expect(calledService(first)).toBe("a.Inventory");
  expect(second).not.toBe(first);
  expect(second.traceId).toBe(t2);
  expect(calledService(second)).toBe("a.Orders");
  expect(FanError.is(second) && second.code === Code.UNAVAILABLE && second.message === "connection lost").toBe(true);
  // The same call's error again is kept as it is.
  expect(withTraceId(first, { traceparent: formatTraceparent(t1, newSpanId()) }, "a.Inventory")).toBe(first);
});
