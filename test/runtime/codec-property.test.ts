/**
 * Property tests: random schemas with random typed values round-trip through the wire form,
 * and arbitrary input never makes a codec throw anything but INVALID_ARGUMENT.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { codec } from "../../src/runtime/codec/index.js";
import { FanError } from "../../src/runtime/errors.js";
import type { EnumSchema, PrimitiveKind, Schema, StructSchema } from "../../src/runtime/codec/schema.js";
import { PaymentSchema, TreeSchema, WineSchema } from "./codec-fixtures.js";

const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);
const safeKey = fc.string({ maxLength: 8 }).filter((k) => !FORBIDDEN.has(k));
const SCALARS: PrimitiveKind[] = [
  "bool",
  "int",
  "int64",
  "float",
  "decimal",
  "string",
  "bytes",
  "timestamp",
  "duration",
  "uuid",
  "json",
];
const COLOR: EnumSchema = { kind: "enum", name: "t.Color", values: ["RED", "WHITE", "ROSE"] };

let structs = 0;
/** Schemas of every kind, nested up to a few levels. */
const schemaArb: fc.Arbitrary<Schema> = fc.letrec<{ schema: Schema }>((tie) => ({
  schema: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constantFrom(...SCALARS).map((kind): Schema => ({ kind })),
    fc.constant<Schema>(COLOR),
    tie("schema").map((of): Schema => ({ kind: "list", of })),
    fc
      .tuple(fc.constantFrom<Schema>({ kind: "string" }, { kind: "int" }, COLOR), tie("schema"))
      .map(([key, of]): Schema => ({ kind: "map", key: key as EnumSchema, of })),
    fc
      .uniqueArray(fc.tuple(fc.constantFrom("a", "b", "c", "toString", "x y"), fc.boolean(), tie("schema")), {
        maxLength: 4,
        selector: ([n]) => n,
      })
      .map(
        (fields): Schema => ({
          kind: "struct",
          name: `t.S${structs++}`,
          fields: fields.map(([name, optional, schema]) => ({ name, schema, ...(optional ? { optional: true } : {}) })),
        }),
      ),
    fc
      .uniqueArray(fc.tuple(fc.constantFrom("p", "q", "r"), tie("schema")), {
        minLength: 1,
        maxLength: 3,
        selector: ([n]) => n,
      })
      .map(
        (members): Schema => ({
          kind: "union",
          name: "t.U",
          members: members.map(([name, schema]) => ({ name, schema })),
        }),
      ),
    tie("schema").map((s): Schema => ({ kind: "ref", name: "t.R", get: () => s })),
  ),
})).schema;

const noNegZero = (x: number): number => (Object.is(x, -0) ? 0 : x);
const jsonArb = fc
  .jsonValue()
  .filter((v) => !JSON.stringify(v).match(/"(__proto__|constructor|prototype)":/))
  .map((v) => JSON.parse(JSON.stringify(v)) as unknown);

/** Typed values of `s`. */
function valueArb(s: Schema): fc.Arbitrary<unknown> {
  switch (s.kind) {
    case "bool":
      return fc.boolean();
    case "int":
      return fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }).map(noNegZero);
    case "int64":
      return fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
    case "float":
      return fc.double({ noNaN: true, noDefaultInfinity: true }).map(noNegZero);
    case "decimal":
      return fc
        .tuple(fc.boolean(), fc.stringMatching(/^[0-9]{1,25}$/), fc.option(fc.stringMatching(/^[0-9]{1,25}$/)))
        .map(([neg, i, f]) => `${neg ? "-" : ""}${i}${f === null ? "" : `.${f}`}`);
    case "string":
      return fc.string({ unit: "binary", maxLength: 20 });
    case "bytes":
      return fc.uint8Array({ maxLength: 20 });
    case "timestamp":
      return fc.date({
        min: new Date("0000-01-01T00:00:00Z"),
        max: new Date("9999-12-31T23:59:59.999Z"),
        noInvalidDate: true,
      });
    case "duration":
      return fc.maxSafeNat();
    case "uuid":
      return fc.uuid();
    case "json":
      return jsonArb;
    case "list":
      return fc.array(valueArb(s.of), { maxLength: 4 });
    case "map":
      return fc.dictionary(mapKeyArb(s.key as Schema), valueArb(s.of), { maxKeys: 4 });
    case "struct":
      return structArb(s);
    case "enum":
      return fc.constantFrom(...s.values);
    case "union":
      return fc.oneof(
        ...s.members.map((m) =>
          valueArb(m.schema).map((value) => (m.schema.kind === "void" ? { kind: m.name } : { kind: m.name, value })),
        ),
      );
    case "ref":
      return valueArb(s.get());
    case "void":
      return fc.constant(undefined);
  }
}

