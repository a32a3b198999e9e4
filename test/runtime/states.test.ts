import { createTestApp, type TestApp } from "fan/testing";
import { afterEach, describe, expect, it } from "vitest";
import { memoryRegistry } from "../../src/runtime/discovery/index.js";
import { applyMergePatch, diffMergePatch } from "../../src/runtime/states/merge-patch.js";
import { StateReplica, type StateSnapshot } from "../../src/runtime/states/index.js";
import { CatalogImpl, catalogConfig, eventually } from "./fixtures/impl.js";
import { Catalog, type Settings } from "./fixtures/shop.js";

describe("replicated states (in-process)", () => {
  let apps: TestApp[] = [];
  afterEach(async () => {
    await Promise.all(apps.map((a) => a.stop()));
    apps = [];
  });

  async function pair() {
    const registry = memoryRegistry();
    const owner = createTestApp({ discovery: registry }).serve(Catalog, new CatalogImpl(), { config: catalogConfig });
    const watcher = createTestApp({ discovery: registry });
    apps.push(owner, watcher);
    await owner.start();
    await watcher.start();
    return { pub: owner.publisher(Catalog), client: watcher.client(Catalog) };
  }

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

describe("StateReplica", () => {
  it("applies consecutive patches, ignores old ones, and resyncs from a snapshot on a gap", () => {
    let snap: StateSnapshot | undefined = { seq: 5, wire: { a: 1, b: 9 } };
    const r = new StateReplica(() => snap);
    expect(r.apply({ seq: 3, full: { a: 1 } })).toBe(true);
    expect(r.apply({ seq: 4, patch: { b: 2 } })).toBe(true);
    expect(r.wire).toEqual({ a: 1, b: 2 });
    expect(r.apply({ seq: 4, patch: { b: 3 } })).toBe(false);
    expect(r.apply({ seq: 6, patch: { c: 1 } })).toBe(false); // gap: the snapshot (seq 5) is older than the update
    expect(r.resyncs).toBe(1);
    snap = { seq: 6, wire: { a: 1, b: 9, c: 1 } };
    expect(r.apply({ seq: 6, patch: { c: 1 } })).toBe(true);
    expect(r.seq).toBe(6);
    expect(r.wire).toEqual({ a: 1, b: 9, c: 1 });
    expect(r.apply({ seq: 7, patch: { a: null } })).toBe(true);
    expect(r.wire).toEqual({ b: 9, c: 1 });
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
