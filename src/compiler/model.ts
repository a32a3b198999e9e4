/**
 * The checked model: what the checker hands to the code generator once a program has no
 * errors. Every name is resolved to a fully qualified one (`retail.wines.Wine`), every default
 * is a JSON wire value, every duration is in milliseconds. Codegen reads only this, never the
 * AST, so it needs no name resolution of its own.
 */

export type PrimitiveName =
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

export type TypeModel =
  | { readonly kind: "primitive"; readonly name: PrimitiveName }
  | { readonly kind: "list"; readonly element: TypeModel }
  | { readonly kind: "map"; readonly key: TypeModel; readonly value: TypeModel }
  | {
      readonly kind: "ref";
      /** Fully qualified name of a struct, enum, union or error: `retail.common.Money`. */
      readonly target: string;
      readonly declKind: "struct" | "enum" | "union" | "error";
    }
  | { readonly kind: "void" };

/** Field constraints from decorators; only those that apply to the field's type are present. */
export interface Constraints {
  /** `@min`/`@max`: for int, float, duration (ms) a number; for int64 and decimal the literal text. */
  readonly min?: number | string;
  readonly max?: number | string;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly maxItems?: number;
  readonly pattern?: string;
}

/** A JSON value (the wire form of a default). */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [k: string]: JsonValue };

/** A struct/error field, config entry, or method/event parameter. */
export interface FieldModel {
  readonly name: string;
  readonly optional: boolean;
  readonly type: TypeModel;
  /** The default in wire form (durations in ms, int64 as a decimal string, enums by member name). */
  readonly default?: JsonValue;
  readonly constraints: Constraints;
  /** `@secret` (config entries): never logged. */
  readonly secret: boolean;
  readonly deprecated?: string;
  readonly doc?: string;
}

interface DeclBase {
  /** The simple name: `Wine`. */
  readonly name: string;
  /** The fully qualified name: `retail.wines.Wine`. */
  readonly fullName: string;
  /** The package: `retail.wines`. */
  readonly package: string;
  readonly doc?: string;
  readonly deprecated?: string;
}

export interface StructModel extends DeclBase {
  readonly kind: "struct";
  readonly fields: readonly FieldModel[];
}

export interface EnumMemberModel {
  readonly name: string;
  /** Explicit value, or previous + 1 starting at 0 (protobuf/TypeScript convention). */
  readonly value: number;
  readonly doc?: string;
  readonly deprecated?: string;
}

export interface EnumModel extends DeclBase {
  readonly kind: "enum";
  readonly members: readonly EnumMemberModel[];
}

export interface UnionMemberModel {
  readonly name: string;
  readonly type: TypeModel;
  readonly doc?: string;
}

export interface UnionModel extends DeclBase {
  readonly kind: "union";
  readonly members: readonly UnionMemberModel[];
}

/** The runtime's status codes (see `src/runtime/errors.ts`, which holds the same list). */
export type StatusCodeName =
  | "CANCELLED"
  | "UNKNOWN"
  | "INVALID_ARGUMENT"
  | "DEADLINE_EXCEEDED"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PERMISSION_DENIED"
  | "RESOURCE_EXHAUSTED"
  | "FAILED_PRECONDITION"
  | "ABORTED"
  | "OUT_OF_RANGE"
  | "UNIMPLEMENTED"
  | "INTERNAL"
  | "UNAVAILABLE"
  | "DATA_LOSS"
  | "UNAUTHENTICATED";

export interface ErrorModel extends DeclBase {
  readonly kind: "error";
  readonly code: StatusCodeName;
  readonly fields: readonly FieldModel[];
}

/**
 * The transports `@transports` may name, in the order a service's list is kept (the one source
 * of the checker's list, FAN0309's message and the default of a service without `@transports`).
 */
export const TRANSPORT_NAMES = ["http", "amqp", "redis", "nats", "zmq", "tcp", "local"] as const;
export type TransportName = (typeof TRANSPORT_NAMES)[number];

/** The HTTP verbs a `@route` may bind (HEAD is answered by every GET route). */
export type RouteVerb = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface MethodModel {
  readonly kind: "rpc" | "push";
  readonly name: string;
  readonly params: readonly FieldModel[];
  /** `{ kind: "void" }` for `: void` and for every push. */
  readonly returns: TypeModel;
  /** Fully qualified error names. */
  readonly throws: readonly string[];
  /** rpc: `@timeout` or the default 10 000 ms. push: undefined. */
  readonly timeoutMs?: number;
  /** push: `@ttl`, when given. */
  readonly ttlMs?: number;
  readonly idempotent: boolean;
  /** `@auth(roles...)` on the member, else on its service: any one of the roles ([]: any caller with credentials). */
  readonly auth?: readonly string[];
  /** `@retry(n)`: extra attempts; 0 when absent. */
  readonly retry: number;
  /**
   * `@route("VERB /path/{param}")`: `verb` as written, or for `@route("/path")` GET on an
   * `@idempotent` rpc and POST otherwise.
   */
  readonly route?: { readonly verb: RouteVerb; readonly path: string; readonly params: readonly string[] };
  /** `@shard(a, b.c)`: each path is a parameter name followed by struct field names. */
  readonly shard?: readonly (readonly string[])[];
  /** `@fallback`: when the shard's owner is unavailable, the call may go to another instance. */
  readonly shardFallback?: true;
  readonly since?: string;
  readonly deprecated?: string;
  readonly doc?: string;
}

export interface EventModel {
  readonly name: string;
  readonly params: readonly FieldModel[];
  readonly broadcast: boolean;
  readonly since?: string;
  readonly deprecated?: string;
  readonly doc?: string;
}

export interface StateModel {
  readonly name: string;
  readonly type: TypeModel;
  readonly mode: "full" | "delta";
  /** `@shard`: one value per shard of the service, each owned by the shard's owner. */
  readonly sharded?: true;
  readonly doc?: string;
}

export interface DependencyModel {
  /** Fully qualified service name. */
  readonly service: string;
  readonly range: string;
  readonly soft: boolean;
}

export interface SubscriptionModel {
  /** Fully qualified name of the publishing service. */
  readonly service: string;
  readonly event: string;
  /** The generated handler method: `on` + capitalised event name, e.g. `onWineChanged`. */
  readonly handler: string;
  readonly doc?: string;
}

export interface ServiceModel extends DeclBase {
  readonly kind: "service";
  /** `@version`, else the package's `version`, else "0.0.0". */
  readonly version: string;
  /** `@transports(...)`, else all of them; `local` is always included. */
  readonly transports: readonly TransportName[];
  /** `@shards(n)`, default 16. */
  readonly shards: number;
  readonly unique: boolean;
  readonly depends: readonly DependencyModel[];
  readonly config: readonly FieldModel[];
  /** rpc and push members in source order. */
  readonly methods: readonly MethodModel[];
  readonly events: readonly EventModel[];
  readonly states: readonly StateModel[];
  readonly subscriptions: readonly SubscriptionModel[];
}

export type DeclModel = StructModel | EnumModel | UnionModel | ErrorModel | ServiceModel;

export interface PackageModel {
  /** `retail.wines`. */
  readonly name: string;
  /** Source files of this package, relative to the compile root, sorted. */
  readonly files: readonly string[];
  readonly doc?: string;
  /** Declarations in a deterministic order: by file (sorted), then source order. */
  readonly decls: readonly DeclModel[];
}

export interface ProgramModel {
  /** Sorted by name. */
  readonly packages: readonly PackageModel[];
}
