import { describe, expect, it } from "vitest";
import { codec } from "../../src/runtime/codec/index.js";
import type { Schema } from "../../src/runtime/codec/schema.js";
import { box, ColorSchema, expectInvalid, PaymentSchema, TreeSchema, WineSchema, wineWire } from "./codec-fixtures.js";

const wine = codec<unknown>(WineSchema);
/** Decodes a modified Wine under the root path `wine`. */
function decodeWine(change: (w: Record<string, unknown>) => void): () => unknown {
  const w = wineWire();
  change(w);
  return () => wine.decode(JSON.parse(JSON.stringify(w)), "wine");
}

describe("codec errors: wrong types and missing fields, with exact paths", () => {
  it.each<[string, (w: Record<string, unknown>) => void, string, RegExp]>([
    ["wrong scalar", (w) => (w.name = 5), "wine.name", /expected a string, got number 5/],
    ["missing required", (w) => delete w.createdAt, "wine.createdAt", /missing required field of type timestamp/],
    ["null for required", (w) => (w.id = null), "wine.id", /expected a uuid, got null/],
    ["nested struct field", (w) => (w.price = { amount: "1" }), "wine.price.currency", /missing required field/],
    ["list element", (w) => (w.tags = ["a", "b", "c", 4]), "wine.tags[3]", /expected a string, got number 4/],
    ["map value", (w) => (w.stock = { s1: 1, x: "2" }), 'wine.stock["x"]', /expected an int/],
    [
      "unknown enum value",
      (w) => (w.color = "PINK"),
      "wine.color",
      /expected one of RED, WHITE, ROSE \(enum retail.wines.Color\), got string "PINK"/,
    ],
    [
      "struct not an object",
      (w) => (w.price = []),
      "wine.price",
      /expected an object \(struct retail.common.Money\), got an array/,
    ],
    ["list not an array", (w) => (w.tags = "a"), "wine.tags", /expected a list/],
    ["int not an integer", (w) => (w.vintage = 2000.5), "wine.vintage", /expected an int \(a safe integer\)/],
    ["int not safe", (w) => (w.vintage = 2 ** 53), "wine.vintage", /safe integer/],
    ["float not finite", (w) => (w.rating = "NaN"), "wine.rating", /expected a float/],
    ["int64 not integer text", (w) => (w.barcode = "12.5"), "wine.barcode", /expected an int64/],
    ["int64 leading zero", (w) => (w.barcode = "012"), "wine.barcode", /expected an int64/],
    ["int64 unsafe number", (w) => (w.barcode = 2 ** 60), "wine.barcode", /expected an int64/],
    ["int64 out of range", (w) => (w.barcode = "9223372036854775808"), "wine.barcode", /64-bit range/],
    ["bytes not base64", (w) => (w.label = "a*b="), "wine.label", /base64/],
    ["bytes bad length", (w) => (w.label = "AAAAA"), "wine.label", /base64/],
    ["timestamp not RFC 3339", (w) => (w.createdAt = "2024-01-01"), "wine.createdAt", /RFC 3339/],
    ["timestamp invalid date", (w) => (w.createdAt = "2023-02-29T00:00:00Z"), "wine.createdAt", /RFC 3339/],
    ["timestamp bad hour", (w) => (w.createdAt = "2023-02-28T24:00:00Z"), "wine.createdAt", /RFC 3339/],
    ["duration negative", (w) => (w.ttl = -1), "wine.ttl", /non-negative integer/],
    ["uuid malformed", (w) => (w.id = "123e4567e89b12d3a456426614174000"), "wine.id", /expected a uuid/],
    [
      "decimal malformed",
      (w) => (w.price = { amount: "1e5", currency: "EUR" }),
      "wine.price.amount",
      /expected a decimal/,
    ],
    [
      "decimal with a bare dot",
      (w) => (w.price = { amount: "1.", currency: "EUR" }),
      "wine.price.amount",
      /expected a decimal/,
    ],
    ["bool", (w) => (w.organic = "true"), "wine.organic", /expected a bool/],
  ])("%s", (_name, change, path, text) => {
    expectInvalid(decodeWine(change), path, text);
  });

  it("reports the root when there is no path", () => {
    expectInvalid(
      () => wine.decode("nope"),
      "",
      /^value: expected an object \(struct retail.wines.Wine\), got string "nope"$/,
    );
    expectInvalid(() => wine.decode(null), "", /got null/);
  });

  it("quotes keys that are not identifiers", () => {
    const c = codec({ kind: "map", key: { kind: "string" }, of: { kind: "int" } });
    expectInvalid(() => c.decode({ "a b": 1, 'q"uote': true }), '["q\\"uote"]');
    const s = codec(box({ kind: "json" }));
    expectInvalid(() => s.decode({ v: { "a-b": [Number.NaN] } }), 'v["a-b"][0]');
  });
});

