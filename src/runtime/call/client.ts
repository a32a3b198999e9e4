/**
 * The runtime side of a generated client: a `ClientCaller` per (App, service, options). A call
 * runs the interceptor chain and then `send`: pick an instance from the discovery cache, choose
 * a transport it advertises (in-process when it is served by this App), build the envelope
 * (typed value for the unserialised local transport, encoded JSON otherwise) and turn the
 * reply back into the typed value or the rebuilt error.
 */
import type { Logger } from "pino";
import { codec, type Codec } from "../codec/index.js";
import type {
  CallOptions,
  ClientCaller,
  EventStream,
  MethodDescriptor,
  ServiceDescriptor,
  StateHandle,
  Subscription,
  TransportName,
} from "../descriptor.js";
import type { InstanceSet, StrategyName } from "../discovery/types.js";
import { Code, FanError } from "../errors.js";
import { fromWireError } from "../codec/error-wire.js";
import { currentContext, edgeTraceparent } from "./callctx.js";
import { nextEnvelopeId } from "../ids.js";
import {
  chain,
  deadlineInterceptor,
  traceInterceptor,
  type Interceptor,
  type Next,
  type OutgoingRequest,
} from "./interceptors.js";
import { checkIdempotencyKey, hasDeliveryFlag, notSent, sendFailure } from "./outcome.js";
import { cancelled, deadlineExceeded, PendingCall } from "./pending.js";
import { Route, checkRange, type RouteHost, type Target } from "./route.js";
import { LocalTransport } from "../transports/local/index.js";
import type { Envelope, SendOptions } from "../transports/transport.js";

/** Options of `app.client(def, opts)`. */
export interface ClientOptions {
  /** A semver range the instances must satisfy (default: any). */
  readonly version?: string;
  /** How an instance is picked (default "prefer-local"). */
  readonly strategy?: StrategyName;
  /** Only use this transport. */
  readonly transport?: TransportName;
  /** Interceptors of this client, inside the App's own. */
  readonly interceptors?: readonly Interceptor[];
}

/** What a caller needs from its App. */
export interface ClientHost extends RouteHost {
  readonly log: Logger;
  /** The App's interceptors (inside trace and deadline). */
  readonly interceptors: readonly Interceptor[];
  /** Resolves when discovery and transports are up (undefined once they are). */
  ready(): Promise<void> | undefined;
  watch(service: string): Promise<InstanceSet>;
  /** Counts an in-flight call on an instance; returns its release. */
  acquire(instanceId: string): () => void;
  subscribe(
    service: ServiceDescriptor,
    event: string,
    fn: (event: unknown) => void | Promise<void>,
  ): Promise<Subscription>;
  state(service: ServiceDescriptor, name: string): StateHandle<unknown>;
}

interface MethodPlan {
  readonly desc: MethodDescriptor;
  readonly input: Codec<unknown>;
  readonly output: Codec<unknown> | undefined;
  readonly run: Next;
}

const NEVER: AbortSignal = new AbortController().signal;

/** The `ClientCaller` handed to a generated `createClient`. */
export class Caller implements ClientCaller {
  readonly #host: ClientHost;
  readonly #service: ServiceDescriptor;
  readonly #opts: ClientOptions;
  readonly #plans = new Map<string, MethodPlan>();
  #route: Route | undefined;
  #routing: Promise<Route> | undefined;
  /** Track in-flight calls per instance (only the p2c strategy reads them). */
  readonly #countInFlight: boolean;
  /** Only the built-in interceptors: calls run them inlined, without the chain. */
  readonly #direct: boolean;

