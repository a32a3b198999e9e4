import { describe, expect, it } from "vitest";
import { codec } from "../../src/runtime/codec/index.js";
import type { Schema } from "../../src/runtime/codec/schema.js";
import {
  box,
  LinkSchema,
  MoneySchema,
  NodeSchema,
  PaymentSchema,
  TreeSchema,
  WineSchema,
  wineWire,
} from "./codec-fixtures.js";

/** encode → decode → encode gives the same JSON, and decode(wire) round-trips through JSON text. */
function roundTrip(schema: Schema, typed: unknown): unknown {
  const c = codec<unknown>(schema);
  const wire = c.encode(typed);
  const text = JSON.stringify(wire);
  const back = c.decode(JSON.parse(text ?? "null"));
  expect(JSON.stringify(c.encode(back))).toBe(text);
  c.validate(back);
  return wire;
}

describe("codec: wire forms of each type", () => {
  const cases: [string, Schema, unknown, unknown][] = [
    ["bool", { kind: "bool" }, true, true],
    ["int", { kind: "int" }, -42, -42],
    ["int64", { kind: "int64" }, -(2n ** 63n), "-9223372036854775808"],
    ["int64 max", { kind: "int64" }, 2n ** 63n - 1n, "9223372036854775807"],
    ["float", { kind: "float" }, 0.1, 0.1],
    ["decimal", { kind: "decimal" }, "-12.50", "-12.50"],
    ["string", { kind: "string" }, "héllo 🍷", "héllo 🍷"],
    ["bytes", { kind: "bytes" }, new Uint8Array([0, 1, 254, 255]), "AAH+/w=="],
    ["timestamp", { kind: "timestamp" }, new Date(Date.UTC(2024, 1, 29, 1, 2, 3, 4)), "2024-02-29T01:02:03.004Z"],
    ["duration", { kind: "duration" }, 2000, 2000],
    ["uuid", { kind: "uuid" }, "123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-426614174000"],
    ["json", { kind: "json" }, { a: [1, "x", null, { b: false }] }, { a: [1, "x", null, { b: false }] }],
    ["list", { kind: "list", of: { kind: "int64" } }, [1n, 2n], ["1", "2"]],
    [
      "map",
      { kind: "map", key: { kind: "int" }, of: { kind: "bytes" } },
      { "1": new Uint8Array([1]) },
      { "1": "AQ==" },
    ],
    ["enum", { kind: "enum", name: "E", values: ["A", "B"] }, "B", "B"],
    ["union", PaymentSchema, { kind: "card", value: { last4: "4242" } }, { kind: "card", value: { last4: "4242" } }],
    ["void member", PaymentSchema, { kind: "free" }, { kind: "free" }],
  ];
  it.each(cases)("%s", (_name, schema, typed, wire) => {
    expect(roundTrip(schema, typed)).toEqual(wire);
    expect(codec(schema).decode(wire)).toEqual(typed);
  });

  it("decodes int64 from a JSON number that is a safe integer", () => {
    expect(codec({ kind: "int64" }).decode(42)).toBe(42n);
  });

  it("decodes bytes from unpadded and URL-safe base64 into a plain Uint8Array", () => {
    const c = codec<Uint8Array>({ kind: "bytes" });
    expect(c.decode("AAH-_w")).toEqual(new Uint8Array([0, 1, 254, 255]));
    const out = c.decode("AAH+/w==");
    expect(Object.getPrototypeOf(out)).toBe(Uint8Array.prototype);
    expect(out.byteLength).toBe(4);
    expect(c.encode(Buffer.from([1, 2]))).toBe("AQI=");
  });

  it("decodes RFC 3339 offsets and fractions", () => {
    const c = codec<Date>({ kind: "timestamp" });
    expect(c.decode("2024-01-01T00:30:00+01:00").toISOString()).toBe("2023-12-31T23:30:00.000Z");
    expect(c.decode("2024-01-01t00:00:00.123456789z").toISOString()).toBe("2024-01-01T00:00:00.123Z");
    expect(c.decode("0001-01-01T00:00:00-00:30").toISOString()).toBe("0001-01-01T00:30:00.000Z");
  });

  it("keeps uuid case as given (checked case-insensitively)", () => {
    expect(codec({ kind: "uuid" }).decode("ABCDEF00-0000-0000-0000-000000000000")).toBe(
      "ABCDEF00-0000-0000-0000-000000000000",
    );
  });

  it("decodes void from undefined or null and encodes it as undefined", () => {
    const c = codec({ kind: "void" });
    expect(c.decode(undefined)).toBeUndefined();
    expect(c.decode(null)).toBeUndefined();
    expect(c.encode(undefined)).toBeUndefined();
    // TypeScript lets a void function return a value: it is dropped, not an error.
    expect(c.encode(true as never)).toBeUndefined();
  });
});

