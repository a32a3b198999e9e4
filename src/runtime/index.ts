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
  StateStatus,
  StateChange,
  StateView,
  ShardSelector,
  ShardedStateView,
  ShardedStateSet,
  ShardStateChange,
  HandlerOf,
  ClientOf,
} from "./descriptor.js";
export type { AnyEvents, AnyStates, Emitter, LifecycleContext, ShardChange, ShardHooks } from "./call/context.js";
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
export type {
  MergePatch,
  ShardedStatePublisher,
  StatePublisher,
  StatePublishers,
  StatesOptions,
  PersistOptions,
} from "./states/index.js";
export type { Counters } from "./telemetry/stats.js";
export { HealthService, HEALTH_SERVICE } from "./telemetry/health.js";
export type { HealthClient, HealthReply, ServingStatus, Readiness } from "./telemetry/health.js";
export type { TelemetryOptions, AdminOptions } from "./telemetry/index.js";
export type { AppMetrics, CallSeries } from "./telemetry/metrics.js";
export { createLogger, componentLogger } from "./telemetry/logging.js";
export { localTransport, LocalTransport } from "./transports/local/index.js";
export type { LocalOptions } from "./transports/local/index.js";
export { formatTraceparent, parseTraceparent, newTraceId, newSpanId, shortId, instanceIdFor } from "./ids.js";
export type { TraceParent } from "./ids.js";
export type { ConfigSource, InstanceInfo, Directory, InstanceSet, StrategyName } from "./discovery/types.js";

// Discovery and config outside an App: registries, directory, config sources, election, ids.
export {
  createDiscovery,
  memoryRegistry,
  MemoryRegistry,
  sharedMemoryRegistry,
  EtcdRegistry,
  parseEtcdSpec,
  RegistryDirectory,
  DEFAULT_LEASE_TTL_MS,
  ObjectConfigSource,
  RegistryConfigSource,
  YamlConfigSource,
  parseConfigText,
  liveConfig,
  configDecoder,
  campaign,
  leader,
  nextId,
  builtinStrategies,
} from "./discovery/index.js";
export type {
  Discovery,
  DiscoverySpec,
  DiscoveryOptions,
  DirectoryOptions,
  MemoryRegistryOptions,
  EtcdRegistryOptions,
  ConfigObjects,
  LiveConfig,
  CampaignOptions,
  Leadership,
  Strategy,
  PickContext,
  RegisterInfo,
  Registration,
  ResolveOptions,
} from "./discovery/index.js";
// The zmq event hub (zeromq is imported when it starts, not when the runtime loads).
export { startEventHub } from "./transports/event-hub.js";
export type { EventHub, EventHubEndpoints, EventHubOptions } from "./transports/event-hub.js";
// Options of the network transports (types only: the transports load when an App names them).
export type { AmqpTransportOptions } from "./transports/amqp/index.js";
export type { RedisTransportOptions } from "./transports/redis/index.js";
export type { NatsTransportOptions } from "./transports/nats/index.js";
export type { HttpTransportOptions } from "./transports/http/index.js";
export type { ZmqTransportOptions } from "./transports/zmq/index.js";
// The policy layer: client chain options, events, breakers, server interceptors and auth.
export type { PolicyOptions, RetryOptions, HedgeOptions, BulkheadOptions } from "./policy/options.js";
export type { BreakerOptions, BreakerInfo } from "./policy/breaker.js";
export type { BudgetOptions, BackoffOptions } from "./policy/budget.js";
export type { PolicyEvent, PolicyListener, BreakerState } from "./policy/events.js";
export type { Policies } from "./policy/policies.js";
export type { HeaderSource } from "./policy/headers.js";
export type { IncomingCall, ServerInterceptor, AuthVerifier, ServerPolicyOptions } from "./policy/server.js";
