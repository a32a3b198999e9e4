import { describe, expect, it } from "vitest";
import { codec } from "../../src/runtime/codec/index.js";
import type { Schema } from "../../src/runtime/codec/schema.js";
import { box, expectInvalid, PaymentSchema, TreeSchema, WineSchema, wineWire } from "./codec-fixtures.js";

const wine = codec<Record<string, unknown>>(WineSchema);
/** A typed Wine (Date, bigint, Uint8Array), freshly decoded. */
const typedWine = (): Record<string, unknown> => wine.decode(wineWire());

describe("validate: typed values in place", () => {
  it("accepts a typed value and leaves it untouched", () => {
    const w = typedWine();
    const before = structuredClone(w);
    expect(wine.validate(w)).toBeUndefined();
    expect(w).toEqual(before);
  });

  it("accepts undefined for optional fields (absent) but not null", () => {
    const w = typedWine();
    w.vintage = undefined;
    delete w.rating;
    wine.validate(w);
    w.vintage = null;
    expectInvalid(() => wine.validate(w, "wine"), "wine.vintage", /expected an int \(a safe integer\), got null/);
  });

  it("requires every field that is neither optional nor defaulted", () => {
    const w = typedWine();
    delete w.createdAt;
    expectInvalid(() => wine.validate(w, "wine"), "wine.createdAt", /missing required field of type timestamp/);
    expectInvalid(() => wine.encode(w, "wine"), "wine.createdAt", /missing required field of type timestamp/);
  });

  it("lets defaulted fields be left out: encode omits them, complete() fills them in", () => {
    const w = typedWine();
    delete w.tags;
    w.ttl = undefined;
    wine.validate(w);
    const wire = wine.encode(w) as Record<string, unknown>;
    expect("tags" in wire || "ttl" in wire).toBe(false);
    expect(wine.decode(wire)).toMatchObject({ tags: [], ttl: 1000 });
    const done = wine.complete(w);
    expect(done).not.toBe(w);
    expect(done).toEqual({ ...typedWine(), tags: [], ttl: 1000 });
    expect(w.tags).toBeUndefined();
  });

  it("complete() returns the value itself when nothing is missing, and fills nested structs", () => {
    const w = typedWine();
    expect(wine.complete(w)).toBe(w);
    const list = codec<{ v: Record<string, unknown>[] }>(box({ kind: "list", of: WineSchema }));
    const { organic: _, ...noOrganic } = typedWine();
    const out = list.complete({ v: [typedWine(), noOrganic] });
    expect(out.v[1]?.organic).toBe(false);
    expectInvalid(() => wine.complete({ ...w, color: "BLUE" }, "wine"), "wine.color");
  });

  it.each<[string, (w: Record<string, unknown>) => void, string, RegExp]>([
    [
      "wire int64 instead of bigint",
      (w) => (w.barcode = "12"),
      "barcode",
      /expected an int64 \(a bigint\), got string "12"/,
    ],
    ["bigint out of range", (w) => (w.barcode = 2n ** 64n), "barcode", /64-bit range/],
    ["bigint under @min", (w) => (w.barcode = -1n), "barcode", /at least 0/],
    [
      "wire timestamp instead of Date",
      (w) => (w.createdAt = "2024-01-01T00:00:00Z"),
      "createdAt",
      /expected a timestamp \(a Date\)/,
    ],
    ["invalid Date", (w) => (w.createdAt = new Date("nope")), "createdAt", /invalid Date/],
    ["Date past year 9999", (w) => (w.createdAt = new Date(Date.UTC(10000, 0, 1))), "createdAt", /years 0000-9999/],
    ["base64 instead of bytes", (w) => (w.label = "AQ=="), "label", /expected bytes \(a Uint8Array\)/],
    ["bytes over @maxLength", (w) => (w.label = new Uint8Array(17)), "label", /at most 16 bytes/],
    [
      "a Map for a map",
      (w) => (w.stock = new Map([["a", 1]])),
      "stock",
      /expected a map \(a plain object\), got an instance of Map/,
    ],
    ["a map value", (w) => (w.stock = { a: 1, b: 1.5 }), 'stock["b"]', /expected an int/],
    ["a nested struct", (w) => (w.price = { amount: 5, currency: "EUR" }), "price.amount", /expected a decimal/],
    ["a list element", (w) => (w.tags = ["ok", undefined]), "tags[1]", /got undefined/],
    ["a sparse list", (w) => (w.tags = new Array(2)), "tags[0]", /got undefined/],
    ["an enum", (w) => (w.color = "red"), "color", /expected one of RED, WHITE, ROSE/],
    ["NaN float", (w) => (w.rating = Number.NaN), "rating", /expected a float/],
    ["fractional duration", (w) => (w.ttl = 1.5), "ttl", /expected a duration/],
  ])("rejects %s", (_name, change, path, text) => {
    const w = typedWine();
    change(w);
    expectInvalid(() => wine.validate(w), path, text);
    expectInvalid(() => wine.encode(w), path, text);
  });

  it("accepts class instances and getters as structs; map values that are undefined count as absent", () => {
    class Money {
      constructor(readonly amount: string) {}
      get currency(): string {
        return "EUR";
      }
    }
    const w = typedWine();
    w.price = new Money("10.00");
    w.stock = { a: 1, gone: undefined };
    wine.validate(w);
    expect(wine.encode(w)).toMatchObject({ price: { amount: "10.00", currency: "EUR" }, stock: { a: 1 } });
  });

  it("checks json values: no functions, undefined, bigints, symbols, non-finite numbers or non-plain objects", () => {
    const j = codec<unknown>(box({ kind: "json" }));
    j.validate({ v: { a: [1, "s", null, true, { b: -0.5 }] } });
    j.validate({ v: Object.assign(Object.create(null), { a: 1 }) });
    const bad: [unknown, string, RegExp][] = [
      [{ f: () => 1 }, "v.f", /got a function/],
      [[1, undefined], "v[1]", /got undefined/],
      [{ n: 10n }, "v.n", /got bigint 10n/],
      [{ s: Symbol("x") }, "v.s", /got a symbol/],
      [{ n: Number.POSITIVE_INFINITY }, "v.n", /got number Infinity/],
      [{ d: new Date(0) }, "v.d", /got a Date/],
      [{ m: new Map() }, "v.m", /got an instance of Map/],
    ];
    for (const [v, path, text] of bad) {
      expectInvalid(() => j.validate({ v }), path, text);
      expectInvalid(() => j.encode({ v }), path, text);
      expectInvalid(() => j.decode({ v }), path, text);
    }
  });

  it("validates unions, recursive types and voids", () => {
    const p = codec<unknown>(PaymentSchema);
    p.validate({ kind: "cash", value: { amount: "1", currency: "USD" } });
    p.validate({ kind: "free" });
    expectInvalid(
      () => p.validate({ kind: "cash", value: { amount: "1", currency: "usd" } }),
      "value.currency",
      /must match/,
    );
    expectInvalid(() => p.validate({ kind: "wire" }), "kind", /expected one of card, cash, free/);
    const t = codec<unknown>(TreeSchema);
    t.validate({ label: "a", children: [{ label: "b", children: [] }] });
    expectInvalid(
      () => t.validate({ label: "a", children: [{ label: "b", children: [{ children: [] }] }] }),
      "children[0].children[0].label",
      /missing required/,
    );
    expect(() => codec({ kind: "void" }).validate(undefined)).not.toThrow();
  });

  it("bounds depth on typed values, so a cyclic struct is an error, not a stack overflow", () => {
    const node: Record<string, unknown> = { label: "loop" };
    node.children = [node];
    expectInvalid(
      () => codec(TreeSchema).validate(node),
      `${"children[0].".repeat(31)}children[0]`,
      /nesting deeper than 64 levels \(or a cycle\)/,
    );
  });

  it("validates map keys in typed maps", () => {
    const m = codec<unknown>({ kind: "map", key: { kind: "int" }, of: { kind: "string" } });
    m.validate({ 1: "a", "-2": "b" });
    expectInvalid(() => m.validate({ x: "a" }), '["x"]', /invalid key: expected an int/);
    expectInvalid(() => m.validate({ "01": "a" }), '["01"]', /invalid key/);
  });

  it("checks the same constraints as decode, for every scalar", () => {
    const pairs: [Schema, unknown, unknown][] = [
      [{ kind: "int", min: 0 }, 0, -1],
      [{ kind: "int64", max: "5" }, 5n, 6n],
      [{ kind: "float", max: 1 }, 1, 1.0001],
      [{ kind: "decimal", min: "-1" }, "-1.0", "-1.01"],
      [{ kind: "string", pattern: "^a+$", maxLength: 3 }, "aaa", "aaaa"],
      [{ kind: "uuid" }, "00000000-0000-0000-0000-000000000000", "0000"],
      [{ kind: "bool" }, false, 0],
      [{ kind: "duration", min: 10 }, 10, 9],
      [{ kind: "bytes", minLength: 1 }, new Uint8Array(1), new Uint8Array(0)],
      [{ kind: "timestamp" }, new Date(0), 0],
    ];
    for (const [schema, ok, bad] of pairs) {
      const c = codec<unknown>(schema);
      c.validate(ok);
      expectInvalid(() => c.validate(bad, "x"), "x");
    }
  });
});

