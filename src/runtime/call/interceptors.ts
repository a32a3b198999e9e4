/**
 * The client's interceptor chain: `(next) => (req) => ...`. Cross-cutting behaviour (trace
 * context and deadlines now; retries, breakers and metrics later) composes here in one visible
 * order, outermost first: trace → deadline → the app's and client's own interceptors → send.
 */
import { currentContext } from "./callctx.js";
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
 * Trace context: a call made inside a handler continues that handler's trace (its span as the
 * parent). A call made anywhere else starts a new trace: `send` generates its traceparent for
 * every serialising transport; an unserialised in-process call leaves it to the callee, which
 * makes the trace id only if something reads it (no span is recorded on the calling side, so
 * the two are indistinguishable, and most local calls never pay for random ids).
 * A `traceparent` header passed by the caller wins.
 */
export const traceInterceptor: Interceptor = (next) => (req) => {
  if (req.headers.traceparent === undefined) {
    const parent = currentContext();
    if (parent !== undefined) req.headers.traceparent = parent.childTraceparent();
  }
  return next(req);
};

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
