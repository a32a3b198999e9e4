/**
 * How a push's deliveries end (docs/decisions.md, 2026-12-07, "a push's `@retry(n)` bounds its
 * deliveries; a push's declared error is final"):
 *
 * - `@retry(n)` on a push bounds its deliveries: at most n + 1, then it is dead-lettered (never
 *   more than the transport's `maxDeliveries`: the lower wins). The queue transports (amqp,
 *   redis, nats, local) read the broker's own count (`x-delivery-count`, XPENDING, JetStream's
 *   `deliveryCount`) against the method's limit where they read it against `maxDeliveries`; on
 *   http, zmq and tcp the server's nack of attempt n + 1 says `final` (acked-push.ts).
 * - A push handler that rejects with an IDL-declared error (its own, or relayed from a call it
 *   made) has answered, whatever the code: the push is dead-lettered at once, as a call's
 *   declared error is never retried.
 */
import type { Logger } from "pino";
import type { ServiceDescriptor } from "../descriptor.js";
import type { Code, FanError } from "../errors.js";
import type { Envelope } from "./transport.js";
import { aboutMessage } from "./log-keys.js";

/** The push methods whose `@retry(n)` allows fewer deliveries than the transport's `max`: method → n + 1. */
export type DeliveryLimits = Readonly<Record<string, number>>;

/** The delivery limits of `service`'s pushes below `max`; undefined when none is. */
export function deliveryLimits(service: ServiceDescriptor | undefined, max: number): DeliveryLimits | undefined {
  if (service === undefined) return undefined;
  let out: Record<string, number> | undefined;
  for (const m of Object.values(service.methods)) {
    if (m.kind !== "push" || m.retry <= 0 || m.retry + 1 >= max) continue;
    out ??= {};
    out[m.name] = m.retry + 1;
  }
  return out;
}

/** `{ limits }` of `service` below `max`, or nothing: to spread into a consumer's options. */
export function limitsOf(service: ServiceDescriptor | undefined, max: number): { limits?: DeliveryLimits } {
  const limits = deliveryLimits(service, max);
  return limits === undefined ? {} : { limits };
}

/** The deliveries `env` gets before it is dead-lettered. */
export function limitOf(limits: DeliveryLimits | undefined, env: Envelope, max: number): number {
  return (env.kind === "push" ? limits?.[env.method] : undefined) ?? max;
}

/** Where the dispatcher marks a push's declared error (a registered symbol: duplicate runtime copies agree). */
const FINAL: unique symbol = Symbol.for("fan.push.final") as never;

/** A push handler's declared error: its name and code (the producer may hear INTERNAL). */
export interface Final {
  readonly name: string;
  readonly code: Code;
}

/**
 * Marks `out`, the error a push handler failed with, as final: with the declared error it
 * answers (`declared`), or, without, as the last attempt its @retry allows (a direct sender's).
 */
export function markFinal(out: FanError, declared?: Final): FanError {
  if (Object.isExtensible(out)) Object.defineProperty(out, FINAL, { value: declared ?? null, enumerable: false });
  return out;
}

/** The declared error a push failed with (final: dead-lettered at once). */
export function finalError(e: unknown): Final | undefined {
  const f = typeof e === "object" && e !== null ? (e as Record<symbol, unknown>)[FINAL] : undefined;
  return f === undefined || f === null ? undefined : (f as Final);
}

/** Whether a push's sender must not send it again: a declared error, or its @retry spent (`markFinal`). */
export function isFinal(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as Record<symbol, unknown>)[FINAL] !== undefined;
}

/** The transports whose push consumers dead-letter a final error themselves (and log it). */
export const QUEUED = new Set(["amqp", "redis", "nats", "local"]);

/**
 * The one warning of a push that failed with a declared error: its method, the error and where
 * it went (`deadLetters`).
 */
