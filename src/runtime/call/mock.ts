/**
 * Mocks of services for users' tests: every method records its calls and can be given a value,
 * an implementation or a typed error. A mock is a handler (serve it) and a client (call it).
 *
 * The mock client goes through the wire forms in-process: its input is encoded and decoded
 * with the method's schema (bad input rejects with INVALID_ARGUMENT before the mock runs; the
 * mock sees a fresh copy with defaults applied), and so is the configured reply (one that does
 * not fit the IDL rejects with INTERNAL). The handler delegates straight to the method mocks;
 * the App that serves it does the checking.
 */
import { codec, type Codec } from "../codec/index.js";
import { inRequest } from "../codec/fail.js";
import type { CallContext } from "./context.js";
import type {
  ClientCaller,
  EventStream,
  ServiceDefinition,
  ShardSelector,
  ShardedStateHandle,
  StateHandle,
  Subscription,
} from "../descriptor.js";
import { calledService, Code, FanError } from "../errors.js";
import { declares, idlErrorName } from "../codec/error-wire.js";
import type { ServiceDescriptor } from "../descriptor.js";
import type { Schema } from "../codec/schema.js";
import {
  type MergePatch,
  ShardedState,
  type StatePublisher,
  StateOwners,
  stateEvent,
  stateHandle,
  type WatchHost,
} from "../states/index.js";
import { silentLogger } from "../telemetry/logging.js";

/**
 * One recorded call: `{ req }`, plus `ctx` when the call came through a served handler. `ctx`
 * is not enumerable, so `expect(m.get.calls).toEqual([{ req: {...} }])` compares the requests
 * only, whichever way the call came; `m.get.calls[0]?.ctx` still reads it.
 */
export interface RecordedCall<Req, Ctx = CallContext> {
  readonly req: Req;
  /** The served call's context (undefined for a call through `mock.client`); not enumerable. */
  readonly ctx?: Ctx;
}

/**
 * The mock of one method; configuration methods return the service mock for chaining. `Ctx`:
 * the context its handler gets (generated mocks pass `CallContext<XConfig, XEvents, XStates>`).
 */
export interface MethodMock<Req, Res, Parent, Ctx = CallContext> {
  /** Every call so far, oldest first (`reset()` forgets them). */
  readonly calls: readonly RecordedCall<Req, Ctx>[];
  /** Every call resolves with `value` (checked against the IDL when the call replies). */
  returns(value: Res): Parent;
  /** Every call runs `fn`; `ctx` is the served call's context, undefined through `mock.client`. */
  implements(fn: (req: Req, ctx?: Ctx) => Res | Promise<Res>): Parent;
  /**
   * Every call rejects with `error`: an IDL error the method declares keeps its class and fields,
   * a FanError its code and message; anything else (an undeclared IDL error, a plain Error)
   * reaches a caller as INTERNAL, through an App or `mock.client`, as a handler's would.
   */
  throws(error: Error): Parent;
  /** Forget calls and configuration. */
  reset(): Parent;
}

/**
 * The value of each state of the client type `C` by name (from `client.states`, the
 * generated `StateHandle<T>`/`ShardedStateHandle<T>`): what `setState` takes. Any name and
 * value when `C` has no typed states.
 */
export type MockStates<C> = C extends { readonly states: infer S }
  ? { [K in keyof S]: StateValue<S[K]> }
  : Record<string, unknown>;

type StateValue<H> = [H] extends [never]
  ? never
  : H extends ShardedStateHandle<infer T>
    ? T
    : H extends StateHandle<infer T>
      ? T
      : never;

/**
 * What every generated `mockX()` returns besides its per-method mocks. `E`: the service's event
 * payloads by name (the generated `XEvents`; `Record<never, never>` for a service without
 * events), which type `emit`.
 */
export interface ServiceMock<H, C, E extends object = Record<string, unknown>> {
  readonly definition: ServiceDefinition<H, C>;
  /** A handler object that delegates to the method mocks (serve it with an App or the test kit). */
  readonly handler: H;
  /** A client that calls the method mocks directly, in-process. */
  readonly client: C;
  /**
   * Publishes event `name` (checked against the IDL) to the mock client's subscribers, and, once a
   * test App serves the mock (`.mock(m)`), through that App to every service subscribing to it;
   * resolves when the mock client's subscribers have run and the App has published it. An
   * event the service does not declare, or a payload of the wrong type, is a compile error.
   */
  emit<N extends keyof E & string>(name: N, payload: E[N]): Promise<void>;
  /**
   * Sets state `name` (checked against the IDL) for `client.states.<name>.get()`, and tells its
   * watchers; a sharded state's shard is named: `setState("carts", v, { shard: 3 })` or `{ key }`.
   */
  setState<N extends keyof MockStates<C> & string>(name: N, value: MockStates<C>[N], where?: ShardSelector): void;
  /**
   * `@delta` states: applies a merge patch (typed by `MergePatch`, checked against the IDL) and
   * tells the watchers (`where` as for `setState`).
   */
  patchState<N extends keyof MockStates<C> & string>(
    name: N,
    patch: MergePatch<MockStates<C>[N]>,
    where?: ShardSelector,
  ): void;
  /** The mock of a method or subscription handler by name (also when its name collides with a member above). */
  method(name: string): MethodMock<unknown, unknown, ServiceMock<H, C, E>>;
}

