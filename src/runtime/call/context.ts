/**
 * The call context handed to every handler method, and the lifecycle hooks a handler class
 * may implement. The runtime carries the current context in AsyncLocalStorage so outgoing
 * calls made inside a handler inherit its deadline and trace without passing anything.
 */
import type { Logger } from "pino";
import type { ServiceDefinition } from "../descriptor.js";
import type { StatePublisher } from "../states/owner.js";
import type { StatePublishers } from "../states/publishers.js";

/**
 * The events of a service whose generated event map is not known: any name, any payload.
 * (`any`, not `unknown`, so a context typed with a service's `XEvents` is still assignable to it.)
 */
// biome-ignore lint/suspicious/noExplicitAny: see above
export type AnyEvents = Record<string, any>;

/**
 * The states of a service whose generated state map is not known: any name, any value type.
 */
// biome-ignore lint/suspicious/noExplicitAny: as AnyEvents
export type AnyStates = Record<string, any>;

/**
 * `ctx.emit`: one method per event of the serving service, typed by its generated `XEvents`
 * map; `ctx.emit.wineChanged({ wine })` publishes like `app.publisher(Def).emit("wineChanged",
 * { wine })` and resolves once the transport has taken the event. The event carries the trace of
 * the call that emits it.
 */
export type Emitter<Events = AnyEvents> = {
  readonly [K in keyof Events & string]: (
    payload: Events[K],
    headers?: Readonly<Record<string, string>>,
  ) => Promise<void>;
};

/**
 * Everything a handler needs about the call it is serving. Generated handler interfaces pass
 * the service's config and event map (`CallContext<XConfig, XEvents>`), and its state map
 * when it declares states (`CallContext<XConfig, XEvents, XStates>`).
 */
export interface CallContext<Config = unknown, Events = AnyEvents, States = AnyStates> {
  /** Fully qualified service name. */
  readonly service: string;
  /** Method, push or subscription handler name. */
  readonly method: string;
  /** This instance's id (unique per served service per app). */
  readonly instanceId: string;
  /** W3C trace id (32 hex) and this call's span id (16 hex). */
  readonly traceId: string;
  readonly spanId: string;
  /** Absolute deadline, epoch ms (`Infinity` for pushes and events without one). */
  readonly deadline: number;
  /** Fires at the deadline, when the caller cancels, or when the app stops hard. */
  readonly signal: AbortSignal;
  /** Incoming envelope headers (traceparent, custom headers...). */
  readonly headers: Readonly<Record<string, string | number | undefined>>;
  /** A pino child logger whose records carry service, instance, method and trace id. */
  readonly log: Logger;
  /** The service's typed config, validated at start and on every update. */
  readonly config: Config;
  /** Delivery attempt for pushes and events (1 on first delivery). */
  readonly attempt: number;
  /** Who is calling, as a server interceptor or `@auth` verifier established it (undefined when none ran). */
  readonly principal: unknown;
  /** For `@unique` services: the leader's fencing token (its election revision). */
  readonly fencingToken?: string;
  /** The shards this instance owns now (sharded services; see `ShardHooks.onShards`). */
  readonly shards?: readonly number[];
  /** Publishes the serving service's own events, typed from the IDL (see `Emitter`). */
  readonly emit: Emitter<Events>;
  /** A client of another service that inherits this call's deadline and trace. */
  client<C>(def: ServiceDefinition<unknown, C>): C;
  /** The owner of this service's state `name` (`set`, `patch`): docs/states.md. */
  state<T = unknown>(name: string): StatePublisher<T>;
  /** The owners of this service's states, typed from the IDL: `ctx.states.inventory.patch({ w1: wine })`. */
  readonly states: StatePublishers<States>;
}

/**
 * Optional lifecycle hooks on a handler object, called in this order by `app.start()`:
 * `preStart`, `start`, `postStart`; and by `app.stop()`: `stop`, `postStop`.
 */
export interface ServiceHooks {
  preStart?(ctx: LifecycleContext): void | Promise<void>;
  start?(ctx: LifecycleContext): void | Promise<void>;
  postStart?(ctx: LifecycleContext): void | Promise<void>;
  stop?(ctx: LifecycleContext): void | Promise<void>;
  postStop?(ctx: LifecycleContext): void | Promise<void>;
}

/**
 * An optional hook of a sharded service's handler (or of any service served with pinned
 * `shards`; every generated handler interface has it): called with the shards this instance owns
 * once it has registered, and again every time they change (an instance joined or left), so it
 * can load the data of shards it gained and drop the data of shards it lost.
 */
export interface ShardHooks {
  onShards?(change: ShardChange, ctx: LifecycleContext): void | Promise<void>;
}

/** What `onShards` receives. */
export interface ShardChange {
  readonly owned: readonly number[];
  readonly gained: readonly number[];
  readonly lost: readonly number[];
}

/** What lifecycle hooks receive. */
export interface LifecycleContext<Config = unknown, Events = AnyEvents, States = AnyStates> {
  readonly service: string;
  readonly instanceId: string;
  readonly log: Logger;
  readonly config: Config;
  /** Aborted when the app begins to stop. */
  readonly signal: AbortSignal;
  /** Publishes the service's own events (as `CallContext.emit`). */
  readonly emit: Emitter<Events>;
  client<C>(def: ServiceDefinition<unknown, C>): C;
  /** The owner of this service's state `name` (`set`, `patch`): docs/states.md. */
  state<T = unknown>(name: string): StatePublisher<T>;
  /** The owners of this service's states (as `CallContext.states`). */
  readonly states: StatePublishers<States>;
}