export function warnFinal(
  log: Logger,
  fields: Record<string, unknown>,
  env: Envelope,
  { name, code }: Final,
  e: unknown,
  deadLetters: string,
): void {
  log.warn(
    { ...fields, id: env.id, ...aboutMessage(env), error: name, code, err: (e as Error)?.message, deadLetters },
    `push ${env.service}.${env.method} failed with its declared error ${name} (${code}): final, not delivered again; dead-lettered to ${deadLetters}`,
  );
}

/** The warning of a push given up at its method's `@retry(n)` limit, below the transport's. */
export function limitNote(limit: number, max: number): string {
  return limit < max ? ` (its @retry allows ${limit})` : "";
}

/** The longest a failure's `retryAfterMs` holds a redelivery back (a longer one is read as this). */
const MAX_RETRY_AFTER_MS = 60_000;

/** When a failed push or event goes again, and why when not at the transport's own backoff. */
export interface Redelivery {
  /** Delay before the redelivery, ms. */
  readonly delayMs: number;
  /** Why it waits longer than `backoffMs`: what the failure's `retryAfterMs` says, for the log line. */
  readonly reason?: string;
}

/**
 * The delay before redelivering `env` after its handler failed with `e` (docs/decisions.md,
 * 2026-12-07, "a push's redelivery waits out its failure's retryAfterMs"): the transport's own
 * `backoffMs`, or longer when the failure (or an error it wraps: `cause`) says when trying
 * again can help — `details.retryAfterMs`, as a client whose every circuit breaker is open
 * answers (policy/client.ts) — at most `MAX_RETRY_AFTER_MS` and never past the push's
 * ttl.
 */
export function redeliveryDelay(backoffMs: number, e: unknown, env: Envelope): Redelivery {
  const hint = retryAfterOf(e);
  if (hint === undefined || hint.ms <= backoffMs) return { delayMs: backoffMs };
  let ms = Math.min(hint.ms, MAX_RETRY_AFTER_MS);
  // Its ttl drops it (dispatch.ts); its deadline bounded its send only: a queued push is
  // handled without one, and one delivered from a backlog is past it already.
  const { ttl } = env.headers;
  if (typeof ttl === "number") ms = Math.min(ms, ttl - Date.now());
  if (ms <= backoffMs) return { delayMs: backoffMs };
  const delayMs = Math.ceil(ms);
  const why =
    hint.service === undefined
      ? "its failure asks to wait"
      : `the circuit breaker of every ${hint.service} instance is open`;
  return { delayMs, reason: `${why} (retryAfterMs ${Math.ceil(hint.ms)})` };
}

/** The `details.retryAfterMs` of `e` or of an error it wraps (`cause`); `service`: whose breakers are all open. */
function retryAfterOf(e: unknown): { ms: number; service?: string } | undefined {
  let err: unknown = e;
  for (let depth = 0; depth < 4 && err instanceof Error; depth++) {
    const details = (err as { details?: unknown }).details as
      | { retryAfterMs?: unknown; service?: unknown; openBreakers?: unknown }
      | undefined;
    const ms = details?.retryAfterMs;
    if (typeof ms === "number" && ms > 0 && Number.isFinite(ms))
      return typeof details?.service === "string" && Array.isArray(details.openBreakers)
        ? { ms, service: details.service }
        : { ms };
    err = err.cause;
  }
  return undefined;
}

/**
 * The redelivery of a broker's `env` after its `attempt`-th delivery failed with `e`: logs it
 * (info, `fields` and `retryMs`, saying the delay and why when longer than the backoff,
 * `retryDelayMs` doubling per attempt up to 30 s) and returns its delay.
 */
export function redeliver(
  log: Logger,
  fields: Record<string, unknown>,
  retryDelayMs: number,
  attempt: number,
  e: unknown,
  env: Envelope,
): number {
  const backoffMs = Math.min(30_000, retryDelayMs * 2 ** (attempt - 1));
  const { delayMs, reason } = redeliveryDelay(backoffMs, e, env);
  const why = reason === undefined ? "" : ` (${reason})`;
  log.info({ ...fields, retryMs: delayMs }, `delivery failed; redelivering in ${delayMs} ms${why}`);
  return delayMs;
}
