/**
 * One outgoing call in flight: it settles exactly once, with the reply, with the error, at
 * its deadline (through the shared deadline wheel, no timer per call) or when the caller's
 * signal aborts (it is its own abort listener). It is also the `CallSink` the local
 * transport's value path reports to, so an in-process call needs no promise of its own
 * besides the one the caller awaits.
 */
import { deadlines, type Expirable } from "./deadlines.js";
import type { ServiceDescriptor } from "../descriptor.js";
import type { CallSink } from "./dispatch.js";
import { fromWireError } from "../codec/error-wire.js";
import { Code, FanError, type WireError } from "../errors.js";
import type { EnvelopeHeaders, TakenSink, Transport } from "../transports/transport.js";
import { codeOf, withTraceId } from "../telemetry/calls.js";
import type { CallSeries } from "../telemetry/metrics.js";
import { pushFailure } from "./outcome.js";

/** What a pending call needs to know about its request. */
export interface PendingRequest {
  readonly service: ServiceDescriptor;
  readonly method: { readonly name: string };
  readonly deadline: number;
  readonly signal: AbortSignal | undefined;
  /** The request headers (errors get the trace id of their traceparent). */
  readonly headers?: EnvelopeHeaders;
  /** Pushes: the transport answers at the deadline (whether the push left); the wheel is a backstop. */
  readonly kind?: "call" | "push";
}

/**
 * Told the outcome of one attempt before the caller's promise settles: the client policy's
 * breaker, retry budget and retries (`policy/client.ts`), without a reaction (and a promise) of
 * its own on the attempt's promise.
 */
export interface AttemptOutcome {
  /** Set by the pending call that took it: that call reports the outcome. */
  attached: boolean;
  /** The attempt answered (`now`: a `Date.now()` reading of this instant, if one was taken). */
  ok(now?: number): void;
  /**
   * The attempt failed with `e` (its trace id set): returns what the call settles with instead
   * (a retry), or undefined to reject with `e`.
   */
  failed(e: unknown): Promise<unknown> | undefined;
}

/** How long after its deadline a push's transport may take to say what became of it. */
export const PUSH_BACKSTOP_MS = 1000;

/** A call in flight; told which instance took it (`TakenSink`), when its transport says so. */
export class PendingCall implements Expirable, CallSink, TakenSink {
  bucket = 0;
  prev: Expirable | undefined = undefined;
  next: Expirable | undefined = undefined;
  #done = false;
  readonly #req: PendingRequest;
  readonly #resolve: (v: unknown) => void;
  readonly #reject: (e: unknown) => void;
  /** Where the outcome is counted (metrics on), and when the call started. */
  readonly #series: CallSeries | undefined;
  readonly #t0: number;
  /** The policy's view of this attempt, told the outcome first (when given). */
  readonly #outcome: AttemptOutcome | undefined;
  /** The server series of an in-process call, counted here (`countServer`), and its start. */
  #server: CallSeries | undefined = undefined;
  #serverT0 = 0;
  /** The network transport the call went out on: at the deadline, what it is still waiting for. */
  via: Transport | undefined = undefined;
  /** The endpoint it went to on `via`. */
  endpoint = "";
  /** Watching the instance it went to, until it settles (instance-watch.ts). */
  watch: { drop(p: PendingCall): void } | undefined = undefined;
  /** The instance `watch` watches it on. */
  watchedOn = "";
  /** Where a taken notice for it goes (its client's instance watch): see `taken`. */
  noticeTo: { taken(instanceId: string, p: PendingCall): void } | undefined = undefined;

  /**
   * Starts watching the deadline and the caller's signal (and counting, given a series; telling
   * `outcome` the result before settling, given one).
   */
  constructor(
    req: PendingRequest,
    resolve: (v: unknown) => void,
    reject: (e: unknown) => void,
    series?: CallSeries,
    outcome?: AttemptOutcome,
  ) {
    this.#req = req;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#series = series;
    this.#outcome = outcome;
    if (outcome !== undefined) outcome.attached = true;
    this.#t0 = series === undefined ? 0 : series.begin();
    deadlines.add(this, req.kind === "push" ? req.deadline + PUSH_BACKSTOP_MS : req.deadline);
    req.signal?.addEventListener("abort", this);
  }

  /** The reply arrived (the decoded value). */
  ok(v: unknown): void {
    this.#ok(v, undefined, undefined);
  }

  /** The call failed. */
  fail(e: unknown): void {
    this.#fail(e, undefined);
  }

