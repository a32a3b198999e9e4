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

export type TransportName = "http" | "amqp" | "redis" | "zmq" | "local";

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
  readonly route?: { readonly path: string; readonly params: readonly string[] };
  /** Shard key paths: `[["storeId"], ["wine", "id"]]`. */
  readonly shard?: readonly (readonly string[])[];
  /** Fully qualified names of the IDL errors this method may throw. */
  readonly throws: readonly string[];
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

/** `client.states.<name>`. */
export interface StateHandle<T> {
  /** Current value (fetches a snapshot if not watching). */
  get(opts?: CallOptions): Promise<T>;
  /** Calls `fn` with the current value and on every change until unwatched. */
  watch(fn: (value: T) => void): Promise<Subscription>;
}

/**
 * The untyped caller the runtime hands to `createClient`; generated clients narrow its
 * results to the IDL types (the runtime has already decoded them with the descriptor's schemas).
 */
export interface ClientCaller {
  call(method: string, input: unknown, opts?: CallOptions): Promise<unknown>;
  push(method: string, input: unknown, opts?: CallOptions): Promise<void>;
  event(name: string): EventStream<unknown>;
  state(name: string): StateHandle<unknown>;
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
export function defineService<H, C>(def: {
  descriptor: ServiceDescriptor;
  createClient: (caller: ClientCaller) => C;
}): ServiceDefinition<H, C> {
  return def;
}