describe("codec errors: constraints", () => {
  it.each<[string, (w: Record<string, unknown>) => void, string, RegExp]>([
    ["@min int", (w) => (w.vintage = 1799), "wine.vintage", /must be at least 1800, got 1799/],
    ["@max int", (w) => (w.vintage = 2101), "wine.vintage", /must be at most 2100, got 2101/],
    ["@min int in a map", (w) => (w.stock = { a: -1 }), 'wine.stock["a"]', /at least 0/],
    ["@min int64", (w) => (w.barcode = "-1"), "wine.barcode", /must be at least 0, got -1/],
    ["@max float", (w) => (w.rating = 5.01), "wine.rating", /at most 5/],
    ["@max duration", (w) => (w.ttl = 60_001), "wine.ttl", /at most 60000/],
    ["@min decimal", (w) => (w.price = { amount: "-0.01", currency: "EUR" }), "wine.price.amount", /at least 0/],
    [
      "@max decimal",
      (w) => (w.price = { amount: "1000000.001", currency: "EUR" }),
      "wine.price.amount",
      /at most 1000000.00/,
    ],
    [
      "@pattern",
      (w) => (w.price = { amount: "1", currency: "eur" }),
      "wine.price.currency",
      /must match \/\^\[A-Z\]\{3\}\$\//,
    ],
    ["@minLength string", (w) => (w.name = ""), "wine.name", /at least 1 characters, got 0/],
    ["@maxLength string", (w) => (w.name = "x".repeat(201)), "wine.name", /at most 200 characters, got 201/],
    ["@maxLength list element", (w) => (w.tags = ["x".repeat(21)]), "wine.tags[0]", /at most 20 characters/],
    ["@maxItems list", (w) => (w.tags = ["a", "b", "c", "d", "e", "f"]), "wine.tags", /at most 5 items, got 6/],
    [
      "@maxLength bytes",
      (w) => (w.label = Buffer.alloc(17).toString("base64")),
      "wine.label",
      /at most 16 bytes, got 17/,
    ],
  ])("%s", (_name, change, path, text) => {
    expectInvalid(decodeWine(change), path, text);
  });

  it("counts string lengths in code points, not UTF-16 units", () => {
    const c = codec<string>({ kind: "string", minLength: 3, maxLength: 3 });
    expect(c.decode("🍷🍷🍷")).toBe("🍷🍷🍷"); // 6 UTF-16 units
    expectInvalid(() => c.decode("🍷🍷"), "", /at least 3 characters, got 2/);
    expectInvalid(() => c.decode("🍷🍷🍷🍷"), "", /at most 3 characters, got 4/);
  });

  it("compares decimal bounds exactly, not as floats", () => {
    const c = codec<string>({ kind: "decimal", min: "0.1", max: "99999999999999999999.5" });
    expect(c.decode("0.1000")).toBe("0.1000");
    expect(c.decode("99999999999999999999.5")).toBe("99999999999999999999.5");
    // As floats both of these equal the bound.
    expectInvalid(() => c.decode("0.09999999999999999999"), "", /at least 0.1/);
    expectInvalid(() => c.decode("99999999999999999999.50000000000000000001"), "", /at most/);
    expectInvalid(() => c.decode("-0.2"), "", /at least/);
    const neg = codec<string>({ kind: "decimal", min: "-10.5", max: "-0" });
    expect(neg.decode("-10.50")).toBe("-10.50");
    expect(neg.decode("0.000")).toBe("0.000");
    expectInvalid(() => neg.decode("-10.51"), "", /at least -10.5/);
    expectInvalid(() => neg.decode("0.001"), "", /at most/);
  });

  it("checks int64 bounds exactly beyond 2^53", () => {
    const c = codec<bigint>({ kind: "int64", max: "9007199254740993" });
    expect(c.decode("9007199254740993")).toBe(9007199254740993n);
    expectInvalid(() => c.decode("9007199254740994"), "", /at most 9007199254740993/);
  });

  it("checks map keys: int keys must be safe integers, enum keys members", () => {
    const byInt = codec({ kind: "map", key: { kind: "int", min: 0 }, of: { kind: "bool" } });
    expect(byInt.decode({ "0": true, "12": false })).toEqual({ "0": true, "12": false });
    expectInvalid(() => byInt.decode({ "1.5": true }), '["1.5"]', /invalid key: expected an int/);
    expectInvalid(() => byInt.decode({ "9007199254740993": true }), '["9007199254740993"]', /invalid key/);
    expectInvalid(() => byInt.decode({ "-1": true }), '["-1"]', /invalid key: must be at least 0/);
    const byColor = codec({
      kind: "map",
      key: { kind: "ref", name: "Color", get: () => ColorSchema },
      of: { kind: "int" },
    });
    expect(byColor.decode({ RED: 1 })).toEqual({ RED: 1 });
    expectInvalid(
      () => byColor.decode({ RED: 1, PINK: 2 }),
      '["PINK"]',
      /invalid key: expected one of RED, WHITE, ROSE/,
    );
    const byPattern = codec({
      kind: "map",
      key: { kind: "string", pattern: "^s[0-9]+$" },
      of: { kind: "int" },
      maxItems: 2,
    });
    expectInvalid(() => byPattern.decode({ s1: 1, x: 2 }), '["x"]', /invalid key: must match/);
    expectInvalid(() => byPattern.decode({ s1: 1, s2: 2, s3: 3 }), "", /at most 2 entries, got 3/);
  });

  it("rejects unions with an unknown kind or a missing value", () => {
    const c = codec(box(PaymentSchema));
    expectInvalid(
      () => c.decode({ v: { kind: "cheque", value: {} } }),
      "v.kind",
      /expected one of card, cash, free \(union retail.wines.Payment\), got string "cheque"/,
    );
    expectInvalid(() => c.decode({ v: { kind: "card" } }), "v.value", /missing required field/);
    expectInvalid(() => c.decode({ v: { kind: "card", value: { last4: "42" } } }), "v.value.last4", /must match/);
    expectInvalid(() => c.decode({ v: { value: {} } }), "v.kind", /got undefined/);
    expectInvalid(() => c.decode({ v: "card" }), "v", /union/);
  });
});

