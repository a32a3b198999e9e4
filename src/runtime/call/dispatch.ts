/**
 * Dispatch: the `Inbound` every transport hands its messages to, one per served instance.
 * It decodes (wire form) or validates (value form) the input before the handler, refuses
 * calls whose deadline has passed, runs the handler inside AsyncLocalStorage with its
 * CallContext, checks the reply, and maps what was thrown to a WireError. Pushes and events
 * resolve to ack and reject to be delivered again.
 */
// The module binding: the global `performance` is a getter, run on every read (per call).
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { CallCtx, runHandler, runInContext, type InstanceScope } from "./callctx.js";
import { codec, type Codec } from "../codec/index.js";
import type { MethodDescriptor, ServiceDescriptor, SubscriptionDescriptor } from "../descriptor.js";
import { calledService, Code, FanError, type WireError } from "../errors.js";
import { idlErrorName, toWireError, type Form } from "../codec/error-wire.js";
import type { Envelope, EnvelopeHeaders, Inbound, Transport } from "../transports/transport.js";
import { type HoldWindow, holdWindow, isNotReady } from "./ownership.js";
import { keep } from "../transports/kept-push.js";
import { type CallSignal, signalOf } from "../transports/abort.js";
import type { Counters } from "../telemetry/stats.js";
import type { ServerGate } from "../policy/server.js";
import { ObservedSink, serverSpan, type CallTelemetry } from "../telemetry/calls.js";
import type { CallSeries } from "../telemetry/metrics.js";
import { failSpan, sdkTracer, withSpan } from "../telemetry/tracing.js";
import { PendingCall } from "./pending.js";
import { PushDedupe } from "./dedupe.js";
import { revealBadReply } from "./reveal.js";
import { inRequest } from "../codec/fail.js";
import { warnDropped } from "../telemetry/drops.js";
import { markFinal, QUEUED } from "../transports/push-ends.js";

type HandlerFn = (req: unknown, ctx: CallCtx) => unknown;

interface Plan {
  readonly name: string;
  readonly kind: "rpc" | "push" | "event";
  readonly fn: HandlerFn | undefined;
  readonly input: Codec<unknown>;
  /** Undefined for void replies. */
  readonly output: Codec<unknown> | undefined;
  readonly timeoutMs: number;
  /** rpc and push: the descriptor server interceptors see. */
  readonly desc?: MethodDescriptor;
  /** Server-side metric series per transport name (filled on first use). */
  readonly series: Record<string, CallSeries>;
  /** `@shard` key paths of an rpc or push. */
  readonly shard?: ShardPaths;
}

type ShardPaths = readonly (readonly string[])[];

const NO_HEADERS: Readonly<EnvelopeHeaders> = Object.freeze({});

/** The `method` label of calls to a method the served service does not have. */
export const UNKNOWN_METHOD = "<unknown>";

/** Where `Dispatcher.run` reports the outcome of a call (exactly one of the two, once). */
export interface CallSink {
  /**
   * The reply payload: the checked value (value form) or encoded JSON (wire form); undefined for
   * void. `now`: the wall clock (epoch ms) the reply was checked against its deadline with, and
   * `at` a `performance.now()` reading of that instant, when taken.
   */
  reply(payload: unknown, now?: number, at?: number): void;
  /** The error the caller receives. */
  error(err: WireError): void;
}

/** Turns a call's outcome into the reply or error envelope of `Inbound.call`. */
class EnvelopeSink implements CallSink {
  constructor(
    private readonly env: Envelope,
    private readonly version: string,
    private readonly resolve: (env: Envelope) => void,
  ) {}

  reply(payload: unknown): void {
    this.resolve(okReply(this.env, payload, this.version));
  }

  error(err: WireError): void {
    this.resolve(errorReply(this.env, err, this.version));
  }
}

/** The Inbound of one served instance, plus event delivery and draining. */
export class Dispatcher implements Inbound {
  readonly #service: ServiceDescriptor;
  readonly #handler: object;
  readonly #scope: InstanceScope;
  readonly #counters: Counters;
  readonly #tel: CallTelemetry | undefined;
  readonly #plans = new Map<string, Plan>();
  readonly #eventPlans = new Map<string, Plan>();
  readonly #dedupe = new PushDedupe();
  /** The server series of calls to methods this service does not have, per transport. */
  readonly #unknownSeries: Record<string, CallSeries> = {};
  #accepting = true;
  #inflight = 0;
  #idle: (() => void) | undefined;
  /** Load shedding, server interceptors and `@auth` (src/runtime/policy/server.ts), when any. */
  readonly #gate: ServerGate | undefined;