function mapKeyArb(key: Schema): fc.Arbitrary<string> {
  if (key.kind === "int")
    return fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }).map((n) => String(noNegZero(n)));
  if (key.kind === "enum") return fc.constantFrom(...key.values);
  return safeKey;
}

function structArb(s: StructSchema): fc.Arbitrary<unknown> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of s.fields) model[f.name] = valueArb(f.schema);
  const requiredKeys = s.fields.filter((f) => f.optional !== true).map((f) => f.name);
  return fc.record(model, { requiredKeys });
}

describe("codec properties", () => {
  it("round-trips random values of random schemas: encode, JSON text, decode gives the value back", () => {
    const pairs = schemaArb.chain((s) => fc.tuple(fc.constant(s), valueArb(s)));
    fc.assert(
      fc.property(pairs, ([schema, value]) => {
        const c = codec<unknown>(schema);
        c.validate(value);
        const text = JSON.stringify(c.encode(value)) ?? "null";
        const back = c.decode(JSON.parse(text));
        expect(back).toEqual(value);
        expect(JSON.stringify(c.encode(back)) ?? "null").toBe(text);
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 400) },
    );
  });

  it("never throws anything but INVALID_ARGUMENT on arbitrary input", () => {
    const schemas = [
      WineSchema,
      TreeSchema,
      PaymentSchema,
      { kind: "map", key: COLOR, of: { kind: "json" } } as Schema,
    ];
    const input = fc.oneof(
      fc.anything({ withBigInt: true, withDate: true, withTypedArray: true, withMap: true, withNullPrototype: true }),
      fc.jsonValue(),
    );
    fc.assert(
      fc.property(fc.constantFrom(...schemas), input, (schema, v) => {
        const c = codec<unknown>(schema);
        for (const run of [() => c.decode(v), () => c.validate(v), () => c.encode(v)]) {
          try {
            run();
          } catch (e) {
            expect(FanError.is(e) && e.code === "INVALID_ARGUMENT").toBe(true);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("rejects a corrupted field of a valid Wine with that field's path", () => {
    const wine = codec<Record<string, unknown>>(WineSchema);
    const base = wine.encode(
      wine.decode({
        id: "00000000-0000-0000-0000-000000000000",
        name: "n",
        color: "RED",
        price: { amount: "1", currency: "EUR" },
        stock: {},
        createdAt: "2024-01-01T00:00:00Z",
      }),
    ) as Record<string, unknown>;
    const required = ["id", "name", "color", "price", "stock", "createdAt", "tags", "ttl", "organic"];
    const junk = fc.oneof(fc.constant({ nested: [] }), fc.constant(-1.5), fc.constant([1]));
    fc.assert(
      fc.property(fc.constantFrom(...required), junk, (field, bad) => {
        const w = { ...base, [field]: bad };
        try {
          wine.decode(w, "w");
        } catch (e) {
          expect(FanError.is(e) && (e.details as { path: string }).path.startsWith(`w.${field}`)).toBe(true);
          return;
        }
        throw new Error(`accepted ${JSON.stringify(bad)} for ${field}`);
      }),
    );
  });
});
