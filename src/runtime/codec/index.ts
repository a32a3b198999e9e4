/**
 * Codecs built from schemas: decode (wire JSON → typed value), encode (typed → wire JSON) and
 * validate (check a typed value in place, for the unserialised local transport).
 *
 * Each schema compiles to closures once, on first use (see `codec/compile.ts`); the closures
 * build no path strings while a value is valid. Wire forms and decisions (null for optional
 * fields, unknown keys, void) are documented in `codec/*.ts` next to the code.
 */
import { compile, compilerFor } from "./compile.js";
import { toFanError } from "./fail.js";
import { absentDefaults } from "./struct.js";
import type { Compiled } from "./types.js";
import { Code, FanError } from "../errors.js";
import type { Schema } from "./schema.js";

/** Decoder, encoder and validator of one IDL type. All three throw `FanError(INVALID_ARGUMENT)` with `details.path`. */
export interface Codec<T> {
  readonly schema: Schema;
  /** Wire JSON value → typed value. Applies defaults, checks constraints, rejects unknown enum values and prototype keys. */
  decode(wire: unknown, path?: string): T;
  /** Typed value → wire JSON value; validates on the way. */
  encode(value: T, path?: string): unknown;
  /** Checks a typed value without converting it (Date, bigint, Uint8Array stay as they are). */
  validate(value: T, path?: string): void;
  /**
   * Validates a typed value like `validate` and returns it with absent defaulted fields filled
   * in: the value itself when none is absent (no copy), else a copy as decode would build it.
   * For the local transport, whose callers may leave defaulted parameters out.
   */
  complete(value: T, path?: string): T;
}

/** Options of `codec()`. */
export interface CodecOptions {
  /** Nesting bound (objects and arrays, json values included); default 64. */
  readonly maxDepth?: number;
  /**
   * Decode a `duration` from the IDL's literals too (`500ms`, `2s`, `1m`, `1h`), as well as a
   * number of milliseconds: the form config is written in (YAML, etcd, `fanc config set`).
   * The typed value is milliseconds either way. Calls' wire form stays milliseconds only.
   */
  readonly durationLiterals?: boolean;
}

/** Default nesting bound of every codec. */
export const DEFAULT_CODEC_DEPTH = 64;
/** The largest nesting bound a codec takes: deep enough for any data, shallow enough for the stack. */
export const MAX_CODEC_DEPTH = 1000;

/** Builds (lazily, once) the codec of a schema. */
export function codec<T>(schema: Schema, options?: CodecOptions): Codec<T> {
  const maxDepth = options?.maxDepth ?? DEFAULT_CODEC_DEPTH;
  if (!Number.isSafeInteger(maxDepth) || maxDepth < 1 || maxDepth > MAX_CODEC_DEPTH) {
    throw new FanError(
      Code.INTERNAL,
      `codec: maxDepth must be an integer from 1 to ${MAX_CODEC_DEPTH}, got ${String(maxDepth)}`,
    );
  }
  let compiled: Compiled | undefined;
  const get = (): Compiled => {
    compiled ??= compile(schema, compilerFor(maxDepth, options?.durationLiterals === true));
    return compiled;
  };
  return {
    schema,
    decode(wire: unknown, path?: string): T {
      const c = compiled ?? get();
      try {
        return c.decode(wire, 0) as T;
      } catch (e) {
        throw toFanError(e, path);
      }
    },
    encode(value: T, path?: string): unknown {
      const c = compiled ?? get();
      try {
        return c.encode(value, 0);
      } catch (e) {
        throw toFanError(e, path);
      }
    },
    validate(value: T, path?: string): void {
      const c = compiled ?? get();
      try {
        c.validate(value, 0);
      } catch (e) {
        throw toFanError(e, path);
      }
    },
    complete(value: T, path?: string): T {
      const c = compiled ?? get();
      const before = absentDefaults.count;
      try {
        c.validate(value, 0);
        return absentDefaults.count === before ? value : (c.decode(c.encode(value, 0), 0) as T);
      } catch (e) {
        throw toFanError(e, path);
      }
    },
  };
}
