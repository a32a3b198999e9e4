import { createMock, createTestApp, type TestApp } from "fan/testing";
import { afterEach, describe, expect, it } from "vitest";
import { memoryRegistry } from "../../src/runtime/discovery/index.js";
import { applyMergePatch, diffMergePatch } from "../../src/runtime/states/merge-patch.js";
import { Replica } from "../../src/runtime/states/index.js";
import { CatalogImpl, catalogConfig, eventually } from "./fixtures/impl.js";
import { Catalog, type Settings } from "./fixtures/shop.js";
import type { StateView } from "../../src/runtime/descriptor.js";
import { Board, type Entry, Leader } from "../states/fixtures/generated/fan/replica.js";

/** An owner App serving Catalog and a watcher App on one registry (both pushed to `apps`). */
async function startPair(apps: TestApp[]) {
  const registry = memoryRegistry();
  const owner = createTestApp({ discovery: registry }).serve(Catalog, new CatalogImpl(), { config: catalogConfig });
  const watcher = createTestApp({ discovery: registry });
  apps.push(owner, watcher);
  await owner.start();
  await watcher.start();
  return { pub: owner.publisher(Catalog), client: watcher.client(Catalog) };
}

describe("replicated states (in-process)", () => {
  let apps: TestApp[] = [];
  afterEach(async () => {
    await Promise.all(apps.map((a) => a.stop()));
    apps = [];
  });

  const pair = () => startPair(apps);

  it("replaces a @full state on every set, and a late watcher starts from the current value", async () => {
    const { pub, client } = await pair();
    await expect(client.states.settings.get()).rejects.toMatchObject({ code: "UNAVAILABLE" });
    const settings = pub.state("settings");
    settings.set({ currency: "EUR", open: true });
    const seen: Settings[] = [];
    await client.states.settings.watch((v) => void seen.push(v));
    settings.set({ currency: "USD", open: false });
    await eventually(() => seen.length === 2);
    expect(seen).toEqual([
      { currency: "EUR", open: true },
      { currency: "USD", open: false },
    ]);
    expect(await client.states.settings.get()).toEqual({ currency: "USD", open: false });
    expect(() => settings.patch({ open: true })).toThrow(/@full state/);
  });

  it("sends @delta updates as merge patches and keeps watchers in sequence", async () => {
    const { pub, client } = await pair();
    const stock = pub.state("stock");
    const seen: Record<string, number>[] = [];
    await client.states.stock.watch((v) => void seen.push(v));
    stock.set({ a: 1, b: 2 });
    stock.patch({ b: null, c: 3 });
    stock.set({ a: 5, c: 3 });
    await eventually(() => seen.length === 3);
    expect(seen).toEqual([
      { a: 1, b: 2 },
      { a: 1, c: 3 },
      { a: 5, c: 3 },
    ]);
    const late: Record<string, number>[] = [];
    await client.states.stock.watch((v) => void late.push(v));
    expect(late).toEqual([{ a: 5, c: 3 }]);
  });

  it("validates state values against the IDL", async () => {
    const { pub } = await pair();
    expect(() => pub.state("stock").set({ a: 1.5 })).toThrow(/stock/);
    // @ts-expect-error "nope" is not a state of Catalog
    expect(() => pub.state("nope")).toThrow(/has no state nope/);
  });
});

