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
import type { FieldSchema, Schema, StructSchema } from "./schema.js";
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
    return decodeAll(v, d);
  };
  const decodeAll = decodeFieldsCode(plans);
  const encodeAll = encodeFieldsCode(plans);
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
    return encodeAll(v, d);
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

type FieldsCheck = (v: Record<string, unknown>, d: number) => void;

/**
 * The field checks of one struct's `validate`, generated as straight-line code: each field is
 * read by its literal name and checked by its own call site, so V8 keeps monomorphic inline
 * caches per struct instead of one megamorphic keyed load and call shared by every struct (a
 * loop over the field plans). The generated code holds no schema text but the field names, which go in
 * as JSON string literals; for each field in order: an absent field counts in `absentDefaults` when defaulted, fails when
 * required; a present one is validated; a failure gets the field name added to its path.
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

type FieldsStep = (v: Record<string, unknown>, d: number) => Record<string, unknown>;

/** How generated code reads field `i`: an inherited name counts only as an own property. */
function readCode(p: FieldPlan): string {
  const key = JSON.stringify(p.name);
  return p.inherited ? `x = hasOwn(v, ${key}) ? v[${key}] : undefined;` : `x = v[${key}];`;
}

/** Builds a generated fields function: `body` lines run inside the try that adds the field name to failures. */
function generate(
  name: string,
  plans: readonly FieldPlan[],
  body: string[],
  step: (p: FieldPlan) => Step,
): FieldsStep {
  const lines = ["const out = {};", "let i = 0, x;", "try {", ...body, "} catch (e) { throw at(e, plans[i].name); }", "return out;"];
  const names = plans.map((_, i) => `c${i}`);
  const make = new Function(
    "plans",
    "fail",
    "at",
    "absentDefaults",
    "hasOwn",
    "decodeDefault",
    ...names,
    `"use strict"; return function ${name}(v, d) {\n${lines.join("\n")}\n};`,
  ) as (...args: unknown[]) => FieldsStep;
  return make(plans, fail, at, absentDefaults, Object.hasOwn, decodeDefault, ...plans.map(step));
}

/**
 * Decoding of the fields as straight-line generated code (as `validateFields`: literal field
 * names in JSON string literals, one call site per field); for each field in order: absent (undefined, or null when `nullAbsent`) takes a fresh decode of
 * its default, is skipped when optional, fails when required; a present one is decoded.
 */
function decodeFieldsCode(plans: readonly FieldPlan[]): FieldsStep {
  const body: string[] = [];
  plans.forEach((p, i) => {
    const key = JSON.stringify(p.name);
    body.push(`i = ${i};`, readCode(p));
    const absentWhen = p.nullAbsent ? "x === undefined || x === null" : "x === undefined";
    const absent = p.hasDefault
      ? `out[${key}] = decodeDefault(plans[${i}], d);`
      : p.optional
        ? ""
        : `fail(plans[${i}].missing);`;
    body.push(`if (${absentWhen}) { ${absent} } else out[${key}] = c${i}(x, d + 1);`);
  });
  return generate("decodeFields", plans, body, (p) => p.c.decode);
}

/** Encoding of the fields as straight-line generated code: `validateFields`' rules, writing each present field's encoded form. */
function encodeFieldsCode(plans: readonly FieldPlan[]): FieldsStep {
  const body: string[] = [];
  plans.forEach((p, i) => {
    const key = JSON.stringify(p.name);
    body.push(`i = ${i};`, readCode(p));
    const absent = p.hasDefault ? "absentDefaults.count++;" : p.optional ? "" : `fail(plans[${i}].missing);`;
    body.push(`if (x === undefined) { ${absent} } else out[${key}] = c${i}(x, d + 1);`);
  });
  return generate("encodeFields", plans, body, (p) => p.c.encode);
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
