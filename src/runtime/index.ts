/**
 * `fan/runtime`: the public entry point of the runtime, imported by generated code and by
 * services. Named re-exports only; public symbols first.
 */
export * from "./generated-api.js";
export { Code, isCode, httpStatus } from "./errors.js";
export type { WireError } from "./errors.js";
export type {
  TransportName,
  MethodDescriptor,
  EventDescriptor,
  StateDescriptor,
  SubscriptionDescriptor,
  DependencyDescriptor,
  Subscription,
  HandlerOf,
  ClientOf,
} from "./descriptor.js";
export type { LifecycleContext } from "./context.js";
export type {
  PrimitiveSchema,
  PrimitiveKind,
  ListSchema,
  MapSchema,
  FieldSchema,
  RefSchema,
  VoidSchema,
} from "./schema.js";
export type {
  Envelope,
  EnvelopeHeaders,
  EnvelopeKind,
  Inbound,
  Served,
  Transport,
  TransportFactory,
  TransportContext,
  SendOptions,
  EventSubscription,
  EventDelivery,
  Unsubscribe,
} from "./transport.js";
export type { Registry, KeyValue, Lease, Watch, WatchEvent, PutOptions } from "./discovery/registry.js";
