/**
 * Service descriptors and the contract between generated code and the runtime.
 *
 * A generated module exports, per service, a `ServiceDefinition`: the descriptor (data the
 * runtime executes) plus a `createClient` function that wraps a runtime `ClientCaller` in the
 * typed proxy. The handler and client types ride along as phantom type parameters so that
 * `app.serve(PublicWines, handler)` and `app.client(PublicWines)` are typed without the
 * runtime knowing any service.
 */
import type { Code, FanError } from "./errors.js";
import type { Schema, StructSchema } from "./codec/schema.js";

export type TransportName = "http" | "amqp" | "redis" | "nats" | "zmq" | "tcp" | "local";

export interface MethodDescriptor {
  readonly name: string;
  readonly kind: "rpc" | "push";
  /** The parameters as one struct (its name is `<Service>.<method>$input`). */
  readonly input: StructSchema;
  /** The reply; `{ kind: "void" }` for void rpcs and every push. */
  readonly output: Schema;
  /** rpc: the IDL `@timeout` or 10 000. */
  readonly timeoutMs: number;
  /** push: `@ttl`. */
  readonly ttlMs?: number;
  readonly idempotent: boolean;
  /** Extra attempts allowed (`@retry(n)`), 0 when absent. */
  readonly retry: number;
  /**
   * `@route`: the path, its `{param}` names, and the verb it is served on. Without `verb` (a
   * route written `@route("/path")`, and every descriptor generated before verbs): GET for an
   * `@idempotent` rpc, POST otherwise (`routeVerb` in transports/http/routes.ts).
   */
  readonly route?: {
    readonly verb?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
    readonly path: string;
    readonly params: readonly string[];
  };
  /** Shard key paths: `[["storeId"], ["wine", "id"]]`. */
  readonly shard?: readonly (readonly string[])[];
  /**
   * `@fallback`: when the shard's owner is gone or its breaker is open, the call goes to
   * another instance instead of failing (a client's `shardFallback` option overrides it).
   */
  readonly shardFallback?: boolean;
  /** Fully qualified names of the IDL errors this method may throw. */
  readonly throws: readonly string[];
  /**
   * `@auth(...)` on the method or its service: the roles a caller needs (any one of them;
   * empty: any authenticated caller). Absent: no authentication required.
   */
  readonly auth?: readonly string[];
  readonly since?: string;
  readonly deprecated?: string;
}

export interface EventDescriptor {
  readonly name: string;
  readonly payload: StructSchema;
  readonly broadcast: boolean;
}

export interface StateDescriptor {
  readonly name: string;
  readonly schema: Schema;
  readonly mode: "full" | "delta";
  /** `@shard`: one value per shard of the service (`shards`), each published by its shard's owner. */
  readonly sharded?: true;
}

export interface SubscriptionDescriptor {
  /** The publishing service's fully qualified name. */
  readonly service: string;
  readonly event: string;
  /** The handler method that receives it: `onWineChanged`. */
  readonly handler: string;
  /** Lazy: the publishing service may live in another generated module. */
  readonly source: () => ServiceDescriptor;
}

export interface DependencyDescriptor {
  readonly service: string;
  readonly range: string;
  readonly soft: boolean;
}

/** Constructor of a generated IDL error class. */
export type ErrorClass = new (fields: never, message?: string) => FanError;

export interface ErrorDescriptor {
  /** Fully qualified: `retail.wines.WineNotFound`. */
  readonly name: string;
  readonly code: Code;
  readonly fields: StructSchema;
  /** Builds the generated class from decoded fields. */
  readonly create: (fields: Record<string, unknown>, message: string) => FanError;
}

export interface ServiceDescriptor {
  /** Fully qualified: `retail.wines.PublicWines`. */
  readonly name: string;
  readonly version: string;
  readonly transports: readonly TransportName[];
  readonly shards: number;
  readonly unique: boolean;
  readonly methods: Readonly<Record<string, MethodDescriptor>>;
  readonly events: Readonly<Record<string, EventDescriptor>>;
  readonly states: Readonly<Record<string, StateDescriptor>>;
  readonly subscriptions: readonly SubscriptionDescriptor[];
  readonly depends: readonly DependencyDescriptor[];
  /** The `config {}` block as a struct; undefined when the service has none. */
  readonly config?: StructSchema;
  /** Every IDL error any method of this service throws, by fully qualified name. */
  readonly errors: Readonly<Record<string, ErrorDescriptor>>;
}

