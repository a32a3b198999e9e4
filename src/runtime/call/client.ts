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
  ShardedStateHandle,
  StateHandle,
  Subscription,
  TransportName,
} from "../descriptor.js";
import type { InstanceSet, StrategyName } from "../discovery/types.js";
import { Code, FanError } from "../errors.js";
import { fromWireError } from "../codec/error-wire.js";
import { inRequest } from "../codec/fail.js";
import { currentContext, edgeTraceparent } from "./callctx.js";
import { beginTrace, codeOf, withTraceId, type CallTelemetry } from "../telemetry/calls.js";
import type { CallSeries } from "../telemetry/metrics.js";
import { endWith, fallbackEvent, sdkTracer, startAttemptSpan } from "../telemetry/tracing.js";
import type { Tracer } from "@opentelemetry/api";
import { nextEnvelopeId } from "../ids.js";
import {
  chain,
  deadlineInterceptor,
  tracing,
  type Interceptor,
  type Next,
  type OutgoingRequest,
} from "./interceptors.js";
import { avoidDown, resend } from "./failover.js";
import { checkIdempotencyKey, hasDeliveryFlag, notSent, sendFailure } from "./outcome.js";
import { type AttemptOutcome, cancelled, deadlineExceeded, PendingCall } from "./pending.js";
import { isNotDelivered } from "../transports/not-delivered.js";
import { Route, checkRange, type RouteHost, type ServiceTraffic, type Target } from "./route.js";
import { majorRange } from "./versions.js";
import { ShardRoute, type ShardHooks } from "./shard-route.js";
import { InstanceWatch } from "./instance-watch.js";
import { LocalTransport } from "../transports/local/index.js";
import type { Envelope, SendOptions } from "../transports/transport.js";
import type { AttemptHost, ClientPolicy } from "../policy/client.js";
import { checkHeaders, headersOf, type HeaderSource } from "../policy/headers.js";
import type { PolicyOptions } from "../policy/options.js";

/** Options of `app.client(def, opts)`. */
export interface ClientOptions {
  /** A semver range the instances must satisfy (default: the major of the generated code, `2.x`). */
  readonly version?: string;
  /** How an instance is picked (default "prefer-local"). */
  readonly strategy?: StrategyName;
  /** Only use this transport. */
  readonly transport?: TransportName;
  /**
   * Overrides the IDL's per-method `@fallback` for this client: `true`, every `@shard` method
   * whose shard has no reachable owner goes to another instance instead of failing with
   * UNAVAILABLE (for handlers that can serve any key, e.g. from a shared store); `false`, none
   * does. Absent: each method as its IDL says.
   */
  readonly shardFallback?: boolean;
  /** Interceptors of this client, inside the App's own. */
  readonly interceptors?: readonly Interceptor[];
  /** The policy chain of this client (over the App's `policy`); `false` turns it off. */
  readonly policy?: PolicyOptions | false;
  /** Headers added to every call of this client (credentials), over the App's `headers`. */
  readonly headers?: HeaderSource;
}

/** What a caller needs from its App. */
export interface ClientHost extends RouteHost {
  readonly log: Logger;
  /** The App's interceptors (inside trace and deadline). */
  readonly interceptors: readonly Interceptor[];
  /** Spans and metrics of calls. */
  readonly telemetry: CallTelemetry;
  /** Resolves when discovery and transports are up (undefined once they are). */
  ready(): Promise<void> | undefined;
  /** True once the App has stopped: a call refused then says so (read on the refusal path only). */
  stopped?(): boolean;
  watch(service: string): Promise<InstanceSet>;
  /** The live traffic rule of a service (`fanc route`), when the App follows them. */
  traffic?(service: string): Promise<ServiceTraffic | undefined>;
  /** Counts an in-flight call on an instance; returns its release. */
  acquire(instanceId: string): () => void;
  subscribe(
    service: ServiceDescriptor,
    event: string,
    fn: (event: unknown) => void | Promise<void>,
  ): Promise<Subscription>;
  /** `client.states.x`; `version`, the client's range, picks the major whose state it watches. */
  state(
    service: ServiceDescriptor,
    name: string,
    opts?: { readonly version?: string },
  ): StateHandle<unknown> | ShardedStateHandle<unknown>;
  /** The policy chain of a client, or undefined when it is off. */
  clientPolicy?(service: ServiceDescriptor, opts: PolicyOptions | false | undefined): ClientPolicy | undefined;
  /** Headers added to every call of every client (credentials). */
  readonly headers?: HeaderSource | undefined;
}

