/**
 * Structs: plain objects with declared fields.
 *
 * Decisions (decode, the wire side):
 * - JSON `null` for an optional field, or for a field with a default, means absent (as in
 *   protobuf's JSON mapping); for a required field it is a type error. A `json` field is the
 *   exception: `null` is one of its values, so it is kept.
 * - A default (wire form) is decoded afresh on every decode, so no two results share it.
 * - Unknown keys are ignored, for forward compatibility with newer peers, and never copied;
 *   they are still scanned for `__proto__`/`constructor`/`prototype` keys.
 * Typed values (validate, encode): an optional field may be `undefined` (absent) but not
 * `null`. A field with a default may be absent too, since generated clients let a caller leave
 * defaulted parameters out: encode omits it (the receiving decoder fills it in), validate
 * counts it in `absentDefaults` so `Codec.complete()` knows to fill it. Every other field must
 * be present. Struct values may be class instances; extra properties are ignored.
 */
import type { FieldSchema, Schema, StructSchema } from "../schema.js";
import {
  at,
  describe,
  Fail,
  fail,
  failDepth,
  FORBIDDEN_KEYS,
  formatPath,
  rejectForbidden,
  schemaError,
} from "./fail.js";
import { typeName } from "./names.js";
import type { Check, Compiled, Compiler, Step } from "./types.js";

/** How many absent defaulted fields validate and encode have met (read by `Codec.complete()`). */
export const absentDefaults = { count: 0 };

interface FieldPlan {
  readonly name: string;
  readonly optional: boolean;
  readonly hasDefault: boolean;
  /** JSON null means absent: optional or defaulted fields whose type has no null value. */
  readonly nullAbsent: boolean;
  readonly default: unknown;
  /** The name exists on Object.prototype (`toString`...), so only an own property counts. */
  readonly inherited: boolean;
  readonly missing: string;
  readonly c: Compiled;
}

/** True for a non-null, non-array object. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The struct codec; `sub` compiles field schemas. */
export function structCodec(s: StructSchema, c: Compiler, sub: (s: Schema) => Compiled): Compiled {
  const plans = s.fields.map((f) => plan(s, f, sub));
  const known: ReadonlySet<string> = new Set(plans.map((p) => p.name));
  const expected = `expected an object (struct ${s.name})`;
  const max = c.maxDepth;
  const decode: Step = (v, d) => {
    if (!isRecord(v)) fail(`${expected}, got ${describe(v)}`);
    if (d >= max) failDepth(max);
    scanUnknown(v, known, d, max);
    return decodeFields(plans, v, d);
  };
  const check = validateFields(plans);
  const validate: Check = (v, d) => {
    if (!isRecord(v)) fail(`${expected}, got ${describe(v)}`);
    if (d >= max) failDepth(max);
    rejectForbidden(v);
    check(v, d);
  };
  const encode: Step = (v, d) => {
    if (!isRecord(v)) fail(`${expected}, got ${describe(v)}`);
    if (d >= max) failDepth(max);
    rejectForbidden(v);
    const out: Record<string, unknown> = {};
    walkTyped(plans, v, d, out);
    return out;
  };
  return { decode, validate, encode };
}

function plan(s: StructSchema, f: FieldSchema, sub: (s: Schema) => Compiled): FieldPlan {
  if (FORBIDDEN_KEYS.has(f.name)) throw schemaError(`struct ${s.name} has a field named "${f.name}"`);
  if (s.fields.filter((g) => g.name === f.name).length > 1)
    throw schemaError(`struct ${s.name} has two fields named "${f.name}"`);
  const optional = f.optional === true;
  const hasDefault = f.default !== undefined;
  return {
    name: f.name,
    optional,
    hasDefault,
    nullAbsent: (optional || hasDefault) && !isJson(f.schema),
    default: f.default,
    inherited: f.name in Object.prototype,
    missing: `missing required field of type ${typeName(f.schema)}`,
    c: sub(f.schema),
  };
}

/** True when `s` is `json`, through any refs (resolved now: compiling happens on first use). */
function isJson(s: Schema): boolean {
  let cur = s;
  for (let i = 0; cur.kind === "ref" && i < 100; i++) cur = cur.get();
  return cur.kind === "json";
}

function read(p: FieldPlan, v: Record<string, unknown>): unknown {
  if (p.inherited && !Object.hasOwn(v, p.name)) return undefined;
  return v[p.name];
}

