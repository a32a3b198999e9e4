/**
 * A merge patch's key left `undefined` is absent (as in the patch's JSON, and as the codec takes
 * an optional field left undefined in a value): `MergePatch<T>` lets an optional field be
 * `undefined` so that a whole value is a patch too. Before, an entry that existed was patched
 * field by field and `vintage: undefined` failed the int check (a new entry was taken whole and
 * passed), and `applyMergePatch` set the key to undefined.
 */
import { describe, expect, it } from "vitest";
import { WineCodec, WineSchema } from "../../generated/retail/wines.js";
import { wine } from "../../examples/testing/wine.js";
import type { MapSchema } from "../../src/runtime/codec/schema.js";
import { applyMergePatch } from "../../src/runtime/states/merge-patch.js";
import { wirePatch } from "../../src/runtime/states/typed-patch.js";

describe("a merge patch's undefined keys", () => {
  it("are absent from an untyped patch", () => {
    expect(applyMergePatch({ a: 1, b: 2 }, { a: undefined, b: 3 })).toEqual({ a: 1, b: 3 });
    expect(applyMergePatch(undefined, { a: undefined, b: 3 })).toEqual({ b: 3 });
  });

  it("are absent from a typed patch: a whole value patches an entry that exists", () => {
    const inventory: MapSchema = { kind: "map", key: { kind: "string" }, of: WineSchema };
    const old = { w1: WineCodec.encode({ ...wine, vintage: 2020 }) };
    const patch = wirePatch(inventory, old, { w1: { ...wine, abv: 13, vintage: undefined }, w2: undefined }, "inv");
    expect(patch).toEqual({ w1: { ...(WineCodec.encode(wine) as object), abv: 13 } });
    // Merged: the entry keeps its vintage, which the patch left out.
    expect(applyMergePatch(old, patch)).toEqual({ w1: WineCodec.encode({ ...wine, abv: 13, vintage: 2020 }) });
    expect(() => wirePatch(inventory, old, { w1: { vintage: "x" } }, "inv")).toThrow(/vintage: expected an int/);
    expect(() => wirePatch(inventory, old, { w1: { name: null } }, "inv")).toThrow(/required field cannot be removed/);
  });
});