describe("replicated states: views, invalid patches, mocks and the test kit", () => {
  let apps: TestApp[] = [];
  afterEach(async () => {
    await Promise.all(apps.map((a) => a.stop()));
    apps = [];
  });

  it("a view follows the owner with typed current, seq, changes and status", async () => {
    const { pub, client } = await startPair(apps);
    const stock = pub.state("stock");
    stock.set({ a: 1 });
    const view = client.states.stock.watch();
    expect(await view.ready()).toEqual({ a: 1 });
    expect(view.status).toBe("live");
    const patches: unknown[] = [];
    view.subscribe((c) => patches.push(c.patch));
    stock.patch({ b: 2 });
    expect(() => stock.patch({ c: 1.5 })).toThrow(/invalid|int/i);
    // @ts-expect-error stock is map<string, int>: the codec refuses it at run time as well
    expect(() => stock.patch({ a: "x" })).toThrow();
    stock.patch({ a: null });
    await eventually(() => view.seq === stock.seq);
    expect(view.current).toEqual({ b: 2 });
    expect(stock.value()).toEqual({ b: 2 });
    expect(patches).toEqual([{ b: 2 }, { a: null }]);
    await view.close();
    expect(view.status).toBe("closed");
  });

  it("handlers own their service's states through ctx.state, lifecycle hooks too", async () => {
    const registry = memoryRegistry();
    const owner = createTestApp({ discovery: registry }).serve(Board, {
      start: (ctx) => ctx.state<Entry>("mode").set({ n: 0, label: "started" }),
      ping: (_req, ctx) => {
        ctx.state<Record<string, Entry>>("entries").patch({ pinged: { n: 1, label: "ping" } });
        return "pong";
      },
    });
    const watcher = createTestApp({ discovery: registry });
    apps.push(owner, watcher);
    await owner.start();
    await watcher.start();
    const client = watcher.client(Board);
    expect(await client.states.mode.watch().ready()).toEqual({ n: 0, label: "started" });
    const entries = client.states.entries.watch();
    await client.ping({});
    await eventually(() => entries.current?.pinged?.n === 1);
  });

  it("a view opened inside a call outlives the call's deadline", async () => {
    const registry = memoryRegistry();
    let view: StateView<Record<string, Entry>> | undefined;
    const caller = createTestApp({ discovery: registry }).serve(Leader, {
      ping: (_req, ctx) => {
        view = ctx.client(Board).states.entries.watch();
        return "pong";
      },
    });
    apps.push(caller);
    await caller.start();
    await caller.client(Leader).ping({}, { timeout: 200 });
    await eventually(() => view?.status === "owner-absent");
    await new Promise((r) => setTimeout(r, 300)); // the call's deadline is long past
    const owner = createTestApp({ discovery: registry }).serve(Board, { ping: () => "pong" });
    apps.push(owner);
    await owner.start();
    owner
      .publisher(Board)
      .state("entries")
      .set({ a: { n: 1, label: "late owner" } });
    expect(await view?.ready(5000)).toEqual({ a: { n: 1, label: "late owner" } });
  });

  it("a view of a state whose owner is absent says so", async () => {
    const watcher = createTestApp();
    apps.push(watcher);
    await watcher.start();
    const view = watcher.client(Catalog).states.settings.watch();
    await eventually(() => view.status === "owner-absent");
    expect(view.reason).toMatch(/Catalog/);
    expect(view.current).toBeUndefined();
  });

  it("a generated mock sets and patches states for its own client and for createTestApp watchers", async () => {
    const m = createMock(Catalog);
    m.setState("stock", { a: 1 });
    const own = m.client.states.stock.watch();
    expect(await own.ready()).toEqual({ a: 1 });
    const app = createTestApp().mock(m);
    apps.push(app);
    await app.start();
    const view = app.client(Catalog).states.stock.watch();
    expect(await view.ready()).toEqual({ a: 1 });
    m.patchState("stock", { b: 2 });
    await eventually(() => view.current?.b === 2 && own.current?.b === 2);
    expect(view.current).toEqual({ a: 1, b: 2 });
    // @ts-expect-error stock is map<string, int>: the codec refuses it at run time as well
    expect(() => m.patchState("stock", { c: "no" })).toThrow();
    await own.close();
  });
});

describe("Replica", () => {
  it("buffers until the snapshot, applies consecutive patches, drops old ones, and asks for a snapshot on a gap", () => {
    const r = new Replica(true);
    expect(r.wantsSnapshot).toBe(true);
    expect(r.receive({ k: "p", e: 1, s: 4, v: { b: 2 } })).toEqual([]);
    expect(r.receive({ k: "p", e: 1, s: 6, v: { c: 1 } })).toEqual([]);
    const changes = r.restore({ e: 1, s: 5, v: { a: 1, b: 9 } });
    expect(changes.map((c) => [c.cause, c.seq])).toEqual([
      ["snapshot", 5],
      ["patch", 6],
    ]);
    expect(r.wire).toEqual({ a: 1, b: 9, c: 1 });
    expect(r.receive({ k: "p", e: 1, s: 6, v: { c: 2 } })).toEqual([]);
    expect(r.dropped).toBe(1);
    expect(r.receive({ k: "p", e: 0, s: 99, v: { z: 1 } })).toEqual([]);
    expect(r.receive({ k: "p", e: 1, s: 8, v: { d: 1 } })).toEqual([]);
    expect(r.wantsSnapshot).toBe(true);
    r.restore({ e: 1, s: 8, v: { a: 1, b: 9, c: 1, d: 1 } });
    expect(r.receive({ k: "p", e: 1, s: 9, v: { a: null } })).toHaveLength(1);
    expect(r.wire).toEqual({ b: 9, c: 1, d: 1 });
    expect(r.receive({ k: "h", e: 1, s: 9, i: 1000 })).toEqual([]);
    expect(r.wantsSnapshot).toBe(false);
    r.receive({ k: "h", e: 1, s: 10, i: 1000 });
    expect(r.wantsSnapshot).toBe(true);
    r.restore({ e: 1, s: 10, v: { x: 1 } });
    r.receive({ k: "p", e: 2, s: 1, v: { y: 1 } });
    expect(r.wantsSnapshot).toBe(true);
  });
});

describe("JSON Merge Patch", () => {
  it("applies RFC 7396 patches without touching the target", () => {
    const target = { a: "b", c: { d: "e", f: "g" } };
    expect(applyMergePatch(target, { a: "z", c: { f: null } })).toEqual({ a: "z", c: { d: "e" } });
    expect(target).toEqual({ a: "b", c: { d: "e", f: "g" } });
    expect(applyMergePatch({ a: [1, 2] }, { a: [3] })).toEqual({ a: [3] });
    expect(applyMergePatch({ a: 1 }, ["x"])).toEqual(["x"]);
    expect(() => applyMergePatch({}, JSON.parse('{"__proto__": {"x": 1}}'))).toThrow(/not allowed/);
  });

  it("computes the patch between two values, which applies back", () => {
    const from = { a: 1, b: { c: 2, d: [1] }, e: "x" };
    const to = { a: 1, b: { c: 3, d: [1] }, f: true };
    const patch = diffMergePatch(from, to);
    expect(patch).toEqual({ b: { c: 3 }, e: null, f: true });
    expect(applyMergePatch(from, patch)).toEqual(to);
    expect(diffMergePatch(to, to)).toBeUndefined();
  });
});
