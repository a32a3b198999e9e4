/**
 * A handler's `ctx.signal` follows the App's hard stop, the caller's signal and the deadline
 * only while its call runs. Both sources can outlive the call by far (the hard stop lives as
 * long as the App, a caller's signal may serve many calls), and `AbortSignal.any` kept every
 * call's composite on them until they aborted (Node 20): ~66 B per call for the App's lifetime.
 */
import type { CallContext } from "fan/runtime";
import { createTestApp, type TestApp } from "fan/testing";
import { afterEach, describe, expect, it } from "vitest";
import { CallCtx } from "../../src/runtime/call/callctx.js";
import { LazyAbort } from "../../src/runtime/transports/abort.js";
import { dependants } from "./fixtures/dependants.js";
import { CatalogImpl, catalogConfig } from "./fixtures/impl.js";
import { Catalog, type CatalogConfig } from "./fixtures/shop.js";

/** Keeps the signal of every `sum` call. */
class Keeper extends CatalogImpl {
  readonly signals: AbortSignal[] = [];
  override sum({ a, b }: { a: number; b: number }, ctx?: CallContext<CatalogConfig>): number {
    this.signals.push((ctx as CallContext<CatalogConfig>).signal);
    return a + b;
  }
}

const N = 300;

describe.each([{ serialize: false }, { serialize: true }])("ctx.signal (serialize: $serialize)", ({ serialize }) => {
  let app: TestApp | undefined;
  afterEach(async () => app?.stop());

  it("a settled call's signal leaves nothing on the caller's signal nor the hard stop, and no longer fires", async () => {
    const keeper = new Keeper();
    app = createTestApp({ serialize }).serve(Catalog, keeper, { config: catalogConfig });
    await app.start();
    const client = app.client(Catalog);
    const caller = new AbortController();
    for (let i = 0; i < N; i++) expect(await client.sum({ a: i, b: 1 }, { signal: caller.signal })).toBe(i + 1);
    expect(keeper.signals).toHaveLength(N);
    expect(keeper.signals.some((s) => s.aborted)).toBe(false);
    expect(dependants(caller.signal)).toBeLessThan(5);
    caller.abort();
    expect(keeper.signals.filter((s) => s.aborted)).toHaveLength(0);
    // The hard stop fires when the App stops: the calls answered long before, their signals stay quiet.
    await app.stop();
    app = undefined;
    expect(keeper.signals.filter((s) => s.aborted)).toHaveLength(0);
  });

  it("a running call's signal still fires when its caller cancels", async () => {
    const keeper = new Keeper();
    app = createTestApp({ serialize }).serve(Catalog, keeper, { config: catalogConfig });
    await app.start();
    const caller = new AbortController();
    setTimeout(() => caller.abort(), 30);
    await expect(app.client(Catalog).slow({ ms: 2000 }, { signal: caller.signal })).rejects.toMatchObject({
      code: "CANCELLED",
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(keeper.seen.find((s) => s.method === "slow")?.aborted).toBe(true);
  });
});

describe("CallCtx.signal", () => {
  const scope = (hardStop: AbortSignal) => ({ hardStop }) as unknown as ConstructorParameters<typeof CallCtx>[0];

  it("leaves nothing on the hard stop once released, however many calls read it", () => {
    const stop = new AbortController();
    const kept: AbortSignal[] = [];
    for (let i = 0; i < 1000; i++) {
      const ctx = new CallCtx(scope(stop.signal), "m", {}, Date.now() + 60_000, new LazyAbort(), 1);
      kept.push(ctx.signal);
      ctx.release();
    }
    expect(dependants(stop.signal)).toBe(0);
    stop.abort();
    expect(kept.filter((s) => s.aborted)).toHaveLength(0);
  });

  it("fires with its source's reason while the call runs, and starts aborted when a source has", () => {
    const stop = new AbortController();
    const caller = new AbortController();
    const ctx = new CallCtx(scope(stop.signal), "m", {}, Number.POSITIVE_INFINITY, caller.signal, 1);
    const signal = ctx.signal;
    expect(signal.aborted).toBe(false);
    caller.abort("gone");
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe("gone");

    const lazy = new LazyAbort();
    lazy.abort();
    const late = new CallCtx(scope(stop.signal), "m", {}, Number.POSITIVE_INFINITY, lazy, 1);
    expect(late.aborted).toBe(true);
    expect(late.signal.aborted).toBe(true);
    stop.abort("stopped");
    const after = new CallCtx(scope(stop.signal), "m", {}, Number.POSITIVE_INFINITY, undefined, 1);
    expect(after.signal.aborted).toBe(true);
    expect(after.signal.reason).toBe("stopped");
  });

  it("fires at the deadline with a TimeoutError, and not once released", async () => {
    const stop = new AbortController();
    const timed = new CallCtx(scope(stop.signal), "m", {}, Date.now() + 20, undefined, 1);
    const released = new CallCtx(scope(stop.signal), "m", {}, Date.now() + 20, undefined, 1);
    const a = timed.signal;
    const b = released.signal;
    released.release();
    await new Promise((r) => setTimeout(r, 60));
    expect(a.aborted).toBe(true);
    expect((a.reason as Error).name).toBe("TimeoutError");
    expect(b.aborted).toBe(false);
  });
});
