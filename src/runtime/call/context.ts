/**
 * The call context handed to every handler method, and the lifecycle hooks a handler class
 * may implement. The runtime carries the current context in AsyncLocalStorage so outgoing
 * calls made inside a handler inherit its deadline and trace without passing anything.
 */
import type { Logger } from "pino";
import type { ServiceDefinition } from "../descriptor.js";
import type { StatePublisher } from "../states/owner.js";

/** Everything a handler needs about the call it is serving. */
export interface CallContext<Config = unknown> {
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
  /** For `@unique` services: the leader's fencing token (its election revision). */
  readonly fencingToken?: string;
  /** A client of another service that inherits this call's deadline and trace. */
  client<C>(def: ServiceDefinition<unknown, C>): C;
  /** The owner of this service's state `name` (`set`, `patch`): docs/states.md. */
  state<T = unknown>(name: string): StatePublisher<T>;
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

/** What lifecycle hooks receive. */
export interface LifecycleContext<Config = unknown> {
  readonly service: string;
  readonly instanceId: string;
  readonly log: Logger;
  readonly config: Config;
  /** Aborted when the app begins to stop. */
  readonly signal: AbortSignal;
  client<C>(def: ServiceDefinition<unknown, C>): C;
  /** The owner of this service's state `name` (`set`, `patch`): docs/states.md. */
  state<T = unknown>(name: string): StatePublisher<T>;
}