  constructor(host: ClientHost, service: ServiceDescriptor, opts: ClientOptions = {}) {
    checkRange(opts.version);
    this.#host = host;
    this.#service = service;
    this.#opts = opts;
    this.#countInFlight = opts.strategy === "p2c";
    const interceptors = [traceInterceptor, deadlineInterceptor, ...host.interceptors, ...(opts.interceptors ?? [])];
    this.#direct = interceptors.length === 2;
    for (const m of Object.values(service.methods)) {
      const plan: MethodPlan = {
        desc: m,
        input: codec(m.input),
        output: m.output.kind === "void" ? undefined : codec(m.output),
        run: chain(interceptors, (req) => this.#send(plan, req)),
      };
      this.#plans.set(m.name, plan);
    }
  }

  call(method: string, input: unknown, opts?: CallOptions): Promise<unknown> {
    const plan = this.#plans.get(method);
    if (plan === undefined || plan.desc.kind !== "rpc") return Promise.reject(this.#noMember("rpc", method));
    if (!this.#direct) return plan.run(this.#request("call", plan, input, opts, {}));
    // No interceptor of the App's or this client's: the trace and deadline interceptors,
    // inlined (the same steps in the same order, with one AsyncLocalStorage read instead of two).
    const req = this.#request("call", plan, input, opts, {});
    const headers = req.headers;
    const parent = currentContext();
    if (headers.traceparent === undefined && parent !== undefined) headers.traceparent = parent.childTraceparent();
    const now = Date.now();
    let deadline = now + (opts?.timeout ?? plan.desc.timeoutMs);
    const explicit = opts?.deadline;
    if (explicit !== undefined && explicit < deadline) deadline = explicit;
    const inherited = parent?.deadline;
    if (inherited !== undefined && inherited < deadline) deadline = inherited;
    req.deadline = deadline;
    headers.deadline = deadline;
    if (now >= deadline) return Promise.reject(deadlineExceeded(req));
    if (req.signal?.aborted === true) return Promise.reject(cancelled(req));
    return this.#send(plan, req, now);
  }

  async push(method: string, input: unknown, opts?: CallOptions): Promise<void> {
    const plan = this.#plans.get(method);
    if (plan === undefined || plan.desc.kind !== "push") throw this.#noMember("push", method);
    const headers = plan.desc.ttlMs === undefined ? {} : { ttl: Date.now() + plan.desc.ttlMs };
    try {
      checkIdempotencyKey(opts?.idempotencyKey);
      await plan.run(this.#request("push", plan, input, opts, headers));
    } catch (e) {
      // Errors from the transport say whether the push may have left; anything else never did.
      throw hasDeliveryFlag(e) ? e : notSent(e);
    }
  }

  event(name: string): EventStream<unknown> {
    return {
      subscribe: (fn) => {
        if (this.#service.events[name] === undefined) return Promise.reject(this.#noMember("event", name));
        return this.#host.subscribe(this.#service, name, fn);
      },
    };
  }

  state(name: string): StateHandle<unknown> {
    return this.#host.state(this.#service, name);
  }

  #request(
    kind: "call" | "push",
    plan: MethodPlan,
    input: unknown,
    opts: CallOptions | undefined,
    headers: OutgoingRequest["headers"],
  ): OutgoingRequest {
    if (opts?.headers !== undefined) Object.assign(headers, opts.headers);
    return { kind, service: this.#service, method: plan.desc, input, opts, deadline: 0, headers, signal: opts?.signal };
  }

  #noMember(kind: string, name: string): FanError {
    return new FanError(Code.UNIMPLEMENTED, `${this.#service.name} has no ${kind} ${name}`);
  }

  /**
   * `now`: the clock reading the deadline was computed from, when no time can have passed
   * since (the inlined path, synchronously): the dispatcher of an in-process call checks the
   * deadline against it instead of reading the clock again (`Date.now()` costs ~35 ns here).
   */
  #send(plan: MethodPlan, req: OutgoingRequest, now?: number): Promise<unknown> {
    const route = this.#route;
    if (route === undefined) return this.#routeReady().then(() => this.#send(plan, req));
    let target: Target;
    try {
      const shardKey = plan.desc.shard === undefined ? undefined : shardKeyOf(req.input, plan.desc.shard);
      if (shardKey !== undefined) req.headers.shard = shardKey;
      target = route.pick(shardKey, req.opts?.transport);
    } catch (e) {
      return Promise.reject(e);
    }
    const release = this.#countInFlight ? this.#host.acquire(target.info.instanceId) : undefined;
    const transport = target.transport;
    if (req.kind === "call" && target.values && transport instanceof LocalTransport) {
      // In-process, unserialised: no envelope; the dispatcher reports straight to the pending call.
      const promise = new Promise(capture);
      const resolve = captured.resolve;
      const reject = captured.reject;
      const pending = new PendingCall(
        req,
        release === undefined ? resolve : settled(release, resolve),
        release === undefined ? reject : settled(release, reject),
      );
      try {
        transport.callLocal(target.endpoint, this.#service, plan.desc.name, req.input, req.headers, req.signal, pending, now);
      } catch (e) {
        pending.fail(e);
      }
      return promise;
    }
    let env: Envelope;
    try {
      env = this.#envelope(plan, req, target.values);
    } catch (e) {
      if (release !== undefined) release();
      return Promise.reject(e);
    }
    // The shared executor, as on the local path: no executor closure (and context) per call.
    const promise = new Promise(capture);
    const resolve = captured.resolve;
    const reject = captured.reject;
    const pending = new PendingCall(
      req,
      release === undefined ? resolve : settled(release, resolve),
      release === undefined ? reject : settled(release, reject),
    );
    let sent: Promise<Envelope | undefined>;
    try {
      const sendOpts: SendOptions = { signal: req.signal ?? NEVER, deadline: req.deadline };
      sent =
        req.kind === "push"
          ? target.transport.push(target.endpoint, env, sendOpts).then(() => undefined)
          : target.transport.call(target.endpoint, env, sendOpts);
    } catch (e) {
      pending.fail(e);
      return promise;
    }
    sent.then(
      (reply) => {
        // A reply after the deadline never replaces DEADLINE_EXCEEDED (the wheel fires up to a
        // few ms late); a push confirmed late was still delivered, so it keeps its outcome.
        if (req.kind === "call" && Date.now() >= req.deadline) return pending.expire();
        try {
          pending.ok(reply === undefined ? undefined : this.#unwrap(plan, reply, target.values));
        } catch (e) {
          pending.fail(e);
        }
      },
      (e: unknown) => pending.fail(sendFailure(req.kind, e, req.deadline, `${this.#service.name}.${plan.desc.name}`)),
    );
    return promise;
  }

  #envelope(plan: MethodPlan, req: OutgoingRequest, values: boolean): Envelope {
    if (!values && req.headers.traceparent === undefined) req.headers.traceparent = edgeTraceparent();
    return {
      v: 1,
      id: req.opts?.idempotencyKey ?? nextEnvelopeId(),
      kind: req.kind,
      service: this.#service.name,
      method: plan.desc.name,
      version: this.#service.version,
      headers: req.headers,
      payload: values ? req.input : plan.input.encode(req.input, ""),
      form: values ? "value" : "wire",
    };
  }

  #unwrap(plan: MethodPlan, reply: Envelope, values: boolean): unknown {
    if (reply.kind === "reply") {
      if (plan.output === undefined || values || reply.form === "value")
        return plan.output === undefined ? undefined : reply.payload;
      try {
        return plan.output.decode(reply.payload, "reply");
      } catch (e) {
        throw new FanError(
          Code.INTERNAL,
          `invalid reply from ${this.#service.name}.${plan.desc.name}: ${(e as Error).message}`,
          { cause: e },
        );
      }
    }
    if (reply.kind === "error")
      throw fromWireError(reply.payload, this.#service, reply.form === "value" ? "value" : "wire");
    throw new FanError(
      Code.UNKNOWN,
      `unexpected ${reply.kind} envelope in reply to ${this.#service.name}.${plan.desc.name}`,
    );
  }

  async #routeReady(): Promise<Route> {
    this.#routing ??= (async () => {
      await this.#host.ready();
      const set = await this.#host.watch(this.#service.name);
      const routeOpts = {
        ...(this.#opts.version === undefined ? {} : { range: this.#opts.version }),
        ...(this.#opts.strategy === undefined ? {} : { strategy: this.#opts.strategy }),
        ...(this.#opts.transport === undefined ? {} : { transport: this.#opts.transport }),
      };
      this.#route = new Route(this.#host, set, this.#service.name, routeOpts);
      return this.#route;
    })();
    this.#routing.catch(() => (this.#routing = undefined));
    return this.#routing.catch((e: unknown) => {
      throw FanError.from(e, Code.UNAVAILABLE);
    });
  }
}

/**
 * The resolving functions of the promise just made by `new Promise(capture)`: one shared
 * executor instead of a closure (and its context) per call. Read right after the constructor
 * returns, before anything else can run.
 */
const captured: { resolve: (v: unknown) => void; reject: (e: unknown) => void } = {
  resolve: () => undefined,
  reject: () => undefined,
};

function capture(resolve: (v: unknown) => void, reject: (e: unknown) => void): void {
  captured.resolve = resolve;
  captured.reject = reject;
}

function settled<T>(release: () => void, fn: (v: T) => void): (v: T) => void {
  return (v) => {
    release();
    fn(v);
  };
}

/** The shard key of an input: the values at the `@shard` paths, joined by "/". */
export function shardKeyOf(input: unknown, paths: readonly (readonly string[])[]): string | undefined {
  const parts: string[] = [];
  for (const path of paths) {
    let v: unknown = input;
    for (const seg of path) v = typeof v === "object" && v !== null ? (v as Record<string, unknown>)[seg] : undefined;
    if (v === undefined || v === null) return undefined;
    parts.push(typeof v === "object" ? JSON.stringify(v) : String(v));
  }
  return parts.join("/");
}
