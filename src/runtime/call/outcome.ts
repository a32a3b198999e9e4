/**
 * What a failed push tells its caller (docs/runtime.md, "Pushes and broker outages"): every
 * push error carries `details.maybeDelivered`. `false`: the push provably never reached the
 * broker or server (not sent, refused, unroutable), so sending it again cannot duplicate it.
 * `true`: it may have been accepted (sent, but no confirm before the deadline or the connection
 * went): send it again with the same idempotency key and the consumer's dedupe window drops the
 * duplicate. Transports mark what they know with `notSent`; anything unmarked counts as maybe.
 */
import { Code, FanError } from "../errors.js";

/** The same error, marked as "this push never left": `details.maybeDelivered` is false. */
export function notSent(e: unknown): FanError {
  const err = FanError.from(e, Code.UNAVAILABLE);
  return withDelivery(err, err.code, err.message, false);
}

/** True unless the error says the push never left (`details.maybeDelivered === false`). */
export function maybeDelivered(e: unknown): boolean {
  const d = FanError.is(e) ? (e.details as { maybeDelivered?: unknown } | undefined) : undefined;
  return d?.maybeDelivered !== false;
}

/**
 * The error a push's caller gets: a failure at or after the deadline is DEADLINE_EXCEEDED,
 * and every push error says `maybeDelivered`.
 */
export function pushFailure(e: unknown, deadline: number, what: string): FanError {
  const err = FanError.from(e, Code.UNAVAILABLE);
  const maybe = maybeDelivered(err);
  if (Date.now() >= deadline && err.code !== Code.DEADLINE_EXCEEDED)
    return withDelivery(err, Code.DEADLINE_EXCEEDED, `${what}: deadline exceeded (${err.message})`, maybe);
  const d = err.details as { maybeDelivered?: unknown } | undefined;
  return d?.maybeDelivered === maybe ? err : withDelivery(err, err.code, err.message, maybe);
}

/**
 * What a call or push gets when its transport failed: at or after the deadline it is
 * DEADLINE_EXCEEDED whatever the transport said (kept as the cause: "redis unreachable until
 * the deadline"), before it the transport's own code (UNAVAILABLE when it says nothing better).
 */
export function sendFailure(kind: "call" | "push", e: unknown, deadline: number, what: string): FanError {
  if (kind === "push") return pushFailure(e, deadline, what);
  const err = FanError.from(e, Code.UNAVAILABLE);
  if (Date.now() < deadline || err.code === Code.DEADLINE_EXCEEDED) return err;
  return new FanError(Code.DEADLINE_EXCEEDED, `${what}: deadline exceeded (${err.message})`, {
    cause: err,
    details: { deadline },
  });
}

function withDelivery(err: FanError, code: Code, message: string, maybe: boolean): FanError {
  const base = typeof err.details === "object" && err.details !== null ? err.details : {};
  const out = new FanError(code, message, { cause: err, details: { ...base, maybeDelivered: maybe } });
  // The trace id the client gave the error it wraps (a push's caller finds its trace by it too).
  out.traceId = err.traceId;
  return out;
}

/** True when the error already says whether the push may have left. */
export function hasDeliveryFlag(e: unknown): boolean {
  const d = FanError.is(e) ? (e.details as { maybeDelivered?: unknown } | undefined) : undefined;
  return typeof d?.maybeDelivered === "boolean";
}

/** Refuses an idempotency key that cannot be a push id. */
export function checkIdempotencyKey(key: unknown): void {
  if (key === undefined) return;
  if (typeof key !== "string" || key.length === 0 || key.length > 200)
    throw new FanError(Code.INVALID_ARGUMENT, "idempotencyKey must be a string of 1 to 200 characters");
}