describe("codec: structs", () => {
  const wine = codec<Record<string, unknown>>(WineSchema);

  it("round-trips a full struct through JSON text", () => {
    const typed = wine.decode(wineWire());
    expect(typed.barcode).toBe(9007199254740993n);
    expect(typed.createdAt).toEqual(new Date("2024-02-29T12:30:00.250Z"));
    expect(typed.label).toEqual(new Uint8Array([0, 1, 2, 255]));
    roundTrip(WineSchema, typed);
    expect(wine.encode(typed)).toEqual({ ...wineWire(), id: "123E4567-e89b-12d3-a456-426614174000" });
  });

  it("leaves optional fields absent and treats JSON null as absent for them", () => {
    const w = wineWire();
    delete w.vintage;
    w.rating = null;
    const typed = wine.decode(w);
    expect("vintage" in typed).toBe(false);
    expect("rating" in typed).toBe(false);
    expect("vintage" in (wine.encode(typed) as object)).toBe(false);
  });

  it("keeps null in an optional json field, where it is a value", () => {
    const c = codec<Record<string, unknown>>(box({ kind: "ref", name: "J", get: () => ({ kind: "json" }) }, true));
    expect(c.decode({ v: null })).toEqual({ v: null });
    expect("v" in c.decode({ v: null })).toBe(true);
    expect(c.encode({ v: null })).toEqual({ v: null });
    expect("v" in c.decode({})).toBe(false);
  });

  it("applies defaults when the key is absent or null, never sharing them between decodes", () => {
    const w = wineWire();
    delete w.tags;
    delete w.ttl;
    w.organic = null;
    const a = wine.decode(w);
    const b = wine.decode(w);
    expect(a.tags).toEqual([]);
    expect(a.ttl).toBe(1000);
    expect(a.organic).toBe(false);
    expect(a.tags).not.toBe(b.tags);
    (a.tags as string[]).push("mutated");
    expect(wine.decode(w).tags).toEqual([]);
    expect(WineSchema.fields.find((f) => f.name === "tags")?.default).toEqual([]);
  });

  it("decodes defaults given in wire form into typed values", () => {
    const c = codec<{ at: Date; n: bigint }>({
      kind: "struct",
      name: "D",
      fields: [
        { name: "at", schema: { kind: "timestamp" }, default: "2020-01-01T00:00:00Z" },
        { name: "n", schema: { kind: "int64" }, default: "7" },
      ],
    });
    expect(c.decode({})).toEqual({ at: new Date("2020-01-01T00:00:00Z"), n: 7n });
  });

  it("ignores unknown keys (forward compatibility) and never copies them", () => {
    const typed = wine.decode({ ...wineWire(), addedInV3: { x: 1 } });
    expect("addedInV3" in typed).toBe(false);
    expect(Object.keys(typed)).toEqual(WineSchema.fields.map((f) => f.name));
  });

  it("builds new objects that share nothing with the input", () => {
    const w = wineWire();
    const typed = wine.decode(w);
    expect(typed.price).not.toBe(w.price);
    expect(typed.stock).not.toBe(w.stock);
    expect(typed.tags).not.toBe(w.tags);
    expect(typed.extra).not.toBe(w.extra);
    expect((typed.extra as { note: unknown[] }).note[3]).not.toBe((w.extra as { note: unknown[] }).note[3]);
    expect(Object.getPrototypeOf(typed)).toBe(Object.prototype);
  });

  it("reads fields named like Object.prototype members only when they are own keys", () => {
    const c = codec<Record<string, unknown>>({
      kind: "struct",
      name: "P",
      fields: [
        { name: "toString", schema: { kind: "string" }, optional: true },
        { name: "valueOf", schema: { kind: "int" }, default: 3 },
      ],
    });
    expect(c.decode({})).toEqual({ valueOf: 3 });
    expect(c.decode({ toString: "x", valueOf: 1 })).toEqual({ toString: "x", valueOf: 1 });
    expect(() => c.validate({ valueOf: 1 })).not.toThrow();
  });

  it("decodes recursive types through refs", () => {
    const tree = { label: "root", children: [{ label: "a", children: [{ label: "a1" }] }, { label: "b" }] };
    const typed = codec(TreeSchema).decode(tree);
    expect(typed).toEqual({
      label: "root",
      children: [
        { label: "a", children: [{ label: "a1", children: [] }] },
        { label: "b", children: [] },
      ],
    });
    roundTrip(TreeSchema, typed);
  });

  it("decodes types that reference each other across modules", () => {
    const v = { next: { to: { next: { to: {} } } } };
    expect(codec(NodeSchema).decode(v)).toEqual(v);
    expect(codec(LinkSchema).decode({ to: {} })).toEqual({ to: {} });
  });

  it("compiles lazily: a ref is not followed until first use", () => {
    let calls = 0;
    const lazy: Schema = {
      kind: "ref",
      name: "Later",
      get: () => {
        calls++;
        return MoneySchema;
      },
    };
    const c = codec(box(lazy));
    expect(calls).toBe(0);
    c.decode({ v: { amount: "1", currency: "USD" } });
    c.decode({ v: { amount: "2", currency: "USD" } });
    expect(calls).toBe(1);
  });

  it("puts the caller's path first", () => {
    expect(codec(MoneySchema).decode({ amount: "1", currency: "USD" }, "price")).toEqual({
      amount: "1",
      currency: "USD",
    });
  });
});
