/**
 * Tracing through the OpenTelemetry API only: the application registers an SDK and an
 * exporter (or none). Owns the client span of a call or push, the server span of a handled
 * call, push or event, the producer span of an event or state update, and the W3C
 * `traceparent`/`tracestate` they write into envelope headers (every transport carries those).
 *
 * With no SDK registered nothing here allocates a span: `sdkTracer()` is two property reads,
 * and fan's own ids (ids.ts, callctx.ts) keep trace ids flowing for logs and errors.
 */
import {
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanContext,
  type Tracer,
  ProxyTracerProvider,
  createTraceState,
} from "@opentelemetry/api";
import { FanError } from "../errors.js";
import { formatTraceparent, parseTraceparent } from "../ids.js";
import type { EnvelopeHeaders } from "../transports/transport.js";

/** The instrumentation scope name of fan's spans. */
export const TRACER_NAME = "fan";

let cached: Tracer | undefined;

/**
 * The SDK's tracer, or undefined when no SDK is registered (then no span is made at all).
 * Cached once found: a registered provider stays registered for the process.
 */
export function sdkTracer(): Tracer | undefined {
  if (cached !== undefined) return cached;
  const provider = trace.getTracerProvider();
  const t =
    provider instanceof ProxyTracerProvider ? provider.getDelegateTracer(TRACER_NAME) : provider.getTracer(TRACER_NAME);
  if (t !== undefined) cached = t;
  return t;
}

/** Forgets the cached tracer (tests that register and unregister SDKs). */
export function resetTracer(): void {
  cached = undefined;
}

/** The fan-side parent of a span: a handler's call context (its trace and span ids). */
export interface FanParent {
  readonly traceId: string;
  readonly spanId: string;
}

/**
 * The context a new span's parent comes from, in this order: a `traceparent` the caller put in
 * the headers itself, the active OpenTelemetry span, the fan call being served.
 */
function parentContext(headers: EnvelopeHeaders, fan: FanParent | undefined): Context {
  const given = remoteContext(headers);
  if (given !== undefined) return given;
  const active = context.active();
  if (trace.getSpanContext(active) !== undefined) return active;
  if (fan === undefined) return active;
  return trace.setSpanContext(active, { traceId: fan.traceId, spanId: fan.spanId, traceFlags: 1, isRemote: false });
}

/** The remote parent a `traceparent` (and `tracestate`) header names, if valid. */
export function remoteContext(headers: Readonly<EnvelopeHeaders>): Context | undefined {
  const tp = parseTraceparent(headers.traceparent);
  if (tp === undefined) return undefined;
  const sc: SpanContext = {
    traceId: tp.traceId,
    spanId: tp.spanId,
    traceFlags: Number.parseInt(tp.flags, 16) & 1,
    isRemote: true,
  };
  const ts = headers.tracestate;
  if (typeof ts === "string" && ts !== "") sc.traceState = createTraceState(ts);
  return trace.setSpanContext(ROOT_CONTEXT, sc);
}

/** Writes `span`'s context as `traceparent` (and `tracestate`) into `headers`. */
export function inject(span: Span, headers: EnvelopeHeaders): void {
  const sc = span.spanContext();
  headers.traceparent = formatTraceparent(sc.traceId, sc.spanId, (sc.traceFlags & 1) === 1 ? "01" : "00");
  const ts = sc.traceState?.serialize();
  if (ts !== undefined && ts !== "") headers.tracestate = ts;
}

const CLIENT = { kind: SpanKind.CLIENT };
const PRODUCER = { kind: SpanKind.PRODUCER };

/**
 * The client span of an outgoing call or push, started at the head of the interceptor chain
 * and written into its headers; undefined without an SDK.
 */
export function startClientSpan(
  tracer: Tracer,
  service: string,
  method: string,
  kind: "call" | "push",
  headers: EnvelopeHeaders,
  fan: FanParent | undefined,
): Span {
  const span = tracer.startSpan(
    `${service}/${method}`,
    kind === "push" ? PRODUCER : CLIENT,
    parentContext(headers, fan),
  );
  if (span.isRecording())
    span.setAttributes({ "rpc.system": "fan", "rpc.service": service, "rpc.method": method, "fan.kind": kind });
  inject(span, headers);
  return span;
}

