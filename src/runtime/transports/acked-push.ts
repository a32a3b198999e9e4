/**
 * What the brokerless transports (zmq, tcp) share on the client side: a push is sent until
 * acknowledged — after a nack with UNAVAILABLE it goes again (attempt + 1) with backoff, until
 * the attempts run out or the deadline nears — and the decoding of reply and nack bodies.
 */
import type { Logger } from "pino";
import { decodeEnvelope, parseJson } from "../codec/wire.js";
import { Code, errorFromWire, FanError } from "../errors.js";
import { onAbort } from "./abort.js";
import type { Envelope, SendOptions } from "./transport.js";

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
    const err = await send({ ...env, headers: { ...env.headers, attempt } });
    if (err === undefined) return;
    if (err.code !== Code.UNAVAILABLE || i >= attempts || Date.now() + delay >= opts.deadline) throw err;
    log.debug({ id: env.id, attempt, err: err.message }, `${transport}: push not acknowledged, sending again`);
    await sleep(delay, opts.signal);
    delay = Math.min(delay * 2, 1000);
    attempt++;
  }
}

/** The error a nack's body carries. */
export function nackError(body: Buffer): FanError {
  try {
    return errorFromWire(parseJson(body, { maxBytes: 64 * 1024 }), "push refused");
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