type Behaviour =
  | { readonly kind: "none" }
  | { readonly kind: "returns"; readonly value: unknown }
  | { readonly kind: "implements"; readonly fn: (req: unknown, ctx?: CallContext) => unknown }
  | { readonly kind: "throws"; readonly error: Error };

interface Entry<P> {
  readonly mock: MethodMock<unknown, unknown, P>;
  invoke(req: unknown, ctx: CallContext | undefined): Promise<unknown>;
}

/** Members of `ServiceMock` that a method mock never replaces. */
const CORE = new Set(["definition", "handler", "client"]);

/** Builds the mock of a service definition. */
export function createMock<H, C, E extends object = Record<string, unknown>>(
  def: ServiceDefinition<H, C>,
): ServiceMock<H, C, E> {
  const d = def.descriptor;
  const entries = new Map<string, Entry<ServiceMock<H, C, E>>>();
  const events = eventHub(d.name, d.events);
  const states = stateStore(d);
  const mock = {
    definition: def,
    emit: (name: string, payload: unknown) => events.emit(name, payload),
    setState: (name: string, value: unknown, where?: ShardSelector) => states.set(name, value, where),
    patchState: (name: string, patch: unknown, where?: ShardSelector) => states.patch(name, patch, where),
    method: (name: string) => {
      const e = entries.get(name);
      if (e === undefined) throw new FanError(Code.NOT_FOUND, `mock ${d.name} has no method ${name}`);
      return e.mock;
    },
  } as Record<string, unknown>;
  const self = (): ServiceMock<H, C, E> => mock as unknown as ServiceMock<H, C, E>;
  const handler: Record<string, unknown> = {};
  const names = [...Object.keys(d.methods), ...d.subscriptions.map((s) => s.handler)];
  for (const name of names) {
    const entry = methodMock(`${d.name}.${name}`, self);
    entries.set(name, entry);
    own(handler, name, (req: unknown, ctx: CallContext) => entry.invoke(req, ctx));
    if (!CORE.has(name)) own(mock, name, entry.mock);
  }
  mock.handler = handler;
  mock.client = def.createClient(mockCaller(def, entries, events, states));
  forwards.set(mock, (fn) => states.forward(fn));
  eventForwards.set(mock, (fn) => events.forward(fn));
  return self();
}

const forwards = new WeakMap<object, (fn: StateForward) => void>();
const eventForwards = new WeakMap<object, (fn: EventForward) => () => void>();

/** Where a served mock's events go as well: the App that serves it publishes them. */
export type EventForward = (name: string, payload: unknown) => Promise<void>;

/** Publishes a mock's events through `fn` as well (the test kit's `.mock(m)`); returns its removal. */
export function forwardMockEvents(m: ServiceMock<unknown, unknown>, fn: EventForward): () => void {
  return eventForwards.get(m)?.(fn) ?? (() => undefined);
}

/** Sends a mock's state updates to `fn` as well (the test kit's `.mock(m)`), starting with the current values. */
export function forwardMockStates(m: ServiceMock<unknown, unknown>, fn: StateForward): void {
  forwards.get(m)?.(fn);
}

/** Defines an own, enumerable property, so that no name (`__proto__` included) reaches a setter. */
function own(o: Record<string, unknown>, name: string, value: unknown): void {
  Object.defineProperty(o, name, { value, enumerable: true, writable: true, configurable: true });
}

