/**
 * The call context: the object handlers receive, and what AsyncLocalStorage carries so that
 * calls made inside a handler inherit its deadline and trace. Everything that costs something
 * (the trace id parse, the span id, the child logger, the AbortSignal) is made on first use,
 * so a call whose handler never looks at them does not pay for them.
 */
import type { StatePublisher } from "../states/owner.js";
import type { StatePublishers } from "../states/publishers.js";
import { AsyncLocalStorage, AsyncResource } from "node:async_hooks";
import type { Logger } from "pino";
import type { CallContext, Emitter } from "./context.js";
import type { ServiceDefinition } from "../descriptor.js";
import type { Guarded, HoldWindow } from "./ownership.js";
import { Code, FanError } from "../errors.js";
import type { EnvelopeHeaders } from "../transports/transport.js";
import { type CallSignal, follow, signalOf } from "../transports/abort.js";
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent } from "../ids.js";

/** What a served instance shares with every call context it makes. */
export interface InstanceScope {
  readonly service: string;
  readonly instanceId: string;
  /** The instance logger (bound to service and instance id). */
  readonly log: Logger;
  /** The current validated config (replaced on config updates). */
  readonly config: () => unknown;
  /** The service's own events as `ctx.emit` (built on first use, then shared by every call). */
  readonly emitter?: () => Emitter;
  /** A client of another service (cached per definition). */
  readonly client: <C>(def: ServiceDefinition<unknown, C>) => C;
  /** Fires when the app stops hard (grace period over). */
  readonly hardStop: AbortSignal;
  /** The leader's fencing token, for `@unique` services. */
  readonly fencingToken?: () => string | undefined;
  /**
   * Sharded services: a redirect when this instance does not own the call's shard, a hold (a
   * promise: run the call again once it settles without an error, unless `signal` aborted)
   * while the `onShards` that gained the shard has not resolved (`call/ownership.ts`), counted
   * in `window`, the share of the transport's window held work may take (refused past it); the
   * shard number when the call is admitted (`shardSettled` is then called when it settles).
   */
  readonly shardGuard?: (
    paths: readonly (readonly string[])[],
    input: unknown,
    deadline: number,
    signal?: CallSignal,
    window?: HoldWindow,
  ) => Guarded;
  /** Sharded services: a call or push the guard admitted (it answered its shard) has settled. */
  readonly shardSettled?: (shard: number) => void;
  /** Sharded services: the shards this instance owns now. */
  readonly shards?: () => readonly number[];
  /** Test apps: unexpected exceptions reach in-process callers as `cause` (`reveal.ts`). */
  readonly revealErrors?: boolean;
  /** The owner of one of this service's states (states/owner.ts). */
  readonly state: (name: string) => StatePublisher<unknown>;
  /** `ctx.states`: one owner per declared state (made once per instance). */
  readonly states?: () => StatePublishers<Record<string, unknown>>;
}

/** The trace and deadline an outgoing call inherits from the current context. */
export interface Inherited {
  readonly deadline: number;
  /** The trace id and span id of the call being served (child calls' parent). */
  readonly traceId: string;
  readonly spanId: string;
  /** The traceparent for a child call (this span as its parent). */
  childTraceparent(): string;
}

const storage = new AsyncLocalStorage<Inherited>();
const NO_STATES = Object.freeze({});

/** The context of the call being served, if any (outgoing calls inherit it). */
export function currentContext(): Inherited | undefined {
  return storage.getStore();
}

/** Runs `fn` outside any call context (background work that must not inherit a caller's deadline). */
export function outsideContext<R>(fn: () => R): R {
  return storage.exit(fn);
}

/** Runs `fn(...args)` with `ctx` as the current context. */
export function runInContext<A extends unknown[], R>(ctx: Inherited, fn: (...args: A) => R, ...args: A): R {
  return storage.run(ctx, fn, ...args);
}

/**
 * True when AsyncLocalStorage keeps its stores in `AsyncContextFrame`s (Node 24 by default,
 * Node 22 with `--experimental-async-context-frame`), false when it rides on async hooks
 * (Node 20, and `--no-async-context-frame`): the hooks-based class has `_propagate`.
 */
const FRAMES = !("_propagate" in AsyncLocalStorage.prototype);

/** Whether call contexts ride on context frames here (no async hooks): see `FRAMES`. */
export function contextFrames(): boolean {
  return FRAMES;
}

/** A handler method, called with its `this`. */
type Method = (this: object, input: unknown, ctx: CallCtx) => unknown;

/**
 * `runInContext` of a served call's handler: `fn.call(handler, input, ctx)` with `ctx` as the
 * current context.
 *
 * With frames, `storage.run` makes two: one copying the current frame to add `ctx`, and one
 * copying that again to put the previous store back (`enterWith(prior)`), a `Map` copy of
 * ~100 ns (docs/performance.md, "In-process calls on Node 24"). An `AsyncResource` made here
 * holds the current frame itself, and `runInAsyncScope` sets exactly that frame back when `fn`
 * returns or throws: one frame per call, and the caller's frame restored as it was (every other
 * AsyncLocalStorage's store in it too). With async hooks, `storage.run` is the cheaper.
 */
export function runHandler(ctx: CallCtx, handler: object, fn: Method, input: unknown): unknown {
  if (!FRAMES) return storage.run(ctx, callMethod, handler, fn, input, ctx);
  return new AsyncResource("fan.call").runInAsyncScope(enterAndCall, handler, ctx, fn, input);
}

function callMethod(handler: object, fn: Method, input: unknown, ctx: CallCtx): unknown {
  return fn.call(handler, input, ctx);
}