// ---------------------------------------------------------------------------------------------
// What the runtime gives generated clients

/** Per-call options of every generated client method. */
export interface CallOptions {
  /** Overrides the IDL timeout, in ms. The effective deadline is never later than the caller's own. */
  readonly timeout?: number;
  /** Absolute deadline (epoch ms); wins over `timeout` when earlier. */
  readonly deadline?: number;
  readonly signal?: AbortSignal;
  /** Extra headers carried in the envelope (string values). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Pin the call to one transport (otherwise discovery and config choose). */
  readonly transport?: TransportName;
  /**
   * Extra attempts of this call on a retryable failure, even for a method that is not
   * `@idempotent` (the caller vouches for it); `false`: none. Default: the client's policy.
   */
  readonly retry?: number | false;
  /** Called once the call's trace exists, before any interceptor runs: its trace and span ids. */
  readonly onTrace?: (trace: { readonly traceId: string; readonly spanId: string }) => void;
  /**
   * Pushes only: the push's id (at most 200 characters). Send a push again with the same key
   * (after an error whose `details.maybeDelivered` is true) and the consumer's dedupe window
   * acknowledges the duplicate without running the handler twice. Default: a fresh id.
   */
  readonly idempotencyKey?: string;
}

/** A subscription returned by `client.events.x.subscribe(fn)`. */
export interface Subscription {
  unsubscribe(): Promise<void>;
}

/** `client.events.<name>`. */
export interface EventStream<T> {
  subscribe(fn: (event: T) => void | Promise<void>): Promise<Subscription>;
}

/**
 * Where a watcher stands: `connecting` (no snapshot yet), `live` (in sequence with the
 * owner), `resyncing` (a gap, a new epoch or a reconnect: fetching a snapshot),
 * `owner-absent` (no owner answers, or its heartbeats stopped), `closed`.
 */
export type StateStatus = "connecting" | "live" | "resyncing" | "owner-absent" | "closed";

/** One change of a watched state. */
export interface StateChange<T> {
  /** The value after the change. */
  readonly value: T;
  /**
   * The RFC 7396 merge patch that produced it, in wire form (a timestamp as its ISO text, an
   * int64 as its digits, bytes as base64): so `unknown`, not the owner's typed `MergePatch<T>`.
   * Undefined for a full value or a snapshot.
   */
  readonly patch: unknown;
  readonly epoch: number;
  readonly seq: number;
  readonly cause: "full" | "patch" | "snapshot";
}

/** A live replica of a state: `client.states.<name>.watch()`. */
export interface StateView<T> extends AsyncIterable<StateChange<T>> {
  /** The replica's value; undefined until the owner has one. */
  readonly current: T | undefined;
  readonly epoch: number;
  readonly seq: number;
  readonly status: StateStatus;
  /** Why the view is not live (the last error or the missed heartbeat), else undefined. */
  readonly reason: string | undefined;
  /** Calls `fn` on every change (synchronously, in order); returns its removal. */
  subscribe(fn: (change: StateChange<T>) => void): () => void;
  /** Calls `fn` whenever the status or the reason for it changes; returns its removal. */
  onStatus(fn: (status: StateStatus, reason: string | undefined) => void): () => void;
  /** Resolves with the value once the replica is live and has one (rejects after `timeoutMs`, default 10 000). */
  ready(timeoutMs?: number): Promise<T>;
  /** Stops watching (idempotent); iterators end. */
  close(): Promise<void>;
}

/** `client.states.<name>`. */
export interface StateHandle<T> {
  /** The owner's current value (one snapshot request). */
  get(opts?: CallOptions): Promise<T>;
  /** A live, typed replica of the state. */
  watch(): StateView<T>;
  /** Calls `fn` with the current value and on every change until unwatched. */
  watch(fn: (value: T) => void): Promise<Subscription>;
}

/** Which shard of a sharded state: its number, or a key (hashed as a `@shard(key)` method's call is). */
export type ShardSelector = { readonly shard: number } | { readonly key: unknown };

/** A live replica of one shard of a sharded state. */
export interface ShardedStateView<T> extends StateView<T> {
  /** The shard this view replicates; while no instance owns it the status is `owner-absent` and `reason` names the shard. */
  readonly shard: number;
}