function methodMock<P>(label: string, parent: () => P): Entry<P> {
  let calls: RecordedCall<unknown>[] = [];
  let behaviour: Behaviour = { kind: "none" };
  const set = (b: Behaviour): P => {
    behaviour = b;
    return parent();
  };
  const mock: MethodMock<unknown, unknown, P> = {
    get calls() {
      return calls;
    },
    returns: (value) => set({ kind: "returns", value }),
    implements: (fn) => set({ kind: "implements", fn }),
    throws: (error) => set({ kind: "throws", error }),
    reset: () => {
      calls = [];
      return set({ kind: "none" });
    },
  };
  const invoke = async (req: unknown, ctx: CallContext | undefined): Promise<unknown> => {
    const call: RecordedCall<unknown> = { req };
    if (ctx !== undefined) Object.defineProperty(call, "ctx", { value: ctx, enumerable: false });
    calls.push(call);
    const b = behaviour;
    switch (b.kind) {
      case "returns":
        return b.value;
      case "implements":
        return await b.fn(req, ctx);
      case "throws":
        throw b.error;
      default:
        throw new FanError(
          Code.UNIMPLEMENTED,
          `mock ${label} has no behaviour: call .returns(), .implements() or .throws()`,
        );
    }
  };
  return { mock, invoke };
}

/**
 * INTERNAL for an IDL error `method` does not declare (another method's, another service's), as
 * an App's caller would get; undefined for any other error.
 */
function undeclared(d: ServiceDescriptor, method: string, e: unknown): FanError | undefined {
  const name = FanError.is(e) ? idlErrorName(e) : undefined;
  if (name === undefined || calledService(e as FanError) !== undefined || declares(d, method, name)) return undefined;
  const message = `mock ${d.name}.${method} threw ${name}, which ${d.name}.${method} does not declare`;
  return new FanError(Code.INTERNAL, message, { cause: e });
}

/** Encodes then decodes `value`: checks it against the IDL and gives the receiver its own copy. */
function roundTrip(c: Codec<unknown>, value: unknown, path?: string): unknown {
  return c.decode(c.encode(value, path), path);
}

function mockCaller<P>(
  def: ServiceDefinition<unknown, unknown>,
  entries: ReadonlyMap<string, Entry<P>>,
  events: EventHub,
  states: StateStore,
): ClientCaller {
  const d = def.descriptor;
  const codecs = new Map<string, { input: Codec<unknown>; output: Codec<unknown> }>();
  const plan = (method: string) => {
    const md = Object.hasOwn(d.methods, method) ? d.methods[method] : undefined;
    const entry = entries.get(method);
    if (md === undefined || entry === undefined)
      throw new FanError(Code.NOT_FOUND, `mock ${d.name} has no method ${method}`);
    let c = codecs.get(method);
    if (c === undefined) {
      c = { input: codec(md.input), output: codec(md.output) };
      codecs.set(method, c);
    }
    return { entry, ...c };
  };
  const call = async (method: string, input: unknown): Promise<unknown> => {
    const p = plan(method);
    // A request whose parameters are all optional or defaulted may be left out by the caller.
    let req: unknown;
    try {
      req = roundTrip(p.input, input ?? {});
    } catch (e) {
      throw inRequest(e, `${d.name}.${method}`);
    }
    let result: unknown;
    try {
      result = await p.entry.invoke(req, undefined);
    } catch (e) {
      throw undeclared(d, method, e) ?? FanError.from(e);
    }
    try {
      return roundTrip(p.output, result, "reply");
    } catch (e) {
      if (!FanError.is(e) || e.code !== Code.INVALID_ARGUMENT) throw e;
      const message = `mock ${d.name}.${method} replied with a value that does not fit the IDL: ${e.message}`;
      throw new FanError(Code.INTERNAL, message, { cause: e, details: e.details });
    }
  };
  return {
    call,
    push: async (method, input) => {
      await call(method, input);
    },
    event: (name) => events.stream(name),
    state: (name) => states.handle(name),
  };
}

interface EventHub {
  stream(name: string): EventStream<unknown>;
  emit(name: string, payload: unknown): Promise<void>;
  /** Also publishes every event through `fn` (the App that serves the mock) until the returned removal. */
  forward(fn: EventForward): () => void;
}

function eventHub(service: string, declared: Readonly<Record<string, { readonly payload: Schema }>>): EventHub {
  const listeners = new Map<string, Set<{ fn: (e: unknown) => void | Promise<void> }>>();
  const forwards: EventForward[] = [];
  const codecs = new Map<string, Codec<unknown>>();
  const find = (name: string): { set: Set<{ fn: (e: unknown) => void | Promise<void> }>; c: Codec<unknown> } => {
    const ev = Object.hasOwn(declared, name) ? declared[name] : undefined;
    if (ev === undefined) throw new FanError(Code.NOT_FOUND, `mock ${service} has no event ${name}`);
    const set = listeners.get(name) ?? new Set();
    listeners.set(name, set);
    const c = codecs.get(name) ?? codec(ev.payload);
    codecs.set(name, c);
    return { set, c };
  };
  return {
    stream: (name) => ({
      subscribe: async (fn): Promise<Subscription> => {
        const { set } = find(name);
        const sub = { fn };
        set.add(sub);
        return { unsubscribe: async () => void set.delete(sub) };
      },
    }),
    forward: (fn) => {
      forwards.push(fn);
      return () => {
        const i = forwards.indexOf(fn);
        if (i >= 0) forwards.splice(i, 1);
      };
    },
    emit: async (name, payload) => {
      const { set, c } = find(name);
      const wire = c.encode(payload, name);
      const failures: unknown[] = [];
      for (const f of forwards) {
        try {
          await f(name, c.decode(wire));
        } catch (e) {
          failures.push(e);
        }
      }
      for (const sub of [...set]) {
        try {
          await sub.fn(c.decode(wire));
        } catch (e) {
          failures.push(e);
        }
      }
      if (failures.length > 0) throw failures[0];
    },
  };
}

