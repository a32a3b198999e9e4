/**
 * timestamp: `Date` in TS, RFC 3339 text on the wire. Only dates whose year is 0000–9999 are
 * accepted, since only those have an RFC 3339 form; the wire form written is `toISOString()`
 * (UTC, milliseconds). Fractions beyond milliseconds are truncated on decode, and a leap
 * second (`:60`) is rejected because a `Date` cannot hold it.
 */
import { describe, fail } from "./fail.js";
import type { Check, Compiled } from "./types.js";

const RFC3339 =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))$/;
/** 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z. */
const MIN_MS = -62167219200000;
const MAX_MS = 253402300799999;

/** The timestamp codec. */
export function timestampCodec(): Compiled {
  const validate: Check = (v) => {
    if (!(v instanceof Date)) fail(`expected a timestamp (a Date), got ${describe(v)}`);
    const t = v.getTime();
    if (Number.isNaN(t)) fail("expected a timestamp, got an invalid Date");
    if (t < MIN_MS || t > MAX_MS) fail(`expected a timestamp in years 0000-9999, got ${v.toISOString()}`);
  };
  const decode = (v: unknown): Date => {
    const t = typeof v === "string" ? parseRfc3339(v) : undefined;
    if (t === undefined) return fail(`expected a timestamp (RFC 3339 text), got ${describe(v)}`);
    return new Date(t);
  };
  const encode = (v: unknown): string => {
    validate(v, 0);
    return (v as Date).toISOString();
  };
  return { validate, decode, encode };
}

/** Epoch ms of RFC 3339 text, or undefined when it is not a valid date and time. */
export function parseRfc3339(s: string): number | undefined {
  const m = RFC3339.exec(s);
  if (m === null) return undefined;
  const [y, mo, d, h, mi, sec] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i])) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || sec > 59) return undefined;
  const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, "0"));
  let offset = 0;
  if (m[8] !== undefined) {
    const oh = Number(m[9]);
    const om = Number(m[10]);
    if (oh > 23 || om > 59) return undefined;
    offset = (m[8] === "-" ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, sec, ms);
  const t = date.getTime() - offset;
  return t < MIN_MS || t > MAX_MS ? undefined : t;
}

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}
