/**
 * Field constraints (`@min @max @minLength @maxLength @maxItems @pattern`): where they apply,
 * their arguments, their consistency, and whether a default value satisfies them.
 */
import type * as A from "./ast.js";
import type { Checker } from "./check-context.js";
import { argInt, argOne, argString } from "./decorators.js";
import { diag } from "./diagnostics.js";
import { compareNumeric, numericExpectation, numericValue } from "./literals.js";
import type { Constraints, JsonValue, PrimitiveName, TypeModel } from "./model.js";
import type { Mutable } from "./check-types.js";

const NUMERIC: ReadonlySet<string> = new Set(["int", "int64", "float", "decimal", "duration"]);

function primOf(t: TypeModel): PrimitiveName | undefined {
  return t.kind === "primitive" ? t.name : undefined;
}

function typeLabel(t: TypeModel): string {
  switch (t.kind) {
    case "primitive":
      return t.name;
    case "ref":
      return `${t.declKind} ${t.target}`;
    default:
      return t.kind;
  }
}

/** Read the constraint decorators of a field of type `t` (already placed and de-duplicated). */
export function checkConstraints(c: Checker, decs: ReadonlyMap<string, A.Decorator>, t: TypeModel): Constraints {
  const out: Mutable<Constraints> = {};
  if (decs.size === 0) return out;
  const prim = primOf(t);
  const numeric = prim !== undefined && NUMERIC.has(prim);
  const lengthOk = prim === "string" || prim === "bytes";
  for (const [name, d] of decs) {
    switch (name) {
      case "min":
      case "max":
        if (!numeric) notFor(c, d, t);
        else put(out, name, bound(c, d, prim));
        break;
      case "minLength":
      case "maxLength":
        if (!lengthOk) notFor(c, d, t);
        else put(out, name, count(c, d));
        break;
      case "maxItems":
        if (t.kind !== "list" && t.kind !== "map") notFor(c, d, t);
        else put(out, "maxItems", count(c, d));
        break;
      case "pattern":
        if (prim !== "string") notFor(c, d, t);
        else put(out, "pattern", readPattern(c, d));
        break;
    }
  }
  checkRanges(c, decs, out, prim);
  return out;
}

function put<K extends keyof Constraints>(out: Mutable<Constraints>, key: K, value: Constraints[K] | undefined): void {
  if (value !== undefined) out[key] = value;
}

function notFor(c: Checker, d: A.Decorator, t: TypeModel): void {
  c.out.push(diag.constraintNotApplicable(d.span, { name: d.name.name, type: typeLabel(t) }));
}

function bound(c: Checker, d: A.Decorator, prim: PrimitiveName): number | string | undefined {
  const expected = `one argument: ${numericExpectation(prim)}`;
  const e = argOne(d, expected, c.out);
  if (e === undefined) return undefined;
  const v = numericValue(e, prim);
  if (v === undefined) c.out.push(diag.decoratorArguments(d.span, { name: d.name.name, expected }));
  return v;
}

function count(c: Checker, d: A.Decorator): number | undefined {
  const n = argInt(d, c.out);
  if (n === undefined) return undefined;
  if (n.value >= 0) return n.value;
  c.out.push(diag.decoratorArguments(d.span, { name: d.name.name, expected: "a non-negative integer" }));
  return undefined;
}

function readPattern(c: Checker, d: A.Decorator): string | undefined {
  const s = argString(d, c.out);
  if (s === undefined) return undefined;
  try {
    new RegExp(s.value, "u");
    return s.value;
  } catch (e) {
    c.out.push(diag.invalidPattern(s.span, { reason: e instanceof Error ? e.message : String(e) }));
    return undefined;
  }
}

function checkRanges(
  c: Checker,
  decs: ReadonlyMap<string, A.Decorator>,
  k: Constraints,
  prim: PrimitiveName | undefined,
): void {
  if (k.min !== undefined && k.max !== undefined && prim !== undefined && compareNumeric(k.min, k.max, prim) > 0) {
    c.out.push(diag.constraintRange(decs.get("min")!.span, { low: "min", min: k.min, high: "max", max: k.max }));
  }
  if (k.minLength !== undefined && k.maxLength !== undefined && k.minLength > k.maxLength) {
    c.out.push(
      diag.constraintRange(decs.get("minLength")!.span, {
        low: "minLength",
        min: k.minLength,
        high: "maxLength",
        max: k.maxLength,
      }),
    );
  }
}

/** The first constraint a wire value violates, written like the decorator (`min(1)`), if any. */
export function violatedConstraint(k: Constraints, t: TypeModel, v: JsonValue): string | undefined {
  const prim = primOf(t);
  if (prim !== undefined && NUMERIC.has(prim) && (typeof v === "number" || typeof v === "string")) {
    if (k.min !== undefined && compareNumeric(v, k.min, prim) < 0) return `min(${k.min})`;
    if (k.max !== undefined && compareNumeric(v, k.max, prim) > 0) return `max(${k.max})`;
  }
  if (typeof v === "string" && (prim === "string" || prim === "bytes")) {
    const len = prim === "string" ? [...v].length : Buffer.from(v, "base64").length;
    if (k.minLength !== undefined && len < k.minLength) return `minLength(${k.minLength})`;
    if (k.maxLength !== undefined && len > k.maxLength) return `maxLength(${k.maxLength})`;
    if (k.pattern !== undefined && prim === "string" && !new RegExp(k.pattern, "u").test(v))
      return `pattern(${JSON.stringify(k.pattern)})`;
  }
  if (Array.isArray(v) && k.maxItems !== undefined && v.length > k.maxItems) return `maxItems(${k.maxItems})`;
  return undefined;
}
