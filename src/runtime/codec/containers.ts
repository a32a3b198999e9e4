/**
 * list, map, enum, union and void.
 *
 * Maps are plain objects with own keys only (a `Map` or class instance is rejected). Keys are
 * checked by the key type: string (with its constraints), int (canonical text of a safe
 * integer), int64, uuid, decimal, or an enum member. A key whose value is `undefined` in a
 * typed map counts as absent (`Partial<Record<Color, V>>`).
 */
import type { EnumSchema, ListSchema, MapSchema, Schema, UnionSchema } from "./schema.js";
import { at, describe, Fail, fail, failDepth, FORBIDDEN_KEYS, rejectForbidden, schemaError } from "./fail.js";
import { listNames } from "./names.js";
import { int64Codec, intCodec, INTEGER_TEXT } from "./numbers.js";
import { isRecord, scanUnknown } from "./struct.js";
import { decimalCheck, stringCheck, uuidCheck } from "./text.js";
import { type Check, type Compiled, type Compiler, sameForm, type Step } from "./types.js";

/** list<T>: an array; `@maxItems`. */
export function listCodec(s: ListSchema, c: Compiler, sub: (s: Schema) => Compiled): Compiled {
  const of = sub(s.of);
  const max = c.maxDepth;
  const maxItems = s.maxItems;
  const head = (v: unknown, d: number): unknown[] => {
    if (!Array.isArray(v)) fail(`expected a list (an array), got ${describe(v)}`);
    if (d >= max) failDepth(max);
    if (maxItems !== undefined && v.length > maxItems) fail(`must have at most ${maxItems} items, got ${v.length}`);
    return v;
  };
  const convert =
    (step: Step): Step =>
    (v, d) => {
      const a = head(v, d);
      const out: unknown[] = [];
      let i = 0;
      try {
        for (; i < a.length; i++) out.push(step(a[i], d + 1));
      } catch (e) {
        throw at(e, i);
      }
      return out;
    };
  const validate: Check = (v, d) => {
    const a = head(v, d);
    let i = 0;
    try {
      for (; i < a.length; i++) of.validate(a[i], d + 1);
    } catch (e) {
      throw at(e, i);
    }
  };
  return { decode: convert(of.decode), encode: convert(of.encode), validate };
}

