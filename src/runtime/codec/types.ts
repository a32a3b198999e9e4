/**
 * The shape every schema compiles to: three closures taking the value and its nesting depth.
 */
import type { Schema } from "./schema.js";

/** Converts one value (decode: wire → typed; encode: typed → wire); throws `Fail`. */
export type Step = (v: unknown, d: number) => unknown;
/** Checks one typed value in place; throws `Fail`. */
export type Check = (v: unknown, d: number) => void;

/** The compiled form of one schema. */
export interface Compiled {
  readonly decode: Step;
  readonly encode: Step;
  readonly validate: Check;
}

/** Compile-time settings and the per-setting cache of compiled schemas. */
export interface Compiler {
  readonly maxDepth: number;
  /** Durations decode from the IDL's literals too (`500ms`, `2s`): the config form. */
  readonly durationLiterals: boolean;
  readonly cache: WeakMap<Schema, Compiled>;
}

/** A type whose wire and typed forms are the same value: decode and encode check and pass it on. */
export function sameForm(check: Check): Compiled {
  return {
    validate: check,
    decode: (v, d) => {
      check(v, d);
      return v;
    },
    encode: (v, d) => {
      check(v, d);
      return v;
    },
  };
}