/**
 * The span of one attempt of a call the policy chain runs (retries and hedges each get one):
 * a CLIENT child of the call's span, whose context `callTraceparent` holds; written into
 * `headers`, so the server's span is the attempt's child.
 */
export function startAttemptSpan(
  tracer: Tracer,
  service: string,
  method: string,
  attempt: number,
  instanceId: string,
  transport: string,
  callTraceparent: string,
  headers: EnvelopeHeaders,
): Span {
  const parent = remoteContext({ traceparent: callTraceparent }) ?? context.active();
  const span = tracer.startSpan(`${service}/${method} attempt ${attempt}`, CLIENT, parent);
  if (span.isRecording())
    span.setAttributes({
      "rpc.system": "fan",
      "rpc.service": service,
      "rpc.method": method,
      "fan.attempt": attempt,
      "fan.instance": instanceId,
      "fan.transport": transport,
    });
  inject(span, headers);
  return span;
}

/** The producer span of an event or state update: written into `headers`, ended at once by the caller. */
export function startProducerSpan(
  tracer: Tracer,
  name: string,
  attrs: Attributes,
  headers: EnvelopeHeaders,
  fan: FanParent | undefined,
): Span {
  const span = tracer.startSpan(name, PRODUCER, parentContext(headers, fan));
  if (span.isRecording()) span.setAttributes(attrs);
  inject(span, headers);
  return span;
}

/** Where an outgoing call keeps its client span on its headers (a symbol: never sent; hedges copy it). */
export const CALL_SPAN: unique symbol = Symbol("fan.callSpan");

/**
 * Records on a call's span that attempt `attempt` of a sharded `@fallback` call went to another
 * instance (`to`) because its owner (`from`) refused it: the event `fan.shard_fallback`. The
 * first attempt has no span of its own, so this is where its fallback shows.
 */
export function fallbackEvent(headers: EnvelopeHeaders, attempt: number, from: string, to: string): void {
  const span = (headers as Record<symbol, Span | undefined>)[CALL_SPAN];
  if (span === undefined || !span.isRecording()) return;
  span.addEvent("fan.shard_fallback", {
    "fan.attempt": attempt,
    "fan.shard_fallback_from": from,
    "fan.instance": to,
  });
}

/** Ends a client span when `p` settles, recording the error code; returns `p`'s outcome. */
export function endWith<T>(span: Span, p: Promise<T>): Promise<T> {
  return p.then(
    (v) => {
      span.end();
      return v;
    },
    (e: unknown) => {
      failSpan(span, e);
      throw e;
    },
  );
}

/** Marks a span failed with the error's code and message, and ends it. */
export function failSpan(span: Span, e: unknown, code?: string): void {
  if (span.isRecording()) {
    const c = code ?? (FanError.is(e) ? e.code : "UNKNOWN");
    span.setAttribute("fan.code", c);
    span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
  }
  span.end();
}

/**
 * The server span of a handled call (SERVER), push or event (CONSUMER). A call is a child of
 * the caller's span; a push or event is a child too and also links to its producer, so a
 * redelivery days later still points at the span that sent it.
 */
export function startServerSpan(
  tracer: Tracer,
  service: string,
  method: string,
  kind: "call" | "push" | "event",
  headers: Readonly<EnvelopeHeaders>,
  attempt: number,
): Span {
  const parent = remoteContext(headers) ?? context.active();
  const links: Link[] = [];
  if (kind !== "call") {
    const sc = trace.getSpanContext(parent);
    if (sc !== undefined) links.push({ context: sc });
  }
  const span = tracer.startSpan(
    `${service}/${method}`,
    { kind: kind === "call" ? SpanKind.SERVER : SpanKind.CONSUMER, links },
    parent,
  );
  if (span.isRecording()) {
    span.setAttributes({ "rpc.system": "fan", "rpc.service": service, "rpc.method": method, "fan.kind": kind });
    if (attempt > 1) span.setAttribute("fan.attempt", attempt);
  }
  return span;
}

/** Runs `fn(...args)` with `span` as the active OpenTelemetry span. */
export function withSpan<A extends unknown[], R>(span: Span, fn: (...args: A) => R, ...args: A): R {
  return context.with(trace.setSpan(context.active(), span), fn, undefined, ...args);
}

/** The trace id in a `traceparent` header, if valid. */
export function traceIdOf(headers: Readonly<EnvelopeHeaders>): string | undefined {
  return parseTraceparent(headers.traceparent)?.traceId;
}