interface StateStore {
  handle(name: string): StateHandle<unknown> | ShardedStateHandle<unknown>;
  set(name: string, value: unknown, where?: ShardSelector): void;
  patch(name: string, patch: unknown, where?: ShardSelector): void;
  /** Also applies every update to `fn` (the App that serves the mock); replays the current values. */
  forward(fn: StateForward): void;
}

/** Where a served mock's state updates go: the owner in the App that serves it (`shard` for a sharded state). */
export type StateForward = (name: string, op: "set" | "patch", value: unknown, shard?: number) => void;

/**
 * The mock's states: a real owner and real watch views over an in-memory event path, so
 * `mock.client.states.x.watch()` behaves as it does against a service.
 */
function stateStore(d: ServiceDescriptor): StateStore {
  const listeners = new Map<string, Set<(payload: unknown) => void>>();
  const forwards: StateForward[] = [];
  const log = silentLogger();
  const owners = new StateOwners({
    cluster: "mock",
    log,
    heartbeatMs: 1000,
    store: undefined,
    serves: () => true,
    publish: async (_s, env) => {
      for (const fn of [...(listeners.get(env.method) ?? [])]) fn(env.payload);
    },
  });
  // The mock owns every shard of its sharded states.
  const all = Array.from({ length: d.shards }, (_, i) => i);
  void owners.bound(d, {
    instanceId: "mock",
    owned: () => all,
    ownerOf: () => "mock",
    onChange: () => () => undefined,
  });
  const host: WatchHost = {
    log,
    heartbeatMs: 1000,
    check: () => undefined,
    opened: () => () => undefined,
    subscribe: async (_s, state, shard, deliver) => {
      const key = stateEvent(state, shard);
      const set = listeners.get(key) ?? new Set();
      listeners.set(key, set);
      set.add(deliver);
      return { close: async () => void set.delete(deliver) };
    },
    snapshot: async (_s, state, shard) => owners.snapshot(d, state, shard),
  };
  /** The owner of `name` (of its shard `where` names, for a sharded state) and that shard. */
  const owner = (name: string, where: ShardSelector | undefined): { o: StatePublisher<unknown>; shard?: number } => {
    if (!Object.hasOwn(d.states, name)) throw new FanError(Code.NOT_FOUND, `mock ${d.name} has no state ${name}`);
    const o = owners.owner(d, name);
    if (!(o instanceof ShardedState)) {
      if (where !== undefined)
        throw new FanError(Code.INVALID_ARGUMENT, `mock ${d.name}: state ${name} is not sharded`);
      return { o };
    }
    if (where === undefined)
      throw new FanError(
        Code.INVALID_ARGUMENT,
        `mock ${d.name}: state ${name} is sharded: name the shard ({ shard } or { key })`,
      );
    const shard = "shard" in where ? where.shard : o.shardOf(...(Array.isArray(where.key) ? where.key : [where.key]));
    return { o: o.shard(shard), shard };
  };
  return {
    handle: (name) => stateHandle(d, name, host),
    set: (name, value, where) => {
      const { o, shard } = owner(name, where);
      o.set(value);
      for (const f of forwards) f(name, "set", value, shard);
    },
    patch: (name, patch, where) => {
      const { o, shard } = owner(name, where);
      o.patch(patch);
      for (const f of forwards) f(name, "patch", patch, shard);
    },
    forward: (fn) => {
      forwards.push(fn);
      for (const name of Object.keys(d.states)) {
        const o = owners.owner(d, name);
        if (o instanceof ShardedState) {
          for (const s of all) {
            const v = o.shard(s).value();
            if (v !== undefined) fn(name, "set", v, s);
          }
          continue;
        }
        const v = o.value();
        if (v !== undefined) fn(name, "set", v);
      }
    },
  };
}