function decodeFields(plans: readonly FieldPlan[], v: Record<string, unknown>, d: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let i = 0;
  try {
    for (; i < plans.length; i++) {
      const p = plans[i] as FieldPlan;
      const x = read(p, v);
      if (x === undefined || (x === null && p.nullAbsent)) {
        if (p.hasDefault) out[p.name] = decodeDefault(p, d);
        else if (!p.optional) fail(p.missing);
        continue;
      }
      out[p.name] = p.c.decode(x, d + 1);
    }
  } catch (e) {
    throw at(e, (plans[i] as FieldPlan).name);
  }
  return out;
}

/** A fresh decode of a field's default; a default that does not fit is a schema bug. */
function decodeDefault(p: FieldPlan, d: number): unknown {
  try {
    return p.c.decode(p.default, d + 1);
  } catch (e) {
    if (!(e instanceof Fail)) throw e;
    throw schemaError(
      `the default of field ${p.name} does not fit its type: ${formatPath("", e.segs) || "value"}: ${e.reason}`,
    );
  }
}

/** Validates typed fields; with `out`, also writes their encoded forms into it. */
function walkTyped(
  plans: readonly FieldPlan[],
  v: Record<string, unknown>,
  d: number,
  out: Record<string, unknown> | undefined,
): void {
  let i = 0;
  try {
    for (; i < plans.length; i++) {
      const p = plans[i] as FieldPlan;
      const x = read(p, v);
      if (x === undefined) {
        if (p.hasDefault) absentDefaults.count++;
        else if (!p.optional) fail(p.missing);
        continue;
      }
      if (out === undefined) p.c.validate(x, d + 1);
      else out[p.name] = p.c.encode(x, d + 1);
    }
  } catch (e) {
    throw at(e, (plans[i] as FieldPlan).name);
  }
}

type FieldsCheck = (v: Record<string, unknown>, d: number) => void;

/**
 * The field checks of one struct's `validate`, generated as straight-line code: each field is
 * read by its literal name and checked by its own call site, so V8 keeps monomorphic inline
 * caches per struct instead of one megamorphic keyed load and call shared by every struct (the
 * `walkTyped` loop). The generated code holds no schema text but the field names, which go in
 * as JSON string literals; it behaves exactly as `walkTyped(plans, v, d, undefined)`.
 */
function validateFields(plans: readonly FieldPlan[]): FieldsCheck {
  if (plans.length === 0) return () => undefined;
  const lines: string[] = ["let i = 0, x;", "try {"];
  plans.forEach((p, i) => {
    const key = JSON.stringify(p.name);
    lines.push(`i = ${i};`);
    lines.push(p.inherited ? `x = hasOwn(v, ${key}) ? v[${key}] : undefined;` : `x = v[${key}];`);
    const absent = p.hasDefault ? "absentDefaults.count++;" : p.optional ? "" : `fail(plans[${i}].missing);`;
    lines.push(`if (x === undefined) { ${absent} } else c${i}(x, d + 1);`);
  });
  lines.push("} catch (e) { throw at(e, plans[i].name); }");
  const names = plans.map((_, i) => `c${i}`);
  const make = new Function(
    "plans",
    "fail",
    "at",
    "absentDefaults",
    "hasOwn",
    ...names,
    `"use strict"; return function validateFields(v, d) {\n${lines.join("\n")}\n};`,
  ) as (...args: unknown[]) => FieldsCheck;
  return make(plans, fail, at, absentDefaults, Object.hasOwn, ...plans.map((p) => p.c.validate));
}

/** Rejects forbidden keys among the keys a decode ignores, however deep. */
export function scanUnknown(o: Record<string, unknown>, known: ReadonlySet<string>, d: number, max: number): void {
  for (const k in o) {
    if (known.has(k) || !Object.hasOwn(o, k)) continue;
    try {
      if (FORBIDDEN_KEYS.has(k)) fail(`key "${k}" is not allowed`);
      scanDeep(o[k], d + 1, max);
    } catch (e) {
      throw at(e, k);
    }
  }
}

function scanDeep(v: unknown, d: number, max: number): void {
  if (typeof v !== "object" || v === null) return;
  if (d >= max) failDepth(max);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      try {
        scanDeep(v[i], d + 1, max);
      } catch (e) {
        throw at(e, i);
      }
    }
    return;
  }
  scanUnknown(v as Record<string, unknown>, EMPTY, d, max);
}

const EMPTY: ReadonlySet<string> = new Set();
