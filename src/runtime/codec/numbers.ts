/**
 * Numeric scalars: bool, int, int64, float, duration. Bounds are checked exactly: int64
 * compares as bigint, never through a float.
 */
import type { PrimitiveSchema } from "./schema.js";
import { describe, fail, schemaError } from "./fail.js";
import { type Check, type Compiled, sameForm } from "./types.js";
import { durationLiteralMs } from "../../util/duration.js";

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** Canonical integer text: no leading zeros, no `-0`, no `+`. */
export const INTEGER_TEXT = /^(?:0|-?[1-9][0-9]*)$/;

/** bool. */
export function boolCodec(): Compiled {
  return sameForm((v) => {
    if (typeof v !== "boolean") fail(`expected a bool, got ${describe(v)}`);
  });
}

function numberBound(s: PrimitiveSchema, which: "min" | "max"): number | undefined {
  const b = s[which];
  if (b === undefined) return undefined;
  const n = typeof b === "number" ? b : Number(b);
  if (!Number.isFinite(n)) throw schemaError(`@${which}(${String(b)}) of ${s.kind} is not a finite number`);
  return n;
}

/** A check for numbers with `kind`'s shape test and the schema's bounds (`unit` follows each number told). */
function numberCheck(s: PrimitiveSchema, ok: (v: unknown) => boolean, expected: string, unit = ""): Check {
  const min = numberBound(s, "min");
  const max = numberBound(s, "max");
  return (v) => {
    if (!ok(v)) fail(`expected ${expected}, got ${describe(v)}`);
    if (min !== undefined && (v as number) < min) fail(`must be at least ${min}${unit}, got ${v as number}${unit}`);
    if (max !== undefined && (v as number) > max) fail(`must be at most ${max}${unit}, got ${v as number}${unit}`);
  };
}

/** int: a safe integer. */
export function intCodec(s: PrimitiveSchema): Compiled {
  return sameForm(numberCheck(s, Number.isSafeInteger, "an int (a safe integer)"));
}

/** float: a finite number. */
export function floatCodec(s: PrimitiveSchema): Compiled {
  return sameForm(numberCheck(s, Number.isFinite, "a float (a finite number)"));
}

const isDuration = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;

/** duration: milliseconds, a non-negative safe integer. */
export function durationCodec(s: PrimitiveSchema): Compiled {
  return sameForm(numberCheck(s, isDuration, "a duration (a non-negative integer of milliseconds)"));
}

/** What a config duration may be written as, for messages. */
export const CONFIG_DURATION = "a duration like 500ms, 2s, 1m, 1h or a whole number of milliseconds";

/**
 * duration in config: decoded from the IDL's literal (`500ms`, `2s`, `1m`, `1h`, read as the
 * compiler reads them) or from milliseconds; the typed value is milliseconds.
 */
export function durationConfigCodec(s: PrimitiveSchema): Compiled {
  const check = numberCheck(s, isDuration, CONFIG_DURATION, " ms");
  return {
    validate: check,
    encode: (v, d) => {
      check(v, d);
      return v;
    },
    decode: (v, d) => {
      const ms = typeof v === "string" ? durationLiteralMs(v) : v;
      if (!isDuration(ms)) fail(`expected ${CONFIG_DURATION}, got ${describe(v)}`);
      check(ms, d);
      return ms;
    },
  };
}

function bigintBound(s: PrimitiveSchema, which: "min" | "max"): bigint | undefined {
  const b = s[which];
  if (b === undefined) return undefined;
  const text = String(b);
  if (!INTEGER_TEXT.test(text) && text !== "-0") throw schemaError(`@${which}(${text}) of int64 is not an integer`);
  return BigInt(text);
}

/** int64: bigint in TS, decimal string on the wire (a JSON safe integer is accepted on decode). */
export function int64Codec(s: PrimitiveSchema): Compiled {
  const min = bigintBound(s, "min");
  const max = bigintBound(s, "max");
  const check: Check = (v) => {
    if (typeof v !== "bigint") fail(`expected an int64 (a bigint), got ${describe(v)}`);
    inRange(v, min, max);
  };
  const decode = (v: unknown): bigint => {
    let n: bigint;
    if (typeof v === "string" && v.length <= 20 && INTEGER_TEXT.test(v)) n = BigInt(v);
    else if (typeof v === "number" && Number.isSafeInteger(v)) n = BigInt(v);
    else return fail(`expected an int64 (a decimal integer string), got ${describe(v)}`);
    inRange(n, min, max);
    return n;
  };
  const encode = (v: unknown): string => {
    check(v, 0);
    return (v as bigint).toString();
  };
  return { validate: check, decode, encode };
}

function inRange(n: bigint, min: bigint | undefined, max: bigint | undefined): void {
  if (n < INT64_MIN || n > INT64_MAX) fail(`expected an int64, got ${n} (out of the 64-bit range)`);
  if (min !== undefined && n < min) fail(`must be at least ${min}, got ${n}`);
  if (max !== undefined && n > max) fail(`must be at most ${max}, got ${n}`);
}