  /** TakenSink: its transport says `instanceId` took it and runs it (a nats taken notice). */
  taken(instanceId: string): void {
    if (!this.#done && this.watch === undefined) this.noticeTo?.taken(instanceId, this);
  }

  /**
   * An in-process dispatcher with metrics on counts its server side here instead of wrapping
   * this sink (when it has no span to end): both sides share this call's two clock readings.
   */
  countServer(series: CallSeries): void {
    this.#server = series;
    this.#serverT0 = series.begin(this.#series === undefined ? undefined : this.#t0);
  }

  /**
   * CallSink: the in-process handler replied with a checked value (`now`, `at`: the wall clock
   * and `performance.now()` readings of this instant, if the dispatcher took them).
   */
  reply(payload: unknown, now?: number, at?: number): void {
    const server = this.#server;
    this.#ok(payload, server === undefined ? at : server.end(this.#serverT0, "OK", at), now);
  }

  /** The `performance.now()` reading this call's metrics started at; undefined when metrics are off. */
  get startedAt(): number | undefined {
    return this.#series === undefined ? undefined : this.#t0;
  }

  /** CallSink: the in-process handler failed; rebuild the error as a remote caller would. */
  error(err: WireError): void {
    const server = this.#server;
    const at = server === undefined ? undefined : server.end(this.#serverT0, err.code);
    if (!this.#done) this.#fail(fromWireError(err, this.#req.service, "value"), at);
  }

  /** `at`: a `performance.now()` reading of this instant; `now`: a `Date.now()` one (if taken). */
  #ok(v: unknown, at: number | undefined, now: number | undefined): void {
    if (this.#finish()) {
      this.#series?.end(this.#t0, "OK", at);
      const outcome = this.#outcome;
      if (outcome !== undefined)
        try {
          outcome.ok(now);
        } catch (e) {
          this.#reject(e);
          return;
        }
      this.#resolve(v);
    }
  }

  #fail(e: unknown, at: number | undefined): void {
    if (this.#finish()) {
      this.#series?.end(this.#t0, codeOf(e), at);
      const err = withTraceId(e, this.#req.headers, this.#req.service.name);
      const outcome = this.#outcome;
      let instead: Promise<unknown> | undefined;
      if (outcome !== undefined)
        try {
          instead = outcome.failed(err);
        } catch (thrown) {
          this.#reject(thrown);
          return;
        }
      if (instead === undefined) this.#reject(err);
      else this.#resolve(instead);
    }
  }

  /** The deadline passed (called by the wheel). */
  expire(): void {
    const req = this.#req;
    const e = deadlineExceeded(req, this.via?.stalled?.(req.kind ?? "call", this.endpoint, req.headers ?? {}));
    this.fail(req.kind === "push" ? pushFailure(e, req.deadline, "") : e);
  }

  /** The caller's signal aborted. */
  handleEvent(): void {
    // A push cancelled by its caller may already have been written: its fate is unknown.
    const req = this.#req;
    this.fail(req.kind === "push" ? pushFailure(cancelled(req), req.deadline, "") : cancelled(req));
  }

  #finish(): boolean {
    if (this.#done) return false;
    this.#done = true;
    deadlines.remove(this);
    this.#req.signal?.removeEventListener("abort", this);
    if (this.watch !== undefined) this.watch.drop(this);
    return true;
  }
}

/**
 * The error of a call whose deadline passed; given `stalled` (its transport's connection was not
 * up: `Transport.stalled`), DEADLINE_EXCEEDED still, naming the server, with an UNAVAILABLE
 * outage as its cause: as the transport's own wait fails at the deadline (outcome.ts
 * `sendFailure`), so the code does not depend on which timer fires first.
 */
export function deadlineExceeded(req: PendingRequest, stalled?: FanError): FanError {
  const what = `${req.service.name}.${req.method.name}`;
  const details = { deadline: req.deadline };
  return traced(
    req,
    stalled === undefined
      ? new FanError(Code.DEADLINE_EXCEEDED, `${what}: deadline exceeded`, { details })
      : stalled.code === Code.DEADLINE_EXCEEDED
        ? new FanError(Code.DEADLINE_EXCEEDED, `${what}: ${stalled.message}`, { details })
        : new FanError(Code.DEADLINE_EXCEEDED, `${what}: deadline exceeded (${stalled.message})`, {
            cause: stalled,
            details,
          }),
  );
}

/** The error of a call its caller cancelled. */
export function cancelled(req: PendingRequest): FanError {
  return traced(req, new FanError(Code.CANCELLED, `${req.service.name}.${req.method.name}: cancelled by the caller`));
}

function traced(req: PendingRequest, e: FanError): FanError {
  return withTraceId(e, req.headers, req.service.name) as FanError;
}
