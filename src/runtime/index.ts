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
export type { LifecycleContext, ShardChange, ShardHooks } from "./call/context.js";
export type {
  PrimitiveSchema,
  PrimitiveKind,
  ListSchema,
  MapSchema,
  FieldSchema,
  RefSchema,
  VoidSchema,
} from "./codec/schema.js";
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
} from "./transports/transport.js";
export type { Registry, KeyValue, Lease, Watch, WatchEvent, PutOptions } from "./discovery/registry.js";

// The runtime core: app, clients, serving, context, background work, the local transport.
export { createApp, App } from "./app/app.js";
export type { AppOptions } from "./app/app.js";
export type { TransportsConfig, DiscoveryInput } from "./app/infra.js";
export type { ClientOptions } from "./call/client.js";
export type { ServeOptions } from "./call/served.js";
export { chain, traceInterceptor, deadlineInterceptor } from "./call/interceptors.js";
export type { Interceptor, Next, OutgoingRequest } from "./call/interceptors.js";
export { currentContext } from "./call/callctx.js";
export { task, timer } from "./app/tasks.js";
export type { TaskContext } from "./app/tasks.js";
export type { Publisher } from "./call/publisher.js";
export type { StatePublisher, StateUpdate } from "./states/index.js";
export type { Counters } from "./telemetry/stats.js";
export { createLogger, componentLogger } from "./telemetry/logging.js";
export { localTransport, LocalTransport } from "./transports/local/index.js";
export type { LocalOptions } from "./transports/local/index.js";
export { formatTraceparent, parseTraceparent } from "./ids.js";
export type { ConfigSource, InstanceInfo, Directory, InstanceSet, StrategyName } from "./discovery/types.js";
