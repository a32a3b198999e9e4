/**
 * Exact comparison of decimal text (`-?digits[.digits]`), for `@min`/`@max` on `decimal`:
 * `0.1` vs `0.10000000000000001` must not collapse the way floats do.
 */

/** The decimal wire form. */
export const DECIMAL_TEXT = /^-?[0-9]+(?:\.[0-9]+)?$/;

/** A decimal split into sign, integer digits without leading zeros and fraction without trailing zeros. */
export interface DecimalParts {
  readonly neg: boolean;
  readonly int: string;
  readonly frac: string;
}

/** Splits decimal text that already matched `DECIMAL_TEXT`. */
export function decimalParts(text: string): DecimalParts {
  const neg = text.startsWith("-");
  const body = neg ? text.slice(1) : text;
  const dot = body.indexOf(".");
  const int = (dot < 0 ? body : body.slice(0, dot)).replace(/^0+/, "");
  const frac = dot < 0 ? "" : body.slice(dot + 1).replace(/0+$/, "");
  return { neg: neg && (int !== "" || frac !== ""), int, frac };
}

/** Compares two decimals exactly: negative, zero or positive like a sort comparator. */
export function compareDecimal(a: DecimalParts, b: DecimalParts): number {
  if (a.neg !== b.neg) return a.neg ? -1 : 1;
  const m = compareMagnitude(a, b);
  return a.neg ? -m : m;
}

function compareMagnitude(a: DecimalParts, b: DecimalParts): number {
  if (a.int.length !== b.int.length) return a.int.length < b.int.length ? -1 : 1;
  if (a.int !== b.int) return a.int < b.int ? -1 : 1;
  const n = Math.max(a.frac.length, b.frac.length);
  const fa = a.frac.padEnd(n, "0");
  const fb = b.frac.padEnd(n, "0");
  return fa === fb ? 0 : fa < fb ? -1 : 1;
}