  constructor(
    service: ServiceDescriptor,
    handler: object,
    scope: InstanceScope,
    counters: Counters,
    gate?: ServerGate,
    telemetry?: CallTelemetry,
  ) {
    this.#service = service;
    this.#gate = gate;
    this.#handler = handler;
    this.#scope = scope;
    this.#counters = counters;
    this.#tel = telemetry;
    for (const m of Object.values(service.methods)) this.#plans.set(m.name, this.#methodPlan(m));
    for (const s of service.subscriptions) this.#eventPlans.set(eventKey(s.service, s.event), this.#eventPlan(s));
  }

  /** Gives built-in rpc `name` of the descriptor (no handler method; the state snapshot) its function. */
  builtin(name: string, fn: (input: unknown) => unknown): void {
    const plan = this.#plans.get(name);
    if (plan !== undefined) this.#plans.set(name, { ...plan, fn: (input) => fn(input) });
  }

  /** Calls, pushes and events being handled now. */
  get inflight(): number {
    return this.#inflight;
  }

  /**
   * This dispatcher as the Inbound of one transport (metrics are labelled by it); `window`, the
   * transport's, bounds the sharded calls and pushes held on it (ownership.ts `HoldWindow`).
   */
  via(transport: string, window?: Transport["window"]): Inbound {
    const { calls, pushes } = window ?? {};
    this.#windows.set(transport, {
      ...(calls === undefined ? {} : { calls: holdWindow(transport, calls.size, calls.option) }),
      ...(pushes === undefined ? {} : { pushes: holdWindow(transport, pushes.size, pushes.option) }),
    });
    return new TransportInbound(this, transport);
  }

  /** Per transport: what of its windows held sharded work may take (see `via`). */
  readonly #windows = new Map<string, { calls?: HoldWindow; pushes?: HoldWindow }>();

  /** Handles a call; resolves with a reply or error envelope, never rejects. */
  call(env: Envelope, signal: CallSignal, transport = "local"): Promise<Envelope> {
    return new Promise((resolve) =>
      this.run(env, signal, new EnvelopeSink(env, this.#service.version, resolve), transport),
    );
  }

  /**
   * Handles a call and reports the outcome to `sink` exactly once: the reply payload (the
   * checked value in value form, encoded JSON in wire form) or the WireError the caller gets.
   * `call` wraps it in envelopes; the local transport's value path hands the caller's own sink.
   */
  run(env: Envelope, signal: CallSignal, sink: CallSink, transport = "local"): void {
    const form: Form = env.form === "value" ? "value" : "wire";
    this.#run(form, env.service, env.method, env.payload, env.headers, signal, sink, Date.now(), transport);
  }

  /**
   * `run` for an unserialised in-process call, without an envelope: the typed input and the
   * request headers as the caller built them (the local transport's value path). `now` is the
   * caller's clock reading when it was taken in this same synchronous run, else omitted; `mono`
   * a `performance.now()` reading taken in that same run (the caller's metrics), if any: the
   * reply is then checked against the deadline by the time elapsed since, and the end reading
   * is shared with both sides' metrics (one clock read instead of three).
   */
  runValue(
    service: string,
    method: string,
    payload: unknown,
    headers: Readonly<EnvelopeHeaders>,
    signal: AbortSignal | undefined,
    sink: CallSink,
    now?: number,
    mono?: number,
    transport = "local",
  ): void {
    this.#run("value", service, method, payload, headers, signal, sink, now ?? Date.now(), transport, mono);
  }

  #run(
    form: Form,
    service: string,
    method: string,
    payload: unknown,
    headers: Readonly<EnvelopeHeaders>,
    signal: CallSignal | undefined,
    outer: CallSink,
    now: number,
    transport: string,
    mono?: number,
  ): void {
    const plan = this.#plans.get(method);
    const tel = this.#tel;
    const sink = tel === undefined ? outer : this.#observed(outer, plan, transport, tel);
    const refused = this.#refuseCall(service, method, plan);
    if (refused !== undefined) {
      sink.error(refused);
      return;
    }
    const p = plan as Plan & { fn: HandlerFn };
    const deadline = typeof headers.deadline === "number" ? headers.deadline : now + p.timeoutMs;
    if (now >= deadline) {
      this.#counters.callsExpired++;
      sink.error(expiredError(service, method));
      return;
    }
    const gate = this.#gate;
    if (gate !== undefined) {
      const shed = gate.shed(this.#inflight, method, transport);
      if (shed !== undefined) {
        sink.error(shed);
        return;
      }
      const desc = p.desc as MethodDescriptor;
      if (gate.checks(desc)) {
        // In flight while its checks run, so a drain waits for it and load shedding counts it.
        this.#inflight++;
        gate.check("call", desc, headers).then(
          (principal) => {
            try {
              // Time passed while the checks ran: the reply's deadline check reads the clock.
              this.#invoke(form, p, payload, headers, signal, sink, deadline, principal, transport);
            } finally {
              this.#done();
            }
          },
          (err: WireError) => {
            this.#done();
            sink.error(err);
          },
        );
        return;
      }
    }
    this.#invoke(form, p, payload, headers, signal, sink, deadline, undefined, transport, now, mono);
  }

  /** Decodes the input and runs the handler of a call that passed every check. */
  #invoke(
    form: Form,
    p: Plan & { fn: HandlerFn },
    payload: unknown,
    headers: Readonly<EnvelopeHeaders>,
    signal: CallSignal | undefined,
    sink: CallSink,
    deadline: number,
    principal: unknown,
    transport: string,
    now?: number,
    mono?: number,
  ): void {
    const tel = this.#tel;
    let input: unknown;
    try {
      input = form === "value" ? p.input.complete(payload, "") : p.input.decode(payload, "");
    } catch (e) {
      sink.error(badInput(inRequest(e, `${this.#service.name}.${p.name}`)));
      return;
    }
    // A fallback call (its owner is unavailable, the method or caller allows it) is served here.
    const guard = p.shard === undefined || headers.shardFallback !== undefined ? undefined : this.#scope.shardGuard;
    const redirect =
      guard === undefined
        ? undefined
        : guard(p.shard as ShardPaths, input, deadline, signal, this.#windows.get(transport)?.calls);
    // Admitted for a shard: its end is reported, so a shard that moves meanwhile waits for it.
    const shard = typeof redirect === "number" ? redirect : -1;
    if (redirect !== undefined && typeof redirect !== "number") {
      if (isThenable(redirect))
        this.#held(redirect, sink, p, signal, deadline, () =>
          this.#invoke(form, p, payload, headers, signal, sink, deadline, principal, transport),
        );
      else sink.error(redirect);
      return;
    }
    const ctx = new CallCtx(this.#scope, p.name, headers, deadline, signal, 1);
    if (principal !== undefined) ctx.principal = principal;
    // The span (with an SDK) ends in the ObservedSink; without one `#observed` may not have made one.
    const span =
      tel === undefined || !(sink instanceof ObservedSink)
        ? undefined
        : serverSpan(tel, ctx, "call", headers, 1, transport);
    if (span !== undefined) (sink as ObservedSink).span = span;
    this.#inflight++;
    let result: unknown;
    try {
      result =
        span === undefined
          ? runHandler(ctx, this.#handler, p.fn, input)
          : withSpan(span, runInContext, ctx, invoke, this.#handler, p.fn, input, ctx);
    } catch (e) {
      ctx.release();
      this.#done(shard);
      sink.error(this.#wireError(e, form, ctx));
      return;
    }
    if (!isThenable(result)) {
      ctx.release();
      this.#done(shard);
      this.#settle(sink, p, result, form, ctx);
      return;
    }
    // One reaction on the handler's promise. An async method awaiting it would cost two more
    // promises (its own, and the throwaway V8 makes for `await` while async hooks are on, which
    // AsyncLocalStorage turns on); two closures are cheaper than that.
    result.then(
      (r) => {
        ctx.release();
        this.#done(shard);
        // Settled after its signal aborted: the caller's outcome is the abort's, never a late reply.
        // (Also when the handler never looked at its signal, so nothing aborted it.)
        // The wall clock now: read, or (`mono` given) the start reading plus the time elapsed
        // since, by the one monotonic reading both sides' metrics share.
        let at: number | undefined;
        let t: number;
        if (mono === undefined || now === undefined) t = Date.now();
        else {
          at = performance.now();
          t = now + (at - mono);
        }
        if (ctx.aborted || t >= ctx.deadline) sink.error(abortedError(ctx));
        else this.#settle(sink, p, r, form, ctx, t, at);
      },
      (e: unknown) => {
        ctx.release();
        this.#done(shard);
        sink.error(this.#wireError(e, form, ctx));
      },
    );
  }

  /**
   * A call held while the `onShards` that gave this instance its shard runs (ownership.ts): in
   * flight meanwhile, so a drain waits for it; once the hold settles it is answered, or run again
   * from the guard, which may hold it again or redirect it (ownership may have moved meanwhile),
   * unless its caller cancelled it meanwhile (the hold ends then too).
   */
  #held(
    hold: PromiseLike<WireError | undefined>,
    sink: CallSink,
    p: Plan,
    signal: CallSignal | undefined,
    deadline: number,
    run: () => void,
  ): void {
    this.#inflight++;
    hold.then((err) => {
      try {
        if (err !== undefined) sink.error(err);
        else if (signal?.aborted === true)
          sink.error(abortError(signalOf(signal).reason, deadline, this.#service.name, p.name));
        else run();
      } finally {
        this.#done();
      }
    });
  }

  /**
   * Refuses a call whose deadline passed before its transport started it (a batch frame's call:
   * batching/served.ts): counted and measured as `run` refuses one that arrives expired.
   */
  expired(env: Envelope, transport = "local"): WireError {
    this.#counters.callsExpired++;
    const series = this.#series(this.#plans.get(env.method), transport);
    series?.end(series.begin(), Code.DEADLINE_EXCEEDED);
    return expiredError(env.service, env.method);
  }

  /**
   * Handles a push: resolves to ack (done, or dropped on purpose), rejects to redeliver. `path`
   * "call": it came on the transport's call path (a push to its shard's owner).
   */
  push(env: Envelope, transport = "local", path?: "call"): Promise<void> {
    const plan = this.#plans.get(env.method);
    if (plan === undefined || plan.kind !== "push" || env.service !== this.#service.name) {
      return this.#drop(
        env,
        "pushesDropped",
        transport,
        "no such push",
        `no push ${env.method} on ${this.#service.name}; dropped`,
        this.#service.name,
      );
    }
    const ttl = env.headers.ttl;
    if (typeof ttl === "number" && Date.now() > ttl) {
      this.#tel?.metrics?.pushExpired(this.#service.name, env.method, transport);
      return this.#drop(
        env,
        "pushesExpired",
        transport,
        "expired",
        `push ${env.service}.${env.method} expired ${Date.now() - ttl} ms ago; dropped`,
      );
    }
    const key = dedupeKey(env);
    const seen = this.#dedupe.check(key, Date.now());
    if (seen === "handled")
      return this.#drop(
        env,
        "pushesDuplicate",
        transport,
        "duplicate",
        `push ${env.method} ${env.id} was handled already; duplicate dropped`,
      );
    return seen ?? this.#dedupe.track(key, this.#oneWay(env, plan, "pushesDropped", transport, path));
  }

  /** Delivers an event to this instance's subscription handler; same ack semantics as `push`. */
  event(env: Envelope, transport = "local"): Promise<void> {
    const plan = this.#eventPlans.get(eventKey(env.service, env.method));
    if (plan === undefined)
      return this.#drop(
        env,
        "eventsDropped",
        transport,
        "not subscribed",
        `${this.#service.name} does not subscribe to ${env.service}.${env.method}; dropped`,
        this.#service.name,
      );
    return this.#oneWay(env, plan, "eventsDropped", transport);
  }

  /** Stops taking new work and waits up to `graceMs` for in-flight work; true when it all finished. */
  drain(graceMs: number): Promise<boolean> {
    this.#accepting = false;
    if (this.#inflight === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.#idle = undefined;
        resolve(false);
      }, graceMs);
      this.#idle = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  #refuseCall(service: string, method: string, plan: Plan | undefined): WireError | undefined {
    if (service !== this.#service.name)
      return { code: Code.NOT_FOUND, message: `service ${service} is not served here` };
    if (plan === undefined || plan.kind !== "rpc")
      return { code: Code.UNIMPLEMENTED, message: `${service} has no rpc ${method}` };
    if (plan.fn === undefined)
      return { code: Code.UNIMPLEMENTED, message: `the handler of ${service} does not implement ${method}` };
    if (!this.#accepting) return { code: Code.UNAVAILABLE, message: `this instance of ${service} is stopping` };
    return undefined;
  }

  /** `now`, `at`: the wall clock and `performance.now()` readings of this instant, if taken. */
  #settle(sink: CallSink, plan: Plan, result: unknown, form: Form, ctx: CallCtx, now?: number, at?: number): void {
    if (plan.output === undefined) {
      sink.reply(undefined, now, at);
      return;
    }
    let payload: unknown;
    try {
      payload = form === "value" ? plan.output.complete(result, "reply") : plan.output.encode(result, "reply");
    } catch (e) {
      this.#counters.badReplies++;
      // The log names the field and the rule; the caller gets the trace id only, except in a
      // test app, where the in-process caller sees the codec's error too (reveal.ts).
      const why = e instanceof Error ? e.message : String(e);
      ctx.log.error({ err: e }, `${this.#service.name}.${plan.name} returned an invalid reply: ${why}`);
      const wire: WireError = {
        code: Code.INTERNAL,
        message: `invalid reply from ${this.#service.name}.${plan.name} (trace ${ctx.traceId})`,
      };
      sink.error(this.#scope.revealErrors === true ? revealBadReply(wire, e) : wire);
      return;
    }
    sink.reply(payload, now, at);
  }

  #wireError(e: unknown, form: Form, ctx: CallCtx): WireError {
    // Whatever a handler throws after its signal aborted (its own IDL error included), the
    // caller's outcome is the abort's: DEADLINE_EXCEEDED, CANCELLED or the app's stop.
    if (ctx.aborted || Date.now() >= ctx.deadline) return abortedError(ctx);
    const scope = { log: () => ctx.log, traceId: () => ctx.traceId };
    if (this.#scope.revealErrors !== true) return toWireError(e, this.#service, ctx.method, form, scope);
    return toWireError(e, this.#service, ctx.method, form, {
      ...scope,
      reveal: { service: this.#service.name, method: ctx.method },
    });
  }

  async #oneWay(
    env: Envelope,
    plan: Plan,
    dropCounter: "pushesDropped" | "eventsDropped",
    transport: string,
    path?: "call",
  ): Promise<void> {
    if (!this.#accepting) throw new FanError(Code.UNAVAILABLE, `this instance of ${this.#service.name} is stopping`);
    if (plan.fn === undefined)
      return this.#refuse(
        env,
        dropCounter,
        transport,
        "not implemented",
        `the handler of ${this.#service.name} does not implement ${plan.name}; dropped`,
      );
    let principal: unknown;
    if (this.#gate !== undefined && plan.desc !== undefined && this.#gate.checks(plan.desc)) {
      try {
        principal = await this.#gate.check("push", plan.desc, env.headers);
      } catch (e) {
        const err = e as WireError;
        return this.#refuse(
          env,
          dropCounter,
          transport,
          "refused",
          `${env.kind} ${env.service}.${env.method} refused: ${err.code} ${err.message}; dropped`,
        );
      }
    }
    let input: unknown;
    try {
      input = env.form === "value" ? validated(plan, env.payload) : plan.input.decode(env.payload, "");
    } catch (e) {
      return this.#refuse(
        env,
        dropCounter,
        transport,
        "undecodable",
        `undecodable ${env.kind} ${env.service}.${env.method} dropped: ${(e as Error).message}`,
      );
    }
    // A sharded push is guarded as a call is: redirected by an instance that does not own its
    // shard (the producer follows it), held while the onShards gaining it runs (ownership.ts).
    const guard =
      plan.shard === undefined || env.headers.shardFallback !== undefined ? undefined : this.#scope.shardGuard;
    // Counted when it was held (in flight already); the shard it is admitted for, or -1.
    const { counted, shard } =
      guard === undefined
        ? NOT_GUARDED
        : await this.#guardPush(
            guard,
            plan,
            input,
            pushDeadline(env, plan),
            transport,
            this.#heldPushes(transport, path),
          );
    const attempt = typeof env.headers.attempt === "number" ? env.headers.attempt : 1;
    const ctx = new CallCtx(this.#scope, plan.name, env.headers, Number.POSITIVE_INFINITY, undefined, attempt);
    if (principal !== undefined) ctx.principal = principal;
    const fn = plan.fn;
    const tel = this.#tel;
    const series = tel === undefined ? undefined : this.#series(plan, transport);
    if (attempt > 1) tel?.metrics?.redelivery(this.#service.name, plan.name, transport);
    const kind = env.kind === "event" ? "event" : "push";
    const span = tel === undefined ? undefined : serverSpan(tel, ctx, kind, env.headers, attempt, transport);
    const t0 = series === undefined ? 0 : series.begin();
    if (!counted) this.#inflight++;
    try {
      await (span === undefined
        ? runHandler(ctx, this.#handler, fn as HandlerFn, input)
        : withSpan(span, runInContext, ctx, invoke, this.#handler, fn, input, ctx));
      series?.end(t0, "OK");
      span?.end();
    } catch (e) {
      // What the producer hears back (a direct transport's nack) is what an rpc's caller would:
      // a FanError thrown on purpose keeps its code and message, a dependency's error is passed
      // on, anything else is INTERNAL with the trace id only — the handler's own IDL error too,
      // since a push declares none; the warning below has the exception in full.
      const out =
        FanError.is(e) && (idlErrorName(e) === undefined || calledService(e) !== undefined)
          ? e
          : new FanError(
              Code.INTERNAL,
              `internal error (trace ${ctx.traceId})`,
              // Test apps show their in-process callers the exception (reveal.ts).
              this.#scope.revealErrors === true ? { cause: e } : undefined,
            );
      series?.end(t0, out.code);
      if (span !== undefined) failSpan(span, e, out.code);
      this.#counters.deliveriesFailed++;
      // A push's declared error is its handler's answer: final, dead-lettered at once by a queue
      // transport, which writes the one line of it (push-ends.ts).
      const declared = env.kind === "push" && FanError.is(e) ? idlErrorName(e) : undefined;
      if (declared !== undefined) {
        markFinal(out, { name: declared, code: (e as FanError).code });
        if (path !== "call" && QUEUED.has(transport)) throw out;
        ctx.log.warn(
          { err: e, attempt, error: declared },
          `push handler ${plan.name} failed with its declared error ${declared}: final, not delivered again`,
        );
        throw out;
      }
      // A sender that sends a push again after a nack (http, zmq, tcp, a push to its shard's
      // owner) is told its @retry(n) is spent at attempt n + 1; a queue counts deliveries itself.
      const retry = env.kind === "push" ? (plan.desc?.retry ?? 0) : 0;
      if (retry > 0 && attempt > retry && (path === "call" || !QUEUED.has(transport))) markFinal(out);
      // Whether this was the last attempt is the transport's to know (its delivery limit): it logs
      // the dead-lettering itself, so this line must not promise another delivery.
      ctx.log.warn(
        { err: e, attempt },
        `${env.kind} handler ${plan.name} failed on attempt ${attempt}; the transport delivers it again up to its delivery limit, then dead-letters it or gives it up`,
      );
      throw out;
    } finally {
      ctx.release();
      this.#done(shard);
    }
  }

  /**
   * Waits while a sharded push's shard is not ready here; throws its redirect, or the error its
   * hold ended with (DEADLINE_EXCEEDED naming the shard once `deadline` passed, woken or not).
   * Held, it is in flight — load shedding counts it and a drain waits for it — and stays so when
   * this resolves `counted` (the handler's run takes the count over); `shard` is the one it is
   * admitted for (its end is reported: `shardSettled`), -1 for none. At the in-flight bound it is not
   * held but shed, as a call would be: the transport refuses it and it is sent again. A refusal
   * for this instance's state alone (shed, or `isNotReady`) is marked: a broker's consumer keeps
   * the push until `deadline` rather than count a delivery (kept-push.ts).
   */
  async #guardPush(
    guard: NonNullable<InstanceScope["shardGuard"]>,
    plan: Plan,
    input: unknown,
    deadline: number,
    transport: string,
    window: HoldWindow | undefined,
  ): Promise<{ readonly counted: boolean; readonly shard: number }> {
    const paths = plan.shard as ShardPaths;
    const gate = this.#gate;
    // Given only at the bound (rare): it lets go of a hold that is not to be kept.
    const shed = gate === undefined || this.#inflight < gate.maxInFlight ? undefined : new AbortController();
    let held = guard(paths, input, deadline, shed?.signal, window);
    if (held === undefined) return NOT_GUARDED;
    if (typeof held === "number") return { counted: false, shard: held };
    if (!isThenable(held)) throw guardRefusal(held, deadline);
    if (shed !== undefined) {
      shed.abort();
      const err = (gate as ServerGate).shed(this.#inflight, plan.name, transport) as WireError;
      // Shed for this instance's load, not for the push: a broker's consumer keeps it.
      throw keep(new FanError(err.code, err.message), deadline);
    }
    this.#inflight++;
    try {
      while (held !== undefined && typeof held !== "number") {
        const err = isThenable(held) ? await held : held;
        if (err !== undefined) throw guardRefusal(err, deadline);
        held = guard(paths, input, deadline, undefined, window);
      }
    } catch (e) {
      this.#done();
      throw e;
    }
    return { counted: true, shard: held ?? -1 };
  }

  /** The window a push held on `transport` counts in: its call path's or its push queue's. */
  #heldPushes(transport: string, path: "call" | undefined): HoldWindow | undefined {
    const w = this.#windows.get(transport);
    return path === "call" ? w?.calls : w?.pushes;
  }

  /** Drops a push or event without running its handler; a push's id is not remembered as handled. */
  #refuse(env: Envelope, counter: keyof Counters, transport: string, reason: string, why: string): Promise<void> {
    if (env.kind === "push") this.#dedupe.refuse(dedupeKey(env));
    return this.#drop(env, counter, transport, reason, why);
  }

  /**
   * Counts a drop (every one: the metric reads the counters) and warns of it, rate limited per
   * (transport, method, reason): telemetry/drops.ts. `place`: the key's place when the method
   * is not one of the service's (any name a sender writes would be a key of its own).
   */
  #drop(
    env: Envelope,
    counter: keyof Counters,
    transport: string,
    reason: string,
    why: string,
    place = `${env.service}.${env.method}`,
  ): Promise<void> {
    this.#counters[counter]++;
    warnDropped(
      this.#log(),
      { transport, endpoint: place, reason },
      {
        transport,
        id: env.id,
        targetService: env.service,
        targetMethod: env.method,
        traceparent: env.headers.traceparent,
      },
      why,
    );
    return Promise.resolve();
  }

  /**
   * The sink that counts a call's server side and ends its span: an ObservedSink around
   * `outer`; for an in-process caller's pending call with no span to make, the pending call
   * itself (it counts both sides with the same two clock readings); `outer` when there is
   * nothing to count or end.
   */
  #observed(outer: CallSink, plan: Plan | undefined, transport: string, tel: CallTelemetry): CallSink {
    const series = this.#series(plan, transport);
    if (tel.tracing && sdkTracer() !== undefined) return new ObservedSink(outer, series);
    if (series === undefined) return outer;
    if (outer instanceof PendingCall) {
      outer.countServer(series);
      return outer;
    }
    return new ObservedSink(outer, series);
  }

  /** The server series of a method (`<unknown>` without a plan) over a transport; undefined when metrics are off. */
  #series(plan: Plan | undefined, transport: string): CallSeries | undefined {
    const metrics = this.#tel?.metrics;
    if (metrics === undefined) return undefined;
    if (plan === undefined) {
      // Method names off the wire are the sender's to choose: all unknown ones share one series
      // per transport, so a stream of made-up names cannot grow the registry without bound.
      let u = this.#unknownSeries[transport];
      if (u === undefined) {
        u = metrics.series("server", this.#service.name, UNKNOWN_METHOD, transport);
        this.#unknownSeries[transport] = u;
      }
      return u;
    }
    let s = plan.series[transport];
    if (s === undefined) {
      s = metrics.series("server", this.#service.name, plan.name, transport);
      plan.series[transport] = s;
    }
    return s;
  }

  #log(): Logger {
    return this.#scope.log;
  }

  /** One call or push in flight less; `shard` (not -1): the shard it was admitted for. */
  #done(shard = -1): void {
    if (shard >= 0) this.#scope.shardSettled?.(shard);
    if (--this.#inflight === 0 && this.#idle !== undefined) {
      const idle = this.#idle;
      this.#idle = undefined;
      idle();
    }
  }

  #methodPlan(m: MethodDescriptor): Plan {
    return {
      name: m.name,
      kind: m.kind,
      fn: handlerFn(this.#handler, m.name),
      input: codec(m.input),
      output: m.output.kind === "void" ? undefined : codec(m.output),
      timeoutMs: m.timeoutMs,
      desc: m,
      series: {},
      ...(m.shard === undefined ? {} : { shard: m.shard }),
    };
  }

  #eventPlan(s: SubscriptionDescriptor): Plan {
    const source = s.source();
    const ev = source.events[s.event];
    if (ev === undefined)
      throw new FanError(
        Code.INTERNAL,
        `${this.#service.name} subscribes to ${s.service}.${s.event}, which does not exist`,
      );
    return {
      name: s.handler,
      kind: "event",
      fn: handlerFn(this.#handler, s.handler),
      input: codec(ev.payload),
      output: undefined,
      timeoutMs: 0,
      series: {},
    };
  }
}

