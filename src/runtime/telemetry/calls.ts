/**
 * Telemetry of one call, both sides: the trace made at the head of the client chain (a span
 * with an SDK, fan's own ids without), the trace id put on every error a call rejects with,
 * and the server side's span and counted outcome (`ObservedSink`, wrapped around the sink a
 * dispatcher reports to). The call path calls these; the logic lives here.
 */
import type { Span } from "@opentelemetry/api";
import { isSpanContextValid } from "@opentelemetry/api";
import { currentContext, edgeTraceparent, type CallCtx } from "../call/callctx.js";
import type { CallSink } from "../call/dispatch.js";
import type { OutgoingRequest } from "../call/interceptors.js";
import { calledService, copyError, FanError, markCalled, type WireError } from "../errors.js";
import { parseTraceparent } from "../ids.js";
import type { EnvelopeHeaders } from "../transports/transport.js";
import type { AppMetrics, CallSeries } from "./metrics.js";
import { CALL_SPAN, failSpan, sdkTracer, startClientSpan, startProducerSpan, startServerSpan } from "./tracing.js";

/** What the call path needs of an App's telemetry. */
export interface CallTelemetry {
  /** Undefined when metrics are off. */
  readonly metrics: AppMetrics | undefined;
  /** False when tracing is off (no spans even with an SDK). */
  readonly tracing: boolean;
}

/**
 * Makes the trace of an outgoing call at the head of the chain, so every interceptor sees its
 * `traceparent`: the client span when an SDK is registered; otherwise the current handler's
 * span as the parent, or (when `eager`, or the caller asked with `onTrace`) a new trace. A
 * `traceparent` header the caller passed is kept (with an SDK, it is the span's parent).
 * Returns the client span to end when the call settles, undefined without an SDK.
 */
export function beginTrace(
  req: OutgoingRequest,
  tracing: boolean,
  eager: boolean,
  parent = currentContext(),
): Span | undefined {
  const headers = req.headers;
  const tracer = tracing ? sdkTracer() : undefined;
  let span: Span | undefined;
  if (tracer !== undefined) {
    span = startClientSpan(tracer, req.service.name, req.method.name, req.kind, headers, parent);
    (headers as Record<symbol, Span>)[CALL_SPAN] = span;
  } else if (headers.traceparent === undefined) {
    if (parent !== undefined) headers.traceparent = parent.childTraceparent();
    else if (eager) headers.traceparent = edgeTraceparent();
  }
  const onTrace = req.opts?.onTrace;
  if (onTrace !== undefined) {
    headers.traceparent ??= edgeTraceparent();
    const tp = parseTraceparent(headers.traceparent);
    if (tp !== undefined) onTrace({ traceId: tp.traceId, spanId: tp.spanId });
  }
  return span;
}

/**
 * Puts the call's trace id on an error it rejects with (`err.traceId`). A call that never made
 * a trace (an in-process call nobody traced) gets one now, written into its headers. `service`:
 * the called service, marked on the error (`markCalled`) so a handler that rejects with it is
 * seen to relay it.
 */
export function withTraceId(e: unknown, headers: EnvelopeHeaders | undefined, service?: string): unknown {
  if (!FanError.is(e)) return e;
  let err = e;
  if (headers !== undefined) {
    if (headers.traceparent === undefined && !Object.isFrozen(headers)) headers.traceparent = edgeTraceparent();
    const traceId = parseTraceparent(headers.traceparent)?.traceId;
    // One error object another call was rejected with already (a lost connection fails all its
    // calls with one): this call gets a copy, with its own trace id and service.
    const marked = calledService(err);
    if ((err.traceId !== undefined && err.traceId !== traceId) || (marked !== undefined && marked !== service))
      err = copyError(err);
    err.traceId ??= traceId;
  }
  if (service !== undefined) markCalled(err, service);
  return err;
}

/** The code a call ended with, for metrics: "OK" or the error's code. */
export function codeOf(e: unknown): string {
  return FanError.is(e) ? e.code : "UNKNOWN";
}

/**
 * A served call's sink that counts the outcome in its series and ends its server span before
 * passing the outcome on.
 */
export class ObservedSink implements CallSink {
  readonly #inner: CallSink;
  readonly #series: CallSeries | undefined;
  readonly #t0: number;
  span: Span | undefined = undefined;

  constructor(inner: CallSink, series: CallSeries | undefined) {
    this.#inner = inner;
    this.#series = series;
    this.#t0 = series === undefined ? 0 : series.begin();
  }

  reply(payload: unknown, now?: number, at?: number): void {
    const t = this.#series?.end(this.#t0, "OK", at) ?? at;
    this.span?.end();
    this.#inner.reply(payload, now, t);
  }

  error(err: WireError): void {
    this.#series?.end(this.#t0, err.code);
    if (this.span !== undefined) failSpan(this.span, new Error(err.message), err.code);
    this.#inner.error(err);
  }
}

/**
 * The server span of a served call, push or event (undefined without an SDK); the call
 * context adopts its ids, so log lines and nested calls carry them.
 */
export function serverSpan(
  tel: CallTelemetry,
  ctx: CallCtx,
  kind: "call" | "push" | "event",
  headers: Readonly<EnvelopeHeaders>,
  attempt: number,
  transport: string,
): Span | undefined {
  const tracer = tel.tracing ? sdkTracer() : undefined;
  if (tracer === undefined) return undefined;
  const span = startServerSpan(tracer, ctx.service, ctx.method, kind, headers, attempt);
  if (span.isRecording()) span.setAttribute("fan.transport", transport);
  const sc = span.spanContext();
  if (isSpanContextValid(sc)) ctx.useSpan(sc.traceId, sc.spanId);
  return span;
}

/**
 * The trace of something produced, an event or a state update: a PRODUCER span (ended at
 * once) with an SDK; otherwise the current handler's span as the parent, or a new trace.
 * Writes `traceparent` (and `tracestate`) into `headers`; a `traceparent` already there is the parent.
 */
export function traceProduced(service: string, name: string, kind: "event" | "state", headers: EnvelopeHeaders): void {
  const parent = currentContext();
  const tracer = sdkTracer();
  if (tracer !== undefined) {
    const attrs = { "messaging.system": "fan", "fan.kind": kind, "rpc.service": service, "fan.name": name };
    startProducerSpan(tracer, `${service}/${name}`, attrs, headers, parent).end();
    return;
  }
  headers.traceparent ??= parent === undefined ? edgeTraceparent() : parent.childTraceparent();
}
