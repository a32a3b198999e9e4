/**
 * Reading numeric literals for a given primitive type, and comparing values of numeric
 * types. Each reader returns `undefined` when the literal does not fit.
 */
import type * as A from "./ast.js";
import type { PrimitiveName } from "./model.js";

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const DECIMAL = /^-?\d+(\.\d+)?$/;

/** True for `-?digits[.digits]`, the decimal wire form. */
export function isDecimalText(s: string): boolean {
  return DECIMAL.test(s);
}

/** The value of a literal as the given numeric primitive, in wire form; `undefined` if it does not fit. */
export function numericValue(e: A.Expr, prim: PrimitiveName): number | string | undefined {
  switch (prim) {
    case "int":
      return e.kind === "IntLit" && Number.isSafeInteger(Number(e.text)) ? Number(e.text) : undefined;
    case "float":
      return (e.kind === "IntLit" || e.kind === "FloatLit") && Number.isFinite(Number(e.text))
        ? Number(e.text)
        : undefined;
    case "int64":
      return e.kind === "IntLit" ? int64Text(e.text) : undefined;
    case "decimal":
      if (e.kind === "StringLit") return isDecimalText(e.value) ? e.value : undefined;
      return (e.kind === "IntLit" || e.kind === "FloatLit") && isDecimalText(e.text) ? e.text : undefined;
    case "duration":
      return e.kind === "DurationLit" && Number.isSafeInteger(e.ms) ? e.ms : undefined;
    default:
      return undefined;
  }
}

function int64Text(text: string): string | undefined {
  const v = BigInt(text);
  return v >= INT64_MIN && v <= INT64_MAX ? v.toString() : undefined;
}

/** What a literal of a numeric primitive looks like, for messages. */
export function numericExpectation(prim: PrimitiveName): string {
  switch (prim) {
    case "int":
      return "an integer (safe in JavaScript)";
    case "int64":
      return "an integer in the int64 range";
    case "float":
      return "a number";
    case "decimal":
      return "a decimal number such as 12.50";
    default:
      return "a duration such as `2s`";
  }
}

/** Compare two wire values of one numeric type (int64 and decimal travel as strings). */
export function compareNumeric(a: number | string, b: number | string, prim: PrimitiveName): number {
  if (prim === "int64") {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (prim === "decimal") return compareDecimal(String(a), String(b));
  return Number(a) - Number(b);
}

/** Exact comparison of two `-?digits[.digits]` strings. */
function compareDecimal(a: string, b: string): number {
  const [ai, af = ""] = a.replace(/^-/, "").split(".");
  const [bi, bf = ""] = b.replace(/^-/, "").split(".");
  const width = Math.max(af.length, bf.length);
  const x = BigInt((a.startsWith("-") ? "-" : "") + ai + af.padEnd(width, "0"));
  const y = BigInt((b.startsWith("-") ? "-" : "") + bi + bf.padEnd(width, "0"));
  return x < y ? -1 : x > y ? 1 : 0;
}