/** The push dedupe key of an envelope: its method and id. */
function dedupeKey(env: Envelope): string {
  return `${env.method}\u0000${env.id}`;
}

/** The key of an event: publishing service and event name. */
export function eventKey(service: string, event: string): string {
  return `${service}\u0000${event}`;
}

function handlerFn(handler: object, name: string): HandlerFn | undefined {
  const fn = (handler as Record<string, unknown>)[name];
  return typeof fn === "function" ? (fn as HandlerFn) : undefined;
}

/** Calls a handler method with its `this` (a module-level function: no closure per call). */
function invoke(handler: object, fn: HandlerFn, input: unknown, ctx: CallCtx): unknown {
  return fn.call(handler, input, ctx);
}

/**
 * The error a sharded push's guard refused it with; a refusal for this instance's state alone
 * (ownership.ts `isNotReady`) is marked so that a broker's consumer keeps the push until
 * `deadline` instead of counting a delivery (kept-push.ts).
 */
function guardRefusal(err: WireError, deadline: number): FanError {
  const e = new FanError(err.code, err.message, { details: err.details });
  return isNotReady(err) ? keep(e, deadline) : e;
}

/** What `#guardPush` answers for a push that names no shard (or a service without a guard). */
const NOT_GUARDED = { counted: false, shard: -1 } as const;

