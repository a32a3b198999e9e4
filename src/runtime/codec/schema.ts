/**
 * Type schemas: the data that generated code emits for every IDL type, and from which
 * `codec.ts` builds decoders, encoders and validators once per type.
 *
 * Why data and not generated decoder functions: one audited implementation of every check
 * (prototype keys, depth, sizes, constraints) instead of thousands of generated copies; a much
 * smaller `generated/` that typechecks fast; and the same schemas drive the descriptors,
 * config validation and mocks. The codec compiles each schema to closures on first use, so
 * the hot path does no schema interpretation of its own.
 */

export type PrimitiveKind =
  | "bool"
  | "int"
  | "int64"
  | "float"
  | "decimal"
  | "string"
  | "bytes"
  | "timestamp"
  | "duration"
  | "uuid"
  | "json";

/** A scalar type with its constraints (those that apply to it). */
export interface PrimitiveSchema {
  readonly kind: PrimitiveKind;
  /** int, float, duration: number; int64 and decimal: the bound as decimal text. */
  readonly min?: number | string;
  readonly max?: number | string;
  /** string: characters (code points); bytes: bytes. */
  readonly minLength?: number;
  readonly maxLength?: number;
  /** string: an ECMAScript regular expression source (unanchored unless it anchors itself). */
  readonly pattern?: string;
}

export interface ListSchema {
  readonly kind: "list";
  readonly of: Schema;
  readonly maxItems?: number;
}

export interface MapSchema {
  readonly kind: "map";
  /** Keys travel as JSON object keys (strings); `int` keys are checked to be safe integers. */
  readonly key: PrimitiveSchema | EnumSchema | RefSchema;
  readonly of: Schema;
  readonly maxItems?: number;
}

export interface FieldSchema {
  readonly name: string;
  readonly schema: Schema;
  readonly optional?: boolean;
  /** Wire-form default applied on decode when the key is absent. */
  readonly default?: unknown;
  /** Never logged (config entries marked `@secret`). */
  readonly secret?: boolean;
}

export interface StructSchema {
  readonly kind: "struct";
  /** Fully qualified IDL name, for error messages: `retail.wines.Wine`. */
  readonly name: string;
  readonly fields: readonly FieldSchema[];
}

export interface EnumSchema {
  readonly kind: "enum";
  readonly name: string;
  /** Member names; the wire form of an enum value is its name. */
  readonly values: readonly string[];
}

/** A tagged union: TS and wire form `{ kind: "<member>", value: <member value> }`. */
export interface UnionSchema {
  readonly kind: "union";
  readonly name: string;
  readonly members: readonly { readonly name: string; readonly schema: Schema }[];
}

/** A lazy reference, for recursive types and for types from another package module. */
export interface RefSchema {
  readonly kind: "ref";
  readonly name: string;
  readonly get: () => Schema;
}

export interface VoidSchema {
  readonly kind: "void";
}

export type Schema =
  | PrimitiveSchema
  | ListSchema
  | MapSchema
  | StructSchema
  | EnumSchema
  | UnionSchema
  | RefSchema
  | VoidSchema;
