/**
 * Schemas written by hand in the shape `fanc` generates (docs/generated-code.md), shared by the
 * codec and mock tests, and a helper that asserts an INVALID_ARGUMENT with its exact path.
 */
import { expect } from "vitest";
import { FanError } from "../../src/runtime/errors.js";
import type { EnumSchema, Schema, StructSchema, UnionSchema } from "../../src/runtime/codec/schema.js";

/** `enum Color { RED = 1, WHITE = 2, ROSE = 3 }` */
export const ColorSchema: EnumSchema = { kind: "enum", name: "retail.wines.Color", values: ["RED", "WHITE", "ROSE"] };

/** `struct Money { amount: decimal @min("0") @max("1000000.00"), currency: string @pattern("^[A-Z]{3}$") }` */
export const MoneySchema: StructSchema = {
  kind: "struct",
  name: "retail.common.Money",
  fields: [
    { name: "amount", schema: { kind: "decimal", min: "0", max: "1000000.00" } },
    { name: "currency", schema: { kind: "string", pattern: "^[A-Z]{3}$" } },
  ],
};

/** The `Wine` of the docs, plus one field of each remaining scalar type. */
export const WineSchema: StructSchema = {
  kind: "struct",
  name: "retail.wines.Wine",
  fields: [
    { name: "id", schema: { kind: "uuid" } },
    { name: "name", schema: { kind: "string", minLength: 1, maxLength: 200 } },
    { name: "color", schema: { kind: "ref", name: "retail.wines.Color", get: () => ColorSchema } },
    { name: "vintage", schema: { kind: "int", min: 1800, max: 2100 }, optional: true },
    { name: "price", schema: { kind: "ref", name: "retail.common.Money", get: () => MoneySchema } },
    { name: "tags", schema: { kind: "list", of: { kind: "string", maxLength: 20 }, maxItems: 5 }, default: [] },
    { name: "stock", schema: { kind: "map", key: { kind: "string" }, of: { kind: "int", min: 0 } } },
    { name: "createdAt", schema: { kind: "timestamp" } },
    { name: "barcode", schema: { kind: "int64", min: "0" }, optional: true },
    { name: "label", schema: { kind: "bytes", maxLength: 16 }, optional: true },
    { name: "rating", schema: { kind: "float", min: 0, max: 5 }, optional: true },
    { name: "ttl", schema: { kind: "duration", max: 60_000 }, default: 1000 },
    { name: "organic", schema: { kind: "bool" }, default: false },
    { name: "extra", schema: { kind: "json" }, optional: true },
  ],
};

/** A valid wire value of `WineSchema` (every optional field present). */
export function wineWire(): Record<string, unknown> {
  return {
    id: "123E4567-e89b-12d3-a456-426614174000",
    name: "Château Margaux",
    color: "RED",
    vintage: 2015,
    price: { amount: "499.90", currency: "EUR" },
    tags: ["bordeaux", "grand cru"],
    stock: { s1: 3, s2: 0 },
    createdAt: "2024-02-29T12:30:00.250Z",
    barcode: "9007199254740993",
    label: "AAEC/w==",
    rating: 4.5,
    ttl: 500,
    organic: true,
    extra: { note: ["a", 1, null, { deep: true }] },
  };
}

/** `union Payment { card: CardPayment, cash: CashPayment, free: void }` */
export const PaymentSchema: UnionSchema = {
  kind: "union",
  name: "retail.wines.Payment",
  members: [
    {
      name: "card",
      schema: {
        kind: "struct",
        name: "retail.wines.CardPayment",
        fields: [{ name: "last4", schema: { kind: "string", pattern: "^[0-9]{4}$" } }],
      },
    },
    { name: "cash", schema: { kind: "ref", name: "retail.common.Money", get: () => MoneySchema } },
    { name: "free", schema: { kind: "void" } },
  ],
};

/** `struct Tree { label: string, children: list<Tree> = [] }`: recursion through a ref. */
export const TreeSchema: StructSchema = {
  kind: "struct",
  name: "test.Tree",
  fields: [
    { name: "label", schema: { kind: "string" } },
    {
      name: "children",
      schema: { kind: "list", of: { kind: "ref", name: "test.Tree", get: () => TreeSchema } },
      default: [],
    },
  ],
};

/** Two "modules" that reference each other: `a.Node { next?: b.Link }`, `b.Link { to: a.Node }`. */
export const NodeSchema: StructSchema = {
  kind: "struct",
  name: "a.Node",
  fields: [{ name: "next", schema: { kind: "ref", name: "b.Link", get: () => LinkSchema }, optional: true }],
};
/** See `NodeSchema`. */
export const LinkSchema: StructSchema = {
  kind: "struct",
  name: "b.Link",
  fields: [{ name: "to", schema: { kind: "ref", name: "a.Node", get: () => NodeSchema } }],
};

/** A one-field struct around `schema`, for testing a type in a field position. */
export function box(schema: Schema, optional = false): StructSchema {
  return { kind: "struct", name: "test.Box", fields: [{ name: "v", schema, ...(optional ? { optional: true } : {}) }] };
}

/** Asserts that `fn` throws INVALID_ARGUMENT whose `details.path` is `path` and whose message names it. */
export function expectInvalid(fn: () => unknown, path: string, text?: string | RegExp): FanError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (!FanError.is(err)) throw new Error(`expected a FanError, got ${String(err)}`);
  expect(err.code).toBe("INVALID_ARGUMENT");
  expect(err.details).toEqual({ path });
  expect(err.message.startsWith(`${path === "" ? "value" : path}: `)).toBe(true);
  if (text !== undefined) expect(err.message).toMatch(text);
  return err;
}