/** How long a sharded push may wait for its shard: its deadline, else its ttl, else its method's timeout. */
function pushDeadline(env: Envelope, plan: Plan): number {
  const { deadline, ttl } = env.headers;
  if (typeof deadline === "number") return deadline;
  return typeof ttl === "number" ? ttl : Date.now() + plan.timeoutMs;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function";
}

function validated(plan: Plan, value: unknown): unknown {
  return plan.input.complete(value, "");
}

function badInput(e: unknown): WireError {
  if (FanError.is(e))
    return e.details === undefined
      ? { code: Code.INVALID_ARGUMENT, message: e.message }
      : { code: Code.INVALID_ARGUMENT, message: e.message, details: e.details };
  return { code: Code.INVALID_ARGUMENT, message: e instanceof Error ? e.message : String(e) };
}

/** Why a handler that gave up on its aborted signal stopped: deadline, app stop, or caller cancel. */
function abortedError(ctx: CallCtx): WireError {
  return abortError(ctx.signal.reason, ctx.deadline, ctx.service, ctx.method);
}

/** What a call whose signal aborted with `reason` answers. */
function abortError(reason: unknown, deadline: number, service: string, method: string): WireError {
  if (FanError.is(reason)) return { code: reason.code, message: reason.message };
  const timedOut = (reason as { name?: unknown } | undefined)?.name === "TimeoutError" || Date.now() >= deadline - 2;
  return timedOut
    ? { code: Code.DEADLINE_EXCEEDED, message: `deadline of ${service}.${method} exceeded` }
    : { code: Code.CANCELLED, message: "cancelled by the caller" };
}

