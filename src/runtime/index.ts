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

// The runtime core: app, clients, serving, context, background work, the local transport.
export { createApp, App } from "./app.js";
export type { AppOptions } from "./app.js";
export type { TransportsConfig, DiscoveryInput } from "./app-infra.js";
export type { ClientOptions } from "./client.js";
export type { ServeOptions } from "./served.js";
export { chain, traceInterceptor, deadlineInterceptor } from "./interceptors.js";
export type { Interceptor, Next, OutgoingRequest } from "./interceptors.js";
export { currentContext } from "./callctx.js";
export { task, timer } from "./tasks.js";
export type { TaskContext } from "./tasks.js";
export type { Publisher } from "./publisher.js";
export type { StatePublisher, StateUpdate } from "./states.js";
export type { Counters } from "./stats.js";
export { createLogger, componentLogger } from "./logging.js";
export { localTransport, LocalTransport } from "./transports/local/index.js";
export type { LocalOptions } from "./transports/local/index.js";
export { formatTraceparent, parseTraceparent } from "./ids.js";
export type { ConfigSource, InstanceInfo, Directory, InstanceSet, StrategyName } from "./discovery/types.js";
