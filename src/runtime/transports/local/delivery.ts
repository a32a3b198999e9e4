/**
 * At-least-once delivery inside the process: a message is handed to a consumer and counts as
 * done only when the consumer's promise resolves; a rejection delivers it again (to the same
 * or another consumer) after a short backoff, up to `maxAttempts`, then it is dead-lettered
 * (logged). Shared by the push queues and the event topics of the local hub.
 */
import type { Logger } from "pino";
import type { Envelope } from "../transport.js";
import type { AttemptObserver } from "./watch.js";
import { finalError, redeliveryDelay, warnFinal } from "../push-ends.js";

/** Redelivery settings. */
export interface RedeliveryOptions {
  /** Deliveries of one message before it is given up (default 5). */
  readonly maxAttempts: number;
  /** Delay before the first redelivery, doubled each time (default 20 ms). */
  readonly backoffMs: number;
}

/** Default redelivery settings. */
export const DEFAULT_REDELIVERY: RedeliveryOptions = { maxAttempts: 5, backoffMs: 20 };

/**
 * Redeliveries waiting for their timer, and how many local transports are open. A waiting
 * redelivery keeps the process alive only while one is: after the last closes (the App
 * stopped), a wait of up to 60 s (a breaker's `retryAfterMs`) must not hold a script's exit.
 * Its message is the local transport's, which keeps nothing across a process's end anyway.
 */
const waiting = new Set<NodeJS.Timeout>();
let openTransports = 0;

/** Counts a local transport as open until the returned function is called (its close). */
export function holdRedeliveries(): () => void {
  if (openTransports++ === 0) for (const t of waiting) t.ref();
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--openTransports === 0) for (const t of waiting) t.unref();
  };
}

/** The envelope of the `attempt`-th delivery of `env`. */
export function withAttempt(env: Envelope, attempt: number): Envelope {
  if (attempt === 1 && env.headers.attempt === undefined) return env;
  return { ...env, headers: { ...env.headers, attempt } };
}

/**
 * Delivers `env` through `send` (which picks a consumer each time and may return undefined
 * when none is left), retrying on rejection. Never rejects; `settled` is called at the end.
 */
export function deliver(
  env: Envelope,
  send: (env: Envelope) => Promise<void> | undefined,
  opts: RedeliveryOptions,
  log: Logger,
  settled: (outcome: "acked" | "dead" | "orphaned", last: Envelope) => void,
  observer?: AttemptObserver,
): void {
  const attemptOnce = (attempt: number): void => {
    const copy = withAttempt(env, attempt);
    const p = send(copy);
    if (p === undefined) {
      settled("orphaned", copy);
      return;
    }
    observer?.attempt(attempt);
    p.then(
      () => settled("acked", copy),
      (e: unknown) => {
        const final = finalError(e);
        if (final !== undefined) {
          observer?.failed(attempt, e, undefined);
          warnFinal(log, { attempt }, env, final, e, "nowhere (the local transport keeps no dead letters)");
          settled("dead", copy);
          return;
        }
        const last = attempt >= opts.maxAttempts;
        const retryMs = last ? undefined : redeliveryDelay(opts.backoffMs * 2 ** (attempt - 1), e, copy).delayMs;
        observer?.failed(attempt, e, retryMs);
        if (retryMs === undefined) {
          log.error(
            { err: e, id: env.id, targetService: env.service, targetMethod: env.method, attempts: attempt },
            `${env.kind} given up after ${attempt} attempts`,
          );
          settled("dead", copy);
          return;
        }
        const t = setTimeout(() => {
          waiting.delete(t);
          attemptOnce(attempt + 1);
        }, retryMs);
        if (openTransports === 0) t.unref();
        waiting.add(t);
      },
    );
  };
  attemptOnce(typeof env.headers.attempt === "number" ? env.headers.attempt : 1);
}