/** The error of a call refused because its deadline passed before it started (counted in `callsExpired`). */
export function expiredError(service: string, method: string): WireError {
  return { code: Code.DEADLINE_EXCEEDED, message: `deadline of ${service}.${method} passed before the call started` };
}

/** An error envelope answering `env`. */
/** The reply envelope answering `env` with `payload`. */
export function okReply(env: Envelope, payload: unknown, version: string): Envelope {
  return {
    v: 1,
    id: env.id,
    kind: "reply",
    service: env.service,
    method: env.method,
    version,
    headers: NO_HEADERS,
    payload,
    form: env.form === "value" ? "value" : "wire",
  };
}

export function errorReply(env: Envelope, err: WireError, version: string): Envelope {
  return {
    v: 1,
    id: env.id,
    kind: "error",
    service: env.service,
    method: env.method,
    version,
    headers: NO_HEADERS,
    payload: err,
    form: env.form === "value" ? "value" : "wire",
  };
}

/**
 * A dispatcher as one transport's Inbound: the same dispatcher, with the transport's name for
 * the metric labels. Keeps `run` and `runValue`, which the local transport looks for.
 */
class TransportInbound implements Inbound {
  constructor(
    private readonly d: Dispatcher,
    private readonly transport: string,
  ) {}

  call(env: Envelope, signal: CallSignal): Promise<Envelope> {
    return this.d.call(env, signal, this.transport);
  }

  push(env: Envelope, path?: "call"): Promise<void> {
    return this.d.push(env, this.transport, path);
  }

  expired(env: Envelope): WireError {
    return this.d.expired(env, this.transport);
  }

  run(env: Envelope, signal: CallSignal, sink: CallSink): void {
    this.d.run(env, signal, sink, this.transport);
  }

  runValue(
    service: string,
    method: string,
    payload: unknown,
    headers: Readonly<EnvelopeHeaders>,
    signal: AbortSignal | undefined,
    sink: CallSink,
    now?: number,
    mono?: number,
  ): void {
    this.d.runValue(service, method, payload, headers, signal, sink, now, mono, this.transport);
  }
}