function enterAndCall(this: object, ctx: CallCtx, fn: Method, input: unknown): unknown {
  storage.enterWith(ctx);
  return fn.call(this, input, ctx);
}

/** The traceparent of a call made at the edge (no current context): a new trace. */
export function edgeTraceparent(): string {
  return formatTraceparent(newTraceId(), newSpanId());
}

/** The CallContext of one served call. */
export class CallCtx implements CallContext, Inherited {
  readonly #scope: InstanceScope;
  readonly method: string;
  readonly headers: Readonly<EnvelopeHeaders>;
  readonly deadline: number;
  readonly attempt: number;
  /** Who is calling, as a server interceptor or `@auth` established it. */
  principal: unknown = undefined;
  readonly #callerSignal: CallSignal | undefined;
  #traceId: string | undefined;
  #spanId: string | undefined;
  #log: Logger | undefined;
  #signal: AbortSignal | undefined;
  /** Stops the signal following its sources (set once it is made). */
  #unfollow: (() => void) | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #settled = false;

  constructor(
    scope: InstanceScope,
    method: string,
    headers: Readonly<EnvelopeHeaders>,
    deadline: number,
    callerSignal: CallSignal | undefined,
    attempt: number,
  ) {
    this.#scope = scope;
    this.method = method;
    this.headers = headers;
    this.deadline = deadline;
    this.#callerSignal = callerSignal;
    this.attempt = attempt;
    const token = scope.fencingToken;
    if (token !== undefined) Object.defineProperty(this, "fencingToken", { get: token, enumerable: true });
  }

  get service(): string {
    return this.#scope.service;
  }

  get instanceId(): string {
    return this.#scope.instanceId;
  }

  get config(): never {
    return this.#scope.config() as never;
  }

  /** The shards this instance owns (empty for services without `@shard` methods). */
  get shards(): readonly number[] {
    return this.#scope.shards?.() ?? [];
  }

  /** Present only on calls to `@unique` services (set up in the constructor). */
  declare readonly fencingToken?: string;

  /**
   * The caller's trace id, or a new one when the call came without (or with a bad) traceparent;
   * a new one is written back into the headers, so an in-process caller (whose headers these
   * are) reports the same trace id on its error.
   */
  get traceId(): string {
    if (this.#traceId === undefined) {
      const given = parseTraceparent(this.headers.traceparent)?.traceId;
      this.#traceId = given ?? newTraceId();
      if (given === undefined && !Object.isFrozen(this.headers))
        (this.headers as EnvelopeHeaders).traceparent = formatTraceparent(this.#traceId, newSpanId());
    }
    return this.#traceId;
  }

  /** Adopts the ids of this call's server span (an OpenTelemetry SDK made it). */
  useSpan(traceId: string, spanId: string): void {
    this.#traceId = traceId;
    this.#spanId = spanId;
  }

  /** This call's own span id. */
  get spanId(): string {
    if (this.#spanId === undefined) this.#spanId = newSpanId();
    return this.#spanId;
  }

  get log(): Logger {
    if (this.#log === undefined)
      this.#log = this.#scope.log.child({ method: this.method, traceId: this.traceId, spanId: this.spanId });
    return this.#log;
  }

  get signal(): AbortSignal {
    if (this.#signal === undefined) this.#signal = this.#makeSignal();
    return this.#signal;
  }

  /** True once the signal exists and has fired (without creating it). */
  get aborted(): boolean {
    return this.#signal?.aborted ?? this.#callerSignal?.aborted ?? false;
  }

  get emit(): Emitter {
    const emitter = this.#scope.emitter;
    if (emitter === undefined)
      throw new FanError(Code.FAILED_PRECONDITION, `${this.service}: this context cannot emit events`);
    return emitter();
  }

  state<T = unknown>(name: string): StatePublisher<T> {
    return this.#scope.state(name) as StatePublisher<T>;
  }

  get states(): StatePublishers<Record<string, never>> {
    return (this.#scope.states?.() ?? NO_STATES) as never;
  }

  client<C>(def: ServiceDefinition<unknown, C>): C {
    return this.#scope.client(def);
  }

  childTraceparent(): string {
    return formatTraceparent(this.traceId, this.spanId);
  }

  /**
   * The call (or the push or event delivery) has settled: its signal stops listening to the
   * App's hard stop, the caller's signal and the deadline. Those can outlive the call by far
   * (the hard stop lives as long as the App, a gateway connection's signal serves every call
   * on it), so a settled call's signal no longer fires, and leaves nothing on them. Internal.
   */
  release(): void {
    this.#settled = true;
    if (this.#unfollow !== undefined) {
      this.#unfollow();
      this.#unfollow = undefined;
    }
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /**
   * A signal of its own, aborted by the first of its sources (aborted already if one is), with
   * listeners `release` removes: not `AbortSignal.any`, which keeps the composite on each source
   * until that source aborts (see `follow`).
   */
  #makeSignal(): AbortSignal {
    const ac = new AbortController();
    const hardStop = this.#scope.hardStop;
    this.#unfollow = follow(
      ac,
      this.#callerSignal === undefined ? [hardStop] : [hardStop, signalOf(this.#callerSignal)],
    );
    if (!ac.signal.aborted && Number.isFinite(this.deadline) && !this.#settled) {
      this.#timer = setTimeout(
        () => ac.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError")),
        Math.max(0, this.deadline - Date.now()),
      );
      this.#timer.unref?.();
    }
    if (this.#settled) this.release();
    return ac.signal;
  }
}
