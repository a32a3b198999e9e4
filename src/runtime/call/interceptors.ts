/**
 * The client's interceptor chain: `(next) => (req) => ...`. Cross-cutting behaviour (trace
 * context and deadlines now; retries, breakers and metrics later) composes here in one visible
 * order, outermost first: trace → deadline → the app's and client's own interceptors → send.
 */
import { currentContext } from "./callctx.js";
import { beginTrace, withTraceId } from "../telemetry/calls.js";
import { endWith } from "../telemetry/tracing.js";
import { cancelled, deadlineExceeded } from "./pending.js";
import type { CallOptions, MethodDescriptor, ServiceDescriptor } from "../descriptor.js";
import type { EnvelopeHeaders } from "../transports/transport.js";

/** One outgoing call or push as interceptors see it; interceptors may change its fields. */
export interface OutgoingRequest {
  readonly kind: "call" | "push";
  readonly service: ServiceDescriptor;
  readonly method: MethodDescriptor;
  /** The typed input value. */
  readonly input: unknown;
  readonly opts: CallOptions | undefined;
  /** Absolute deadline, epoch ms (set by the deadline interceptor). */
  deadline: number;
  /** Envelope headers to send. */
  headers: EnvelopeHeaders;
  signal: AbortSignal | undefined;
}

/** The rest of the chain: resolves with the decoded reply (undefined for void and pushes). */
export type Next = (req: OutgoingRequest) => Promise<unknown>;

/** A client interceptor. */
export type Interceptor = (next: Next) => Next;

/** Composes interceptors around `terminal`, the first one outermost. */
export function chain(interceptors: readonly Interceptor[], terminal: Next): Next {
  let next = terminal;
  for (let i = interceptors.length - 1; i >= 0; i--) next = (interceptors[i] as Interceptor)(next);
  return next;
}

/**
 * Trace context, at the head of the chain so every interceptor inside sees the call's
 * `traceparent`: the client span when an OpenTelemetry SDK is registered (ended when the call
 * settles), otherwise the current handler's span as the parent or a new trace. A
 * `traceparent` header passed by the caller wins. Errors carry the trace id (`err.traceId`).
 */
export const traceInterceptor: Interceptor = tracing(true);

/** The trace interceptor, making spans only when `spans` (an App with tracing off passes false). */
export function tracing(spans: boolean): Interceptor {
  return (next) => (req) => {
    const span = beginTrace(req, spans, true);
    const p = next(req).catch((e: unknown) => {
      throw withTraceId(e, req.headers, req.service.name);
    });
    return span === undefined ? p : endWith(span, p);
  };
}

/**
 * Deadlines: the effective deadline is the earliest of the IDL `@timeout` (or `opts.timeout`),
 * `opts.deadline` and the deadline inherited from the current call; it travels in the
 * envelope. A call already past it, or whose signal has aborted, is not sent. `send` then
 * fails each attempt at that absolute deadline (DEADLINE_EXCEEDED) or when the signal aborts
 * (CANCELLED), so interceptors placed inside this one (retries) stay within it.
 */
export const deadlineInterceptor: Interceptor = (next) => (req) => {
  const now = Date.now();
  const opts = req.opts;
  let deadline = now + (opts?.timeout ?? req.method.timeoutMs);
  const explicit = opts?.deadline;
  if (explicit !== undefined && explicit < deadline) deadline = explicit;
  const inherited = currentContext()?.deadline;
  if (inherited !== undefined && inherited < deadline) deadline = inherited;
  req.deadline = deadline;
  req.headers.deadline = deadline;
  if (now >= deadline) return Promise.reject(deadlineExceeded(req));
  if (req.signal?.aborted === true) return Promise.reject(cancelled(req));
  return next(req);
};
