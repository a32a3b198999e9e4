/**
 * The client's interceptor chain: `(next) => (req) => ...`. Cross-cutting behaviour (trace
 * context and deadlines now; retries, breakers and metrics later) composes here in one visible
 * order, outermost first: trace → deadline → the app's and client's own interceptors → send.
 */
import { currentContext, edgeTraceparent } from "./callctx.js";
import { deadlines, type Expirable } from "./deadlines.js";
import type { CallOptions, MethodDescriptor, ServiceDescriptor } from "./descriptor.js";
import { Code, FanError } from "./errors.js";
import type { EnvelopeHeaders } from "./transport.js";

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
 * parent); a call made anywhere else starts a new trace. A `traceparent` header passed by the
 * caller wins.
 */
export const traceInterceptor: Interceptor = (next) => (req) => {
  if (req.headers.traceparent === undefined) {
    const parent = currentContext();
    req.headers.traceparent = parent === undefined ? edgeTraceparent() : parent.childTraceparent();
  }
  return next(req);
};

/**
 * Deadlines: the effective deadline is the earliest of the IDL `@timeout` (or `opts.timeout`),
 * `opts.deadline` and the deadline inherited from the current call. A call past it is not
 * sent; a call still running at it fails with DEADLINE_EXCEEDED; an aborted `opts.signal`
 * fails it with CANCELLED.
 */
export const deadlineInterceptor: Interceptor = (next) => (req) => {
  const now = Date.now();
  let deadline = now + (req.opts?.timeout ?? req.method.timeoutMs);
  const explicit = req.opts?.deadline;
  if (explicit !== undefined && explicit < deadline) deadline = explicit;
  const inherited = currentContext()?.deadline;
  if (inherited !== undefined && inherited < deadline) deadline = inherited;
  req.deadline = deadline;
  req.headers.deadline = deadline;
  if (now >= deadline) return Promise.reject(expired(req, deadline));
  const signal = req.signal;
  if (signal?.aborted === true) return Promise.reject(cancelled(req));
  return new Promise<unknown>((resolve, reject) => {
    const pending: Expirable & { done: boolean } = {
      bucket: 0,
      done: false,
      expire: () => settle(() => reject(expired(req, deadline))),
    };
    const onAbort = (): void => settle(() => reject(cancelled(req)));
    const settle = (fn: () => void): void => {
      if (pending.done) return;
      pending.done = true;
      deadlines.remove(pending);
      signal?.removeEventListener("abort", onAbort);
      fn();
    };
    deadlines.add(pending, deadline);
    signal?.addEventListener("abort", onAbort, { once: true });
    next(req).then(
      (v) => settle(() => resolve(v)),
      (e: unknown) => settle(() => reject(e)),
    );
  });
};

function expired(req: OutgoingRequest, deadline: number): FanError {
  const name = `${req.service.name}.${req.method.name}`;
  return new FanError(Code.DEADLINE_EXCEEDED, `${name}: deadline exceeded`, { details: { deadline } });
}

function cancelled(req: OutgoingRequest): FanError {
  return new FanError(Code.CANCELLED, `${req.service.name}.${req.method.name}: cancelled by the caller`);
}
