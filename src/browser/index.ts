/**
 * `fan/browser`: the runtime of code generated with `fanc compile --target browser`, for web
 * pages. No Node built-ins: clients call a `fanc gateway` over `fetch` (rpc, push) and
 * `EventSource` (events, state watches), with the same types, decoders, error classes and
 * codes as `fan/runtime`. `connect(Def, { url })` gives the typed client of a service.
 *
 * It exports every name generated code imports (see `runtime/generated-api.ts`); serving,
 * handlers and mocks are Node-only, so `createMock` here throws.
 */
import type { ServiceDefinition } from "../runtime/descriptor.js";
import { Code, FanError } from "../runtime/errors.js";

export { codec } from "../runtime/codec/index.js";
export type { Codec } from "../runtime/codec/index.js";
export { Code, FanError, httpStatus, isCode } from "../runtime/errors.js";
export type { WireError } from "../runtime/errors.js";
export { defineService } from "../runtime/descriptor.js";
export type {
  CallOptions,
  ClientCaller,
  ErrorDescriptor,
  EventStream,
  ServiceDefinition,
  ServiceDescriptor,
  Sharded,
  ShardedStateHandle,
  ShardedStateSet,
  ShardedStateView,
  ShardSelector,
  ShardStateChange,
  StateChange,
  StateHandle,
  StateStatus,
  StateView,
  Subscription,
} from "../runtime/descriptor.js";
export type { CallContext, ServiceHooks, ShardHooks } from "../runtime/call/context.js";
export type { EnumSchema, Schema, StructSchema, UnionSchema } from "../runtime/codec/schema.js";
export type { MethodMock, ServiceMock } from "../runtime/call/mock.js";
export { connect, GatewayCaller, type GatewayOptions } from "./caller.js";

/** Mocks run under Node (`fan/testing`); generated modules reference this, pages never call it. */
export function createMock(def: ServiceDefinition<unknown, unknown>): never {
  throw new FanError(
    Code.UNIMPLEMENTED,
    `mocks of ${def.descriptor.name} run under Node (fan/testing), not in fan/browser`,
  );
}