describe("validate: generated field checks", () => {
  it("embeds field names as data, so a schema with hostile names cannot inject code", () => {
    const g = globalThis as { pwned?: number };
    delete g.pwned;
    const hostile = [
      '"]; globalThis.pwned = 1; //',
      "'); globalThis.pwned = 2; ('",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a placeholder is the point: it must stay text
      "`${globalThis.pwned = 3}`",
      "\u2028globalThis.pwned = 4;\u2029",
      "*/ globalThis.pwned = 5; /*",
      "\\",
      "\ud800", // a lone surrogate
      "toString", // inherited from Object.prototype: only an own property counts
    ];
    const s: Schema = {
      kind: "struct",
      name: "test.Hostile",
      fields: hostile.map((name, i) => ({ name, schema: { kind: "int" }, ...(i % 2 === 0 ? {} : { optional: true }) })),
    };
    const c = codec<Record<string, unknown>>(s);
    const full = Object.fromEntries(hostile.map((name, i) => [name, i]));
    expect(c.validate(full)).toBeUndefined();
    const wire = c.encode(full);
    expect(c.decode(wire)).toEqual(full);
    expect(g.pwned).toBeUndefined();
    // Each name reads its own property and is named in the error path.
    expect(() => c.validate({ ...full, [hostile[2] as string]: "x" })).toThrow(
      /^\[".*globalThis\.pwned = 3.*"\]: expected an int/,
    );
    const { [hostile[0] as string]: _, ...withoutFirst } = full;
    expect(() => c.validate(withoutFirst)).toThrow(/missing required field of type int/);
    const { toString: _t, ...withoutToString } = full;
    expect(c.validate(withoutToString)).toBeUndefined(); // optional, and the inherited one does not count
    expect(g.pwned).toBeUndefined();
  });
});