/** A change of one shard, as a `ShardedStateSet` reports it. */
export interface ShardStateChange<T> extends StateChange<T> {
  readonly shard: number;
}

/** Every shard of a sharded state watched together: `client.states.<name>.watchAll()`. */
export interface ShardedStateSet<T> extends AsyncIterable<ShardStateChange<T>> {
  /** One view per shard, by shard number; each follows its shard to its next owner. */
  readonly views: readonly ShardedStateView<T>[];
  /** Each shard's value by shard number (undefined until its owner has one). */
  readonly current: readonly (T | undefined)[];
  /** `live` once every shard is; else the furthest from live (`owner-absent`, `resyncing`, `connecting`). */
  readonly status: StateStatus;
  /** Why each shard that is not live is not (its view's reason, else its status). */
  readonly reasons: ReadonlyMap<number, string>;
  /** Calls `fn` on every change of every shard (synchronously, in order per shard); returns its removal. */
  subscribe(fn: (change: ShardStateChange<T>) => void): () => void;
  /** Calls `fn` whenever the set's status changes; returns its removal. */
  onStatus(fn: (status: StateStatus, reasons: ReadonlyMap<number, string>) => void): () => void;
  /**
   * Resolves with every shard's value (undefined for a shard whose owner has none) once all are
   * live; rejects after `timeoutMs` (default 10 000) naming the shards still waiting and why.
   */
  ready(timeoutMs?: number): Promise<(T | undefined)[]>;
  /** Stops watching every shard (idempotent); iterators end. */
  close(): Promise<void>;
}

/** `client.states.<name>` of a sharded state (`state carts: ... @shard`): one value per shard. */
export interface ShardedStateHandle<T> {
  /** The shard count (`@shards(n)` of the service). */
  readonly shards: number;
  /** The shard of a key (`{ key: [a, b] }` for a tuple): the same hash as `@shard` methods. */
  shardOf(key: unknown): number;
  /** The current value of one shard (one snapshot request to its owner). */
  get(where: ShardSelector, opts?: CallOptions): Promise<T>;
  /** A live, typed replica of one shard; it follows the shard to its next owner. */
  watch(where: ShardSelector): ShardedStateView<T>;
  /** Calls `fn` with the shard's current value and on every change until unwatched. */
  watch(where: ShardSelector, fn: (value: T) => void): Promise<Subscription>;
  /** Live replicas of every shard, watched together (one subscription per shard). */
  watchAll(): ShardedStateSet<T>;
}

declare const SHARDED: unique symbol;
/** Marks a sharded state's value type in a generated `XStates` map (`ctx.states.x` is then a `ShardedStatePublisher`). */
export interface Sharded<T> {
  readonly [SHARDED]: T;
}

/**
 * The untyped caller the runtime hands to `createClient`; generated clients narrow its
 * results to the IDL types (the runtime has already decoded them with the descriptor's schemas).
 */
export interface ClientCaller {
  call(method: string, input: unknown, opts?: CallOptions): Promise<unknown>;
  push(method: string, input: unknown, opts?: CallOptions): Promise<void>;
  event(name: string): EventStream<unknown>;
  state(name: string): StateHandle<unknown> | ShardedStateHandle<unknown>;
}

/**
 * What a generated module exports per service. `H` is the handler interface, `C` the client.
 * The `__types` member exists only in the type system.
 */
export interface ServiceDefinition<H, C> {
  readonly descriptor: ServiceDescriptor;
  readonly createClient: (caller: ClientCaller) => C;
  /** Phantom: never present at run time. */
  readonly __types?: { readonly handler: H; readonly client: C };
}

/** The handler type of a definition. */
export type HandlerOf<D> = D extends ServiceDefinition<infer H, unknown> ? H : never;
/** The client type of a definition. */
export type ClientOf<D> = D extends ServiceDefinition<unknown, infer C> ? C : never;

/** Identity helper generated code uses so definitions keep their literal types. */
/** Whether `service` declares any member of `kind` (brokers declare push queues and streams only then). */
export function hasMethods(service: ServiceDescriptor, kind: MethodDescriptor["kind"]): boolean {
  for (const m of Object.values(service.methods)) if (m.kind === kind) return true;
  return false;
}

export function defineService<H, C>(def: {
  descriptor: ServiceDescriptor;
  createClient: (caller: ClientCaller) => C;
}): ServiceDefinition<H, C> {
  return def;
}
