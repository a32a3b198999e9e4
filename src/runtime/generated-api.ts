/**
 * The symbols generated code may import from `fan/runtime` — the one list codegen and the
 * runtime agree on. Codegen (`src/codegen/`) imports nothing from the runtime; a golden test
 * checks that every name generated code imports is exported here.
 */
export { codec } from "./codec/index.js";
export type { Codec } from "./codec/index.js";
export { FanError } from "./errors.js";
export { defineService } from "./descriptor.js";
export type {
  CallOptions,
  ClientCaller,
  ErrorDescriptor,
  EventStream,
  ServiceDefinition,
  ServiceDescriptor,
  Sharded,
  ShardedStateHandle,
  StateHandle,
} from "./descriptor.js";
export type { CallContext, ServiceHooks, ShardHooks } from "./call/context.js";
export type { EnumSchema, Schema, StructSchema, UnionSchema } from "./codec/schema.js";
export { createMock } from "./call/mock.js";
export type { MethodMock, ServiceMock } from "./call/mock.js";

/** Names in this list, for the codegen check. Keep in step with the exports above. */
export const GENERATED_API = [
  "codec",
  "Codec",
  "FanError",
  "defineService",
  "CallOptions",
  "ClientCaller",
  "ErrorDescriptor",
  "EventStream",
  "ServiceDefinition",
  "ServiceDescriptor",
  "Sharded",
  "ShardedStateHandle",
  "StateHandle",
  "CallContext",
  "ServiceHooks",
  "ShardHooks",
  "EnumSchema",
  "Schema",
  "StructSchema",
  "UnionSchema",
  "createMock",
  "MethodMock",
  "ServiceMock",
] as const;