interface MethodPlan {
  readonly desc: MethodDescriptor;
  readonly input: Codec<unknown>;
  readonly output: Codec<unknown> | undefined;
  readonly run: Next;
  /** This method's client-side metric series per transport name (filled on first use). */
  readonly series: Record<string, CallSeries>;
}

const NEVER: AbortSignal = new AbortController().signal;

/** A call's span context (its traceparent) and its attempts so far, when an SDK records spans. */
interface AttemptTrace {
  readonly tracer: Tracer;
  readonly traceparent: string;
  attempts: number;
}
/** Where a call's `AttemptTrace` is kept on its headers (a symbol: never serialised). */
const ATTEMPT_TRACE = Symbol("fan.attemptTrace");

/** The `ClientCaller` handed to a generated `createClient`. */
export class Caller implements ClientCaller {
  readonly #host: ClientHost;
  readonly #service: ServiceDescriptor;
  readonly #opts: ClientOptions;
  readonly #plans = new Map<string, MethodPlan>();
  #route: Route | undefined;
  #shards: ShardRoute | undefined;
  /**
   * Calls in flight on transports that cannot see their instance die (instance-watch.ts): sharded
   * ones, and the others their transport said which instance took.
   */
  #watch: InstanceWatch | undefined;
  #routing: Promise<Route> | undefined;
  /** `close()` was called: the client follows discovery no more and refuses new calls. */
  #closed = false;
  /** Track in-flight calls per instance (only the p2c strategy reads them). */
  readonly #countInFlight: boolean;
  /** Only the built-in interceptors: calls run them inlined, without the chain. */
  readonly #direct: boolean;
  /** Bulkhead, retries, hedging and breakers (src/runtime/policy/), unless turned off. */
  readonly #policy: ClientPolicy | undefined;
  readonly #attempts: AttemptHost = {
    pick: (req: OutgoingRequest, skip: ((target: Target) => boolean) | undefined): Target | undefined => {
      const route = this.#route as Route;
      // A sharded call: its shard's owner, resolved again for every attempt.
      if (req.method.shard !== undefined) {
        try {
          return this.#sharded(route).pick(req, skip);
        } catch (e) {
          throw withTraceId(e, req.headers, req.service.name);
        }
      }
      const pinned = req.opts?.transport;
      return skip === undefined
        ? avoidDown(route.pick(undefined, pinned, req.method), route, pinned, req.method)
        : route.pickWhere(undefined, pinned, skip, req.method);
    },
    send: (
      target: Target,
      req: OutgoingRequest,
      now?: number,
      outcome?: AttemptOutcome,
      hooks?: ShardHooks,
    ): Promise<unknown> => {
      const plan = this.#plans.get(req.method.name) as MethodPlan;
      const trace = (req.headers as Record<symbol, AttemptTrace | undefined>)[ATTEMPT_TRACE];
      if (trace !== undefined) return this.#tracedAttempt(trace, plan, req, target, hooks);
      if (req.method.shard === undefined) return this.#sendTo(plan, req, target, now, outcome);
      return this.#sendAttempt(plan, req, target, hooks);
    },
    refused: (req: OutgoingRequest, e: unknown): unknown =>
      this.#refused(this.#plans.get(req.method.name) as MethodPlan, req, e),
  };
  /** App and client headers (credentials), when fixed; checked once. */
  readonly #headers: Readonly<Record<string, string>> | undefined;
  readonly #headerSources: readonly HeaderSource[];

  constructor(host: ClientHost, service: ServiceDescriptor, opts: ClientOptions = {}) {
    checkRange(opts.version);
    this.#host = host;
    this.#service = service;
    this.#opts = opts;
    this.#countInFlight = opts.strategy === "p2c";
    this.#policy = host.clientPolicy?.(service, opts.policy);
    const sources = [host.headers, opts.headers].filter((h): h is HeaderSource => h !== undefined);
    if (sources.every((h) => typeof h !== "function")) {
      const fixed = Object.assign({}, ...sources) as Record<string, string>;
      this.#headers = sources.length === 0 ? undefined : checkHeaders(fixed, `client of ${service.name}`);
      this.#headerSources = [];
    } else {
      this.#headers = undefined;
      this.#headerSources = sources;
    }
    const interceptors = [
      tracing(host.telemetry.tracing),
      deadlineInterceptor,
      ...host.interceptors,
      ...(opts.interceptors ?? []),
    ];
    this.#direct = interceptors.length === 2;
    for (const m of Object.values(service.methods)) {
      const plan: MethodPlan = {
        desc: m,
        input: codec(m.input),
        output: m.output.kind === "void" ? undefined : codec(m.output),
        run: chain(interceptors, (req) => this.#send(plan, req)),
        series: {},
      };
      this.#plans.set(m.name, plan);
    }
  }

  call(method: string, input: unknown, opts?: CallOptions): Promise<unknown> {
    const plan = this.#plans.get(method);
    if (plan === undefined || plan.desc.kind !== "rpc") return Promise.reject(this.#noMember("rpc", method));
    let req: OutgoingRequest;
    try {
      req = this.#request("call", plan, input, opts, {});
    } catch (e) {
      return Promise.reject(e);
    }
    if (!this.#direct) return plan.run(req);
    // No interceptor of the App's or this client's: the trace and deadline interceptors,
    // inlined (the same steps in the same order, with one AsyncLocalStorage read instead of two).
    const headers = req.headers;
    const parent = currentContext();
    const span = beginTrace(req, this.#host.telemetry.tracing, false, parent);
    const now = Date.now();
    let deadline = now + (opts?.timeout ?? plan.desc.timeoutMs);
    const explicit = opts?.deadline;
    if (explicit !== undefined && explicit < deadline) deadline = explicit;
    const inherited = parent?.deadline;
    if (inherited !== undefined && inherited < deadline) deadline = inherited;
    req.deadline = deadline;
    headers.deadline = deadline;
    let p: Promise<unknown>;
    if (now >= deadline) p = Promise.reject(deadlineExceeded(req));
    else if (req.signal?.aborted === true) p = Promise.reject(cancelled(req));
    else p = this.#send(plan, req, now, span === undefined);
    return span === undefined ? p : endWith(span, p);
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

  state(name: string): StateHandle<unknown> | ShardedStateHandle<unknown> {
    const version = this.#opts.version;
    return this.#host.state(this.#service, name, version === undefined ? undefined : { version });
  }

  #request(
    kind: "call" | "push",
    plan: MethodPlan,
    input: unknown,
    opts: CallOptions | undefined,
    headers: OutgoingRequest["headers"],
  ): OutgoingRequest {
    if (this.#headers !== undefined) Object.assign(headers, this.#headers);
    else
      for (const src of this.#headerSources) Object.assign(headers, headersOf(src, `client of ${this.#service.name}`));
    if (opts?.headers !== undefined)
      Object.assign(headers, checkHeaders(opts.headers, `${this.#service.name}.${plan.desc.name}`));
    return { kind, service: this.#service, method: plan.desc, input, opts, deadline: 0, headers, signal: opts?.signal };
  }

  #noMember(kind: string, name: string): FanError {
    return new FanError(Code.UNIMPLEMENTED, `${this.#service.name} has no ${kind} ${name}`);
  }

  /**
   * `now`: the clock reading the deadline was computed from, when no time can have passed
   * since (the inlined path, synchronously): the dispatcher of an in-process call checks the
   * deadline against it instead of reading the clock again (`Date.now()` costs ~35 ns here).
   * `untraced`: the inlined path found no SDK to make spans with, in this same run.
   */
  #send(plan: MethodPlan, req: OutgoingRequest, now?: number, untraced = false): Promise<unknown> {
    const route = this.#route;
    if (route === undefined)
      return this.#routeReady().then(
        () => this.#send(plan, req),
        (e: unknown) => Promise.reject(this.#refused(plan, req, FanError.from(e, Code.UNAVAILABLE))),
      );
    if (this.#policy !== undefined) {
      const tracer = untraced || !this.#host.telemetry.tracing ? undefined : sdkTracer();
      const tp = req.headers.traceparent;
      // With an SDK, each attempt gets a span: the call's span context is kept before the first
      // attempt overwrites the header (under a symbol: hedges copy the headers, and share it).
      if (tracer !== undefined && tp !== undefined)
        (req.headers as Record<symbol, AttemptTrace>)[ATTEMPT_TRACE] = { tracer, traceparent: tp, attempts: 0 };
      return this.#policy.run(req, this.#attempts, now);
    }
    let target: Target;
    try {
      target =
        plan.desc.shard !== undefined
          ? this.#sharded(route).pick(req)
          : avoidDown(route.pick(undefined, req.opts?.transport, plan.desc), route, req.opts?.transport, plan.desc);
    } catch (e) {
      return Promise.reject(this.#refused(plan, req, e));
    }
    if (plan.desc.shard !== undefined)
      return this.#sharded(route).deliver(req, target, (t) => this.#sendTo(plan, req, t));
    return this.#sendTo(plan, req, target, now);
  }

  /**
   * One attempt of a call the policy runs, with an SDK registered. The first goes out under the
   * call's own span (a call answered at once looks as it always did); each retry or hedge gets
   * a span of its own, a child of the call's span, and its server span is that span's child.
   */
  #tracedAttempt(
    trace: AttemptTrace,
    plan: MethodPlan,
    req: OutgoingRequest,
    target: Target,
    hooks: ShardHooks | undefined,
  ): Promise<unknown> {
    const n = ++trace.attempts;
    if (n === 1) {
      // The first attempt goes out under the call's span: a fallback shows as an event on it.
      const first =
        req.method.shard === undefined
          ? hooks
          : {
              blocked: hooks?.blocked,
              redirected: hooks?.redirected,
              moved: (from: Target, err: unknown, to: Target): void => {
                fallbackEvent(req.headers, 1, from.info.instanceId, to.info.instanceId);
                hooks?.moved?.(from, err, to);
              },
            };
      return this.#sendAttempt(plan, req, target, first);
    }
    const span = startAttemptSpan(
      trace.tracer,
      this.#service.name,
      plan.desc.name,
      n,
      target.info.instanceId,
      target.transport.name,
      trace.traceparent,
      req.headers,
    );
    // A sharded attempt its owner refused and another instance took: the span names the one
    // that answered, and the owner that refused it.
    const moved =
      hooks === undefined
        ? undefined
        : {
            blocked: hooks.blocked,
            redirected: hooks.redirected,
            moved: (from: Target, err: unknown, to: Target): void => {
              fallbackEvent(req.headers, n, from.info.instanceId, to.info.instanceId);
              if (span.isRecording())
                span.setAttributes({
                  "fan.instance": to.info.instanceId,
                  "fan.transport": to.transport.name,
                  "fan.shard_fallback_from": from.info.instanceId,
                });
              hooks.moved?.(from, err, to);
            },
          };
    return endWith(span, this.#sendAttempt(plan, req, target, moved));
  }

  #sendAttempt(
    plan: MethodPlan,
    req: OutgoingRequest,
    target: Target,
    hooks: ShardHooks | undefined,
  ): Promise<unknown> {
    if (req.method.shard === undefined) return this.#sendTo(plan, req, target);
    // The shard route rewords an owner's refusal (shard unavailable, redirects, fallbacks) in
    // errors of its own: they get the call's trace id here.
    return this.#sharded(this.#route as Route)
      .deliver(req, target, (t) => this.#sendTo(plan, req, t), hooks)
      .catch((e: unknown) => {
        throw withTraceId(e, req.headers, req.service.name);
      });
  }

  /**
   * A call that ends before any attempt was sent: counted in the "none" series, with its trace
   * id. After its App stopped, whatever the route said ("no instance", from the instance list
   * the App last saw) the reason is the stop: said so.
   */
  #refused(plan: MethodPlan, req: OutgoingRequest, e: unknown): unknown {
    const stopped = this.#host.stopped?.() === true;
    const err = stopped ? this.#stoppedError(plan, e) : e;
    this.#series(plan, "none")?.observe(0, codeOf(err));
    // A stopped App's refusal is this instance's own state, not the called service's failure:
    // not marked as the call's, so a handler rejecting with it does not relay it.
    return withTraceId(err, req.headers, stopped ? undefined : req.service.name);
  }

  #stoppedError(plan: MethodPlan, cause: unknown): FanError {
    return new FanError(Code.UNAVAILABLE, `cannot call ${this.#service.name}.${plan.desc.name}: the App is stopped`, {
      cause,
    });
  }

  #sharded(route: Route): ShardRoute {
    this.#shards ??= new ShardRoute(route, this.#service, this.#opts.shardFallback);
    return this.#shards;
  }

  /** Sends one attempt of `req` to `target`; its pending call tells `outcome` the result (policy.ts). */
  #sendTo(
    plan: MethodPlan,
    req: OutgoingRequest,
    target: Target,
    now?: number,
    outcome?: AttemptOutcome,
  ): Promise<unknown> {
    const series = this.#series(plan, target.transport.name);
    const held = this.#countInFlight ? new Held(this.#host, target.info.instanceId) : undefined;
    const release = held?.release;
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
        series,
        outcome,
      );
      try {
        transport.callLocal(
          target.endpoint,
          this.#service,
          plan.desc.name,
          req.input,
          req.headers,
          req.signal,
          pending,
          now,
          pending.startedAt,
        );
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
      this.#series(plan, target.transport.name)?.observe(0, codeOf(e));
      // The request did not encode: this caller's mistake, not the called service's failure.
      return Promise.reject(withTraceId(inRequest(e, `${this.#service.name}.${plan.desc.name}`), req.headers));
    }
    // The shared executor, as on the local path: no executor closure (and context) per call.
    const promise = new Promise(capture);
    const resolve = captured.resolve;
    const reject = captured.reject;
    const pending = new PendingCall(
      req,
      release === undefined ? resolve : settled(release, resolve),
      release === undefined ? reject : settled(release, reject),
      series,
      outcome,
    );
    pending.via = transport;
    pending.endpoint = target.endpoint;
    // A sharded call waits on one instance: failed once discovery says it died, if its transport
    // cannot tell; another call likewise once its transport said which instance took it.
    if (transport.watchInstances === true && req.kind === "call")
      if (req.method.shard !== undefined) this.#watch?.add(target.info.instanceId, pending);
      else pending.noticeTo = this.#watch;
    let sent: Promise<Envelope | undefined>;
    const route = this.#route as Route;
    const pinned = req.opts?.transport;
    const sendOpts: SendOptions =
      req.kind === "push"
        ? {
            signal: req.signal ?? NEVER,
            deadline: req.deadline,
            elsewhere: route.targets(pinned, req.method).length > 1,
          }
        : { signal: req.signal ?? NEVER, deadline: req.deadline, taken: pending };
    try {
      sent =
        req.kind === "push"
          ? target.transport.push(target.endpoint, env, sendOpts).then(() => undefined)
          : target.transport.call(target.endpoint, env, sendOpts);
    } catch (e) {
      pending.fail(e);
      return promise;
    }
    // Anonymous reactions calling methods: no named closures per call (tsx's keepNames, which the
    // benchmarks run under, wraps each named one in a defineProperty call: ~3 µs a call in the
    // nats profile).
    sent.then(
      (reply: Envelope | undefined) => this.#answered(plan, req, target, pending, reply),
      (e: unknown) =>
        // Refused before it left (failover.ts): another instance may take it, whatever the method.
        // A sharded call's other instances are not its shard's owner: no failover (ShardRoute decides).
        isNotDelivered(e) && req.method.shard === undefined
          ? resend(target, e, env, req.kind, sendOpts, route, pinned, req.method, (next: Target) => {
              // At its deadline the call waits on the transport it went to, not the one that refused it.
              pending.via = next.transport;
              pending.endpoint = next.endpoint;
              held?.move(next);
            }).then(
              (reply: Envelope | undefined) => this.#answered(plan, req, target, pending, reply),
              (e2: unknown) => this.#sendFailed(plan, req, pending, e2),
            )
          : this.#sendFailed(plan, req, pending, e),
    );
    return promise;
  }

  /** The transport answered an attempt (a push: confirmed). */
  #answered(
    plan: MethodPlan,
    req: OutgoingRequest,
    target: Target,
    pending: PendingCall,
    reply: Envelope | undefined,
  ): void {
    // A reply after the deadline never replaces DEADLINE_EXCEEDED (the wheel fires up to a
    // few ms late); a push confirmed late was still delivered, so it keeps its outcome.
    if (req.kind === "call" && Date.now() >= req.deadline) {
      pending.expire();
      return;
    }
    try {
      pending.ok(reply === undefined ? undefined : this.#unwrap(plan, reply, target.values));
    } catch (e) {
      pending.fail(e);
    }
  }

  /** The attempt failed in its transport. */
  #sendFailed(plan: MethodPlan, req: OutgoingRequest, pending: PendingCall, e: unknown): void {
    pending.fail(sendFailure(req.kind, e, req.deadline, `${this.#service.name}.${plan.desc.name}`));
  }

  /** The client series of `plan` over `transport`; undefined when metrics are off. */
  #series(plan: MethodPlan, transport: string): CallSeries | undefined {
    const s = plan.series[transport];
    if (s !== undefined) return s;
    const metrics = this.#host.telemetry.metrics;
    if (metrics === undefined) return undefined;
    const made = metrics.series("client", this.#service.name, plan.desc.name, transport);
    plan.series[transport] = made;
    return made;
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

  /**
   * Detaches this client from the App's discovery cache and traffic rules (the listeners its
   * route holds on them) so that nothing is left of it once it is dropped (`app.releaseClient`).
   * Call it once no call made on it runs: a call made after fails FAILED_PRECONDITION.
   */
  close(): void {
    this.#closed = true;
    this.#shards?.close();
    this.#watch?.close();
    this.#route?.close();
    this.#shards = undefined;
    this.#route = undefined;
    this.#routing = undefined;
  }

  async #routeReady(): Promise<Route> {
    if (this.#closed) throw new FanError(Code.FAILED_PRECONDITION, `this client of ${this.#service.name} was released`);
    this.#routing ??= (async () => {
      await this.#host.ready();
      const set = await this.#host.watch(this.#service.name);
      const traffic = await this.#host.traffic?.(this.#service.name);
      const routeOpts = {
        range: this.#opts.version ?? majorRange(this.#service.version),
        parking: { version: this.#service.version, transports: this.#service.transports },
        ...(traffic === undefined ? {} : { traffic }),
        ...(this.#opts.strategy === undefined ? {} : { strategy: this.#opts.strategy }),
        ...(this.#opts.transport === undefined ? {} : { transport: this.#opts.transport }),
      };
      const route = new Route(this.#host, set, this.#service.name, routeOpts);
      // Closed while the route was made: it must not stay attached.
      if (this.#closed) {
        route.close();
        throw new FanError(Code.FAILED_PRECONDITION, `this client of ${this.#service.name} was released`);
      }
      this.#route = route;
      this.#watch = new InstanceWatch(set, this.#service.name, this.#host.log);
      return route;
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

/** A call's in-flight count on its instance (p2c): moves with a failover, released once. */
class Held {
  #release: (() => void) | undefined;

  constructor(
    private readonly host: ClientHost,
    id: string,
  ) {
    this.#release = host.acquire(id);
  }

  /** The call failed over to `target`: counted there, no longer on the instance that refused it. */
  readonly move = (target: Target): void => {
    if (this.#release === undefined) return;
    this.#release();
    this.#release = this.host.acquire(target.info.instanceId);
  };

  readonly release = (): void => {
    const r = this.#release;
    this.#release = undefined;
    r?.();
  };
}

function settled<T>(release: () => void, fn: (v: T) => void): (v: T) => void {
  return (v) => {
    release();
    fn(v);
  };
}
