/**
 * String-like scalars: string (lengths in code points, pattern), uuid, decimal, bytes (base64).
 */
import type { PrimitiveSchema } from "./schema.js";
import { compareDecimal, DECIMAL_TEXT, type DecimalParts, decimalParts } from "./decimal.js";
import { describe, fail, schemaError } from "./fail.js";
import { type Check, type Compiled, sameForm } from "./types.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const BASE64 = /^(?:[A-Za-z0-9+/]*|[A-Za-z0-9_-]*)={0,2}$/;

/** Counts code points (a surrogate pair is one character). */
export function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/**
 * Compiles `@pattern` once. The `u` flag is used when the source is valid under it (so `.` and
 * classes see code points); a source that is only valid without it compiles without.
 */
function compilePattern(source: string): RegExp {
  try {
    return new RegExp(source, "u");
  } catch {
    try {
      return new RegExp(source);
    } catch (e) {
      throw schemaError(`@pattern(${JSON.stringify(source)}) is not a regular expression: ${(e as Error).message}`);
    }
  }
}

/** Length check in code points, counting only when the UTF-16 length cannot decide. */
function lengthCheck(min: number | undefined, max: number | undefined): ((s: string) => void) | undefined {
  if (min === undefined && max === undefined) return undefined;
  return (s) => {
    const units = s.length;
    if (max !== undefined && units > max && codePoints(s) > max) {
      fail(`must be at most ${max} characters, got ${codePoints(s)}`);
    }
    if (min !== undefined && (units < min || (Math.ceil(units / 2) < min && codePoints(s) < min))) {
      fail(`must be at least ${min} characters, got ${codePoints(s)}`);
    }
  };
}

/** string with `@minLength`/`@maxLength` (code points) and `@pattern`. */
export function stringCodec(s: PrimitiveSchema): Compiled {
  return sameForm(stringCheck(s));
}

/** The check of a string schema, also used for string map keys. */
export function stringCheck(s: PrimitiveSchema): Check {
  const len = lengthCheck(s.minLength, s.maxLength);
  const re = s.pattern === undefined ? undefined : compilePattern(s.pattern);
  const source = s.pattern;
  return (v) => {
    if (typeof v !== "string") fail(`expected a string, got ${describe(v)}`);
    if (len !== undefined) len(v);
    if (re !== undefined && !re.test(v)) fail(`must match /${source}/, got ${describe(v)}`);
  };
}

/** uuid: checked, case-insensitive, kept as given. */
export function uuidCodec(): Compiled {
  return sameForm(uuidCheck);
}

/** The check of a uuid (also for uuid map keys). */
export const uuidCheck: Check = (v) => {
  if (typeof v !== "string" || !UUID.test(v)) fail(`expected a uuid, got ${describe(v)}`);
};

function decimalBound(s: PrimitiveSchema, which: "min" | "max"): DecimalParts | undefined {
  const b = s[which];
  if (b === undefined) return undefined;
  const text = String(b);
  if (!DECIMAL_TEXT.test(text)) throw schemaError(`@${which}(${text}) of decimal is not decimal text`);
  return decimalParts(text);
}

/** decimal: `-?digits[.digits]` text; bounds compared exactly. */
export function decimalCodec(s: PrimitiveSchema): Compiled {
  return sameForm(decimalCheck(s));
}

/** The check of a decimal schema (also for decimal map keys). */
export function decimalCheck(s: PrimitiveSchema): Check {
  const min = decimalBound(s, "min");
  const max = decimalBound(s, "max");
  return (v) => {
    if (typeof v !== "string" || !DECIMAL_TEXT.test(v))
      fail(`expected a decimal (text -?digits[.digits]), got ${describe(v)}`);
    if (min === undefined && max === undefined) return;
    const p = decimalParts(v);
    if (min !== undefined && compareDecimal(p, min) < 0) fail(`must be at least ${String(s.min)}, got ${v}`);
    if (max !== undefined && compareDecimal(p, max) > 0) fail(`must be at most ${String(s.max)}, got ${v}`);
  };
}

/** bytes: Uint8Array in TS, base64 on the wire (standard or URL alphabet, padding optional). */
export function bytesCodec(s: PrimitiveSchema): Compiled {
  const min = s.minLength;
  const max = s.maxLength;
  const sizeCheck = (n: number): void => {
    if (min !== undefined && n < min) fail(`must be at least ${min} bytes, got ${n}`);
    if (max !== undefined && n > max) fail(`must be at most ${max} bytes, got ${n}`);
  };
  const validate: Check = (v) => {
    if (!(v instanceof Uint8Array)) fail(`expected bytes (a Uint8Array), got ${describe(v)}`);
    sizeCheck(v.byteLength);
  };
  const decode = (v: unknown): Uint8Array => {
    if (typeof v !== "string" || !isBase64(v)) fail(`expected bytes (a base64 string), got ${describe(v)}`);
    const out = new Uint8Array(Buffer.from(v, "base64"));
    sizeCheck(out.byteLength);
    return out;
  };
  const encode = (v: unknown): string => {
    validate(v, 0);
    const b = v as Uint8Array;
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
  };
  return { validate, decode, encode };
}

function isBase64(s: string): boolean {
  if (!BASE64.test(s)) return false;
  return s.endsWith("=") ? s.length % 4 === 0 : s.length % 4 !== 1;
}
