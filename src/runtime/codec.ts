/**
 * Codecs built from schemas: decode (wire JSON → typed value), encode (typed → wire JSON) and
 * validate (check a typed value in place, for the unserialised local transport).
 * OWNER: runtime-codec helper — this file is a placeholder with the final signatures.
 */
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
}

/** Builds (lazily, once) the codec of a schema. */
export function codec<T>(schema: Schema): Codec<T> {
  void schema;
  throw new Error("codec: not implemented yet");
}
