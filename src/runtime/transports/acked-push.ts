/**
 * What the brokerless transports (zmq, tcp) share on the client side: a push is sent until
 * acknowledged — after a nack with UNAVAILABLE (not a redirect: `pushRefusal`) it goes again
 * (attempt + 1) with backoff, until
 * the attempts run out or the deadline nears; a push that never left says so
 * (`maybeDelivered: false`) — and the decoding of reply and nack bodies.
 */
import type { Logger } from "pino";
import { decodeEnvelope, parseJson } from "../codec/wire.js";
import { Code, errorFromWire, FanError, type WireError } from "../errors.js";
import { notSent } from "../call/outcome.js";
import { redirectOf } from "../call/shards.js";
import { onAbort } from "./abort.js";
import { isNotDelivered, notDelivered } from "./not-delivered.js";
import type { Envelope, SendOptions } from "./transport.js";
import { isFinal } from "./push-ends.js";

/** Push retry options of a brokerless transport. */
export interface PushRetryOptions {
  /** Sends per push after nacks (default 5). */
  readonly pushAttempts?: number;
  /** First delay between them, doubled up to 1 s (default 50 ms). */
  readonly pushBackoffMs?: number;
}

/**
 * Sends `env` with `send` (resolves undefined on ack, else the refusal) until acknowledged;
 * throws the refusal when it is not UNAVAILABLE, the attempts run out or the deadline nears.
 */
export async function pushUntilAcked(
  env: Envelope,
  opts: SendOptions,
  retry: PushRetryOptions,
  send: (sent: Envelope) => Promise<FanError | undefined>,
  log: Logger,
  transport: string,
): Promise<void> {
  const attempts = Math.max(1, retry.pushAttempts ?? 5);
  let delay = retry.pushBackoffMs ?? 50;
  let attempt = typeof env.headers.attempt === "number" ? env.headers.attempt : 1;
  for (let i = 1; ; i++) {
    let err: FanError | undefined;
    try {
      err = await send({ ...env, headers: { ...env.headers, attempt } });
    } catch (e) {
      // A first attempt that never left (the connection is known down, or never came up) tells
      // the producer so (`maybeDelivered` false) and stays marked for failover to another
      // instance. After a nack the push did reach a server: neither holds.
      if (!isNotDelivered(e)) throw e;
      if (i === 1) throw notDelivered(notSent(e));
      const refused = e as FanError;
      throw new FanError(refused.code, refused.message, { cause: refused });
    }
    if (err === undefined) return;
    if (!sendAgain(err) || i >= attempts || Date.now() + delay >= opts.deadline) throw err;
    log.debug({ id: env.id, attempt, err: err.message }, `${transport}: push not acknowledged, sending again`);
    await sleep(delay, opts.signal);
    delay = Math.min(delay * 2, 1000);
    attempt++;
  }
}

/**
 * What a server answers for a push its handler refused: UNAVAILABLE (the producer sends it
 * again), with the details of a non-owner's redirect kept, which the producer's shard route
 * follows to the owner (`sendAgain` is false for it: the same instance would redirect it again).
 */
export function pushRefusal(e: unknown): WireError {
  const err = FanError.from(e);
  const message = `push not acknowledged: ${err.message}`;
  // A declared error, or the last attempt its @retry allows: the producer does not send it again.
  if (isFinal(err)) return { code: Code.UNAVAILABLE, message: `${message} (final)`, details: { final: true } };
  return redirectOf(err) === undefined
    ? { code: Code.UNAVAILABLE, message }
    : { code: Code.UNAVAILABLE, message, details: err.details };
}

/** A `pushRefusal` read back: a redirect's details kept. */
export function refusalError(payload: unknown, fallback: string): FanError {
  const err = errorFromWire(payload, fallback);
  const details = (payload as { details?: unknown } | null | undefined)?.details;
  if (details === undefined) return err;
  const withDetails = new FanError(err.code, err.message, { details });
  return redirectOf(withDetails) === undefined && !finalRefusal(withDetails) ? err : withDetails;
}

/** Whether a push refused with `err` is sent to the same instance again: UNAVAILABLE, not a redirect. */
export function sendAgain(err: FanError): boolean {
  return err.code === Code.UNAVAILABLE && redirectOf(err) === undefined && !finalRefusal(err);
}

/** A refusal of a push whose handler's answer is final (`pushRefusal`): `details.final`. */
function finalRefusal(err: FanError): boolean {
  return (err.details as { final?: unknown } | undefined)?.final === true;
}

/** The error a nack's body carries. */
export function nackError(body: Buffer): FanError {
  try {
    return refusalError(parseJson(body, { maxBytes: 64 * 1024 }), "push refused");
  } catch {
    return new FanError(Code.UNKNOWN, "push refused with a malformed answer");
  }
}

/** Decodes a reply envelope; a malformed one is INTERNAL (RESOURCE_EXHAUSTED when too large). */
export function decodeReply(body: Buffer, endpoint: string, maxBytes: number): Envelope {
  try {
    return decodeEnvelope(body, { maxBytes });
  } catch (e) {
    throw malformedReply(e, endpoint);
  }
}

/** The error a reply from `endpoint` that could not be read fails its call with: INTERNAL, or RESOURCE_EXHAUSTED when too large. */
export function malformedReply(e: unknown, endpoint: string): FanError {
  const err = FanError.from(e);
  return new FanError(
    err.code === Code.RESOURCE_EXHAUSTED ? err.code : Code.INTERNAL,
    `malformed reply from ${endpoint}: ${err.message}`,
    { cause: e },
  );
}

/** Waits `ms`; rejects with CANCELLED when `signal` aborts first (the pause between push attempts). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new FanError(Code.CANCELLED, "cancelled"));
      return;
    }
    const stop = onAbort(signal, () => {
      clearTimeout(timer);
      reject(new FanError(Code.CANCELLED, "cancelled"));
    });
    const timer = setTimeout(() => {
      stop();
      resolve();
    }, ms);
  });
}