/** map<K, V>: a plain object; `@maxItems` counts keys. */
export function mapCodec(s: MapSchema, c: Compiler, sub: (s: Schema) => Compiled): Compiled {
  const key = keyCheck(s.key, sub);
  const of = sub(s.of);
  const max = c.maxDepth;
  const maxItems = s.maxItems;
  const walk = (v: unknown, d: number, step: Step | undefined): Record<string, unknown> | undefined => {
    if (!isPlainObject(v)) fail(`expected a map (a plain object), got ${describe(v)}`);
    if (d >= max) failDepth(max);
    const keys = Object.keys(v);
    if (maxItems !== undefined && keys.length > maxItems)
      fail(`must have at most ${maxItems} entries, got ${keys.length}`);
    const out: Record<string, unknown> | undefined = step === undefined ? undefined : {};
    let k = "";
    try {
      for (k of keys) {
        const x = v[k];
        key(k);
        if (x === undefined) continue;
        if (out === undefined) of.validate(x, d + 1);
        else out[k] = (step as Step)(x, d + 1);
      }
    } catch (e) {
      throw at(e, { key: k });
    }
    return out;
  };
  return {
    decode: (v, d) => walk(v, d, of.decode),
    encode: (v, d) => walk(v, d, of.encode),
    validate: (v, d) => {
      walk(v, d, undefined);
    },
  };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (!isRecord(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Compiles the check of a map key (keys are strings in both the typed and the wire form). */
function keyCheck(s: Schema, sub: (s: Schema) => Compiled): (k: string) => void {
  const inner = keyInner(resolveKey(s), sub);
  return (k) => {
    if (FORBIDDEN_KEYS.has(k)) fail(`key "${k}" is not allowed`);
    try {
      inner(k);
    } catch (e) {
      throw e instanceof Fail ? new Fail(`invalid key: ${e.reason}`) : e;
    }
  };
}

function resolveKey(s: Schema): Schema {
  let cur = s;
  for (let i = 0; cur.kind === "ref"; i++) {
    if (i > 100) throw schemaError(`map key ref ${cur.name} does not resolve`);
    cur = cur.get();
  }
  return cur;
}

function keyInner(s: Schema, sub: (s: Schema) => Compiled): (k: string) => void {
  switch (s.kind) {
    case "enum":
    case "uuid":
    case "string":
    case "decimal":
      return asKey(
        s.kind === "string"
          ? stringCheck(s)
          : s.kind === "decimal"
            ? decimalCheck(s)
            : s.kind === "uuid"
              ? uuidCheck
              : sub(s).validate,
      );
    case "int": {
      const check = intCodec(s).validate;
      return (k) => {
        if (!INTEGER_TEXT.test(k)) fail(`expected an int, got ${describe(k)}`);
        check(Number(k), 0);
      };
    }
    case "int64": {
      const decode = int64Codec(s).decode;
      return (k) => {
        decode(k, 0);
      };
    }
    default:
      throw schemaError(`a map key must be string, int or an enum, not ${s.kind}`);
  }
}

function asKey(check: Check): (k: string) => void {
  return (k) => check(k, 0);
}

/** enum: the member name. */
export function enumCodec(s: EnumSchema): Compiled {
  const members: ReadonlySet<string> = new Set(s.values);
  const expected = `expected one of ${listNames(s.values)} (enum ${s.name})`;
  return sameForm((v) => {
    if (typeof v !== "string" || !members.has(v)) fail(`${expected}, got ${describe(v)}`);
  });
}

/** union: `{ kind, value }` in both forms. */
export function unionCodec(s: UnionSchema, c: Compiler, sub: (s: Schema) => Compiled): Compiled {
  const members = new Map<string, { c: Compiled; isVoid: boolean }>();
  for (const m of s.members) {
    if (members.has(m.name)) throw schemaError(`union ${s.name} has two members named "${m.name}"`);
    members.set(m.name, { c: sub(m.schema), isVoid: m.schema.kind === "void" });
  }
  const names = listNames(s.members.map((m) => m.name));
  const expected = `expected an object { kind, value } (union ${s.name})`;
  const known: ReadonlySet<string> = new Set(["kind", "value"]);
  const max = c.maxDepth;
  const head = (v: unknown, d: number, wire: boolean): { c: Compiled; isVoid: boolean } => {
    if (!isRecord(v)) fail(`${expected}, got ${describe(v)}`);
    if (d >= max) failDepth(max);
    if (wire) scanUnknown(v, known, d, max);
    else rejectForbidden(v);
    const m = typeof v.kind === "string" ? members.get(v.kind) : undefined;
    if (m === undefined)
      throw at(new Fail(`expected one of ${names} (union ${s.name}), got ${describe(v.kind)}`), "kind");
    if (v.value === undefined && !m.isVoid) throw at(new Fail("missing required field value"), "value");
    return m;
  };
  const convert = (pick: (c: Compiled) => Step, wire: boolean): Step => {
    return (v, d) => {
      const m = head(v, d, wire);
      const r = v as { kind: string; value: unknown };
      let value: unknown;
      try {
        value = pick(m.c)(r.value, d + 1);
      } catch (e) {
        throw at(e, "value");
      }
      return value === undefined ? { kind: r.kind } : { kind: r.kind, value };
    };
  };
  const validate: Check = (v, d) => {
    const m = head(v, d, false);
    try {
      m.c.validate((v as { value: unknown }).value, d + 1);
    } catch (e) {
      throw at(e, "value");
    }
  };
  return { decode: convert((x) => x.decode, true), encode: convert((x) => x.encode, false), validate };
}

/**
 * void: decode accepts `undefined` and `null`. Encode always gives `undefined` and validate
 * accepts anything, because TypeScript lets a `void` function return a value; it is dropped.
 */
export function voidCodec(): Compiled {
  return {
    decode: (v) => {
      if (v !== undefined && v !== null) fail(`expected nothing (void), got ${describe(v)}`);
      return undefined;
    },
    encode: () => undefined,
    validate: () => undefined,
  };
}