describe("codec errors: prototype keys", () => {
  const parse = (text: string): unknown => JSON.parse(text);

  it("has an own __proto__ key when JSON.parse makes it (the premise of these tests)", () => {
    expect(Object.keys(parse('{"__proto__": 1}') as object)).toEqual(["__proto__"]);
  });

  it.each<[string, Schema, string, string]>([
    ["__proto__ on a struct", WineSchema, '{"__proto__": {"polluted": true}}', '["__proto__"]'],
    ["constructor on a struct", WineSchema, '{"constructor": {"prototype": {}}}', '["constructor"]'],
    ["inside an ignored unknown key", WineSchema, '{"later": [{"a": {"prototype": 1}}]}', 'later[0].a["prototype"]'],
    [
      "map key",
      { kind: "map", key: { kind: "string" }, of: { kind: "int" } },
      '{"a": 1, "__proto__": 2}',
      '["__proto__"]',
    ],
    [
      "prototype map key",
      { kind: "map", key: { kind: "string" }, of: { kind: "int" } },
      '{"prototype": 2}',
      '["prototype"]',
    ],
    ["inside a json value", box({ kind: "json" }), '{"v": {"a": [1, {"__proto__": {"x": 1}}]}}', 'v.a[1]["__proto__"]'],
    ["on a union", PaymentSchema, '{"kind": "free", "constructor": 1}', '["constructor"]'],
  ])("%s", (_name, schema, text, path) => {
    expectInvalid(() => codec(schema).decode(parse(text)), path, /is not allowed/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("rejects them in typed values too (validate and encode)", () => {
    const m = codec({ kind: "map", key: { kind: "string" }, of: { kind: "int" } });
    expectInvalid(() => m.validate(parse('{"__proto__": 1}')), '["__proto__"]', /is not allowed/);
    const j = codec({ kind: "json" });
    expectInvalid(() => j.encode(parse('{"a": {"constructor": 1}}')), 'a["constructor"]', /is not allowed/);
    const s = codec(WineSchema);
    const u = codec(PaymentSchema);
    for (const key of ["__proto__", "constructor", "prototype"]) {
      expectInvalid(() => s.validate(parse(`{"${key}": {}}`)), "", new RegExp(`"${key}" is not allowed`));
      expectInvalid(() => u.validate(parse(`{"kind": "free", "${key}": null}`)), "", /is not allowed/);
      const nullProto = Object.assign(Object.create(null) as object, parse(`{"${key}": 1}`));
      expectInvalid(() => s.encode(nullProto), "", /is not allowed/);
    }
  });
});

describe("codec errors: nesting depth", () => {
  function deepTree(levels: number): unknown {
    let t: unknown = { label: "leaf" };
    for (let i = 1; i < levels; i++) t = { label: "n", children: [t] };
    return t;
  }

  it("accepts 64 levels and rejects deeper values with a clear error, never a stack overflow", () => {
    const tree = codec(TreeSchema);
    // Each Tree level is two containers: the struct and its children list.
    expect(() => tree.decode(deepTree(32))).not.toThrow();
    const err = expectInvalid(
      () => tree.decode(deepTree(33)),
      `${"children[0].".repeat(31)}children[0]`,
      /nesting deeper than 64 levels/,
    );
    expect(err.message.length).toBeLessThan(600);
    expectInvalid(() => tree.decode(deepTree(100_000)), `${"children[0].".repeat(31)}children[0]`, /nesting deeper/);
  });

  it("bounds json values and unknown keys the same way", () => {
    let v: unknown = 1;
    for (let i = 0; i < 100_000; i++) v = [v];
    const j = codec({ kind: "json" });
    expectInvalid(() => j.decode(v), `${"[0]".repeat(64)}`, /nesting deeper than 64/);
    expectInvalid(() => codec(WineSchema).decode({ unknown: v }), `unknown${"[0]".repeat(63)}`, /nesting deeper/);
  });

  it("takes bounds up to 1000 without overflowing the stack, and refuses larger ones", () => {
    const c = codec(TreeSchema, { maxDepth: 1000 });
    expect(() => c.decode(deepTree(500))).not.toThrow();
    expectInvalid(() => c.decode(deepTree(600)), `${"children[0].".repeat(499)}children[0]`, /deeper than 1000/);
    expect(() => codec(TreeSchema, { maxDepth: 1001 })).toThrow(/maxDepth must be an integer from 1 to 1000/);
    expect(() => codec(TreeSchema, { maxDepth: 0 })).toThrow(/maxDepth/);
  });

  it("takes a smaller bound per codec", () => {
    const c = codec({ kind: "list", of: { kind: "list", of: { kind: "int" } } }, { maxDepth: 1 });
    expectInvalid(() => c.decode([[1]]), "[0]", /deeper than 1 levels/);
  });

  it("reports json cycles in typed values", () => {
    const a: Record<string, unknown> = { x: 1 };
    a.self = a;
    expectInvalid(() => codec({ kind: "json" }).validate(a), "self", /cycle/);
    const list: unknown[] = [];
    list.push(list);
    expectInvalid(() => codec({ kind: "json" }).encode(list), "[0]", /cycle/);
  });
});

describe("codec errors: invalid schemas are bugs, reported as INTERNAL", () => {
  it.each<[string, Schema, RegExp]>([
    ["bad pattern", { kind: "string", pattern: "([" }, /@pattern/],
    ["bad decimal bound", { kind: "decimal", min: "1e3" }, /not decimal text/],
    ["bad int bound", { kind: "int", max: "lots" }, /not a finite number/],
    [
      "forbidden field name",
      { kind: "struct", name: "S", fields: [{ name: "constructor", schema: { kind: "int" } }] },
      /field named "constructor"/,
    ],
    [
      "duplicate field",
      {
        kind: "struct",
        name: "S",
        fields: [
          { name: "a", schema: { kind: "int" } },
          { name: "a", schema: { kind: "int" } },
        ],
      },
      /two fields named "a"/,
    ],
    ["bool map key", { kind: "map", key: { kind: "bool" }, of: { kind: "int" } }, /map key must be/],
    ["self ref", { kind: "ref", name: "Loop", get: (): Schema => loop }, /refers to itself/],
    ["unknown kind", { kind: "decimal128" } as unknown as Schema, /unknown schema kind/],
    [
      "default that does not fit",
      {
        kind: "struct",
        name: "S",
        fields: [{ name: "n", schema: { kind: "list", of: { kind: "int" } }, default: [1, "2"] }],
      },
      /the default of field n does not fit its type: \[1\]: expected an int/,
    ],
  ])("%s", (_name, schema, text) => {
    const c = codec(schema);
    let err: unknown;
    try {
      c.decode(schema.kind === "struct" ? {} : null);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "INTERNAL" });
    expect((err as Error).message).toMatch(text);
  });
});
const loop: Schema = { kind: "ref", name: "Loop", get: () => loop };
