/**
 * The IDL's duration literals, `250ms`, `2s`, `5m`, `1h`: one whole number and one unit. The
 * compiler reads them in `.fan` files (defaults, `@timeout`, `@min`), the runtime in config
 * values (YAML files, etcd keys, `fanc config set`), so both take the same forms. Neither
 * imports the other, so the reader lives here.
 */

/** Milliseconds of each unit. */
export const DURATION_UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

const LITERAL = /^(-?\d+)(ms|s|m|h)$/;

/**
 * The milliseconds a duration literal stands for, or undefined when `text` is not one. A `-`
 * sign is read and the value may be past the safe integers: callers refuse both, each in its
 * own words.
 */
export function durationLiteralMs(text: string): number | undefined {
  const m = LITERAL.exec(text);
  return m === null ? undefined : Number(m[1]) * (DURATION_UNIT_MS[m[2] as string] as number);
}
