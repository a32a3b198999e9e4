/**
 * Pushes from a broker's queue (amqp, redis, nats) that the instance refused for its own state,
 * not for anything in the message: the `onShards` gaining its shard still runs and held work
 * already takes its share of the transport's window, the hook failed, the instance is at its
 * bound of held calls or sheds load (`maxInFlight`). Returned to the broker, such a push would
 * count as a failed delivery, and a hook slow for `maxDeliveries` redeliveries would
 * dead-letter a push whose handler never ran. So its consumer keeps it in hand instead (not
 * acknowledged, not returned: the broker counts no delivery; its heartbeat keeps it from being
 * redelivered elsewhere) and offers it again after a backoff, until it is taken or the push's
 * deadline (else its ttl; at most `KEPT_MAX_MS`) would pass; then its refusal counts as before. The dispatcher marks
 * such a refusal with that deadline (`keep`); a refusal without the mark counts at once.
 * docs/decisions.md, 2026-12-07.
 */
import type { Logger } from "pino";
import { FanError } from "../errors.js";
import { aboutMessage } from "./log-keys.js";
import type { Envelope } from "./transport.js";

const KEPT_UNTIL = Symbol.for("fan.keptUntil");

/**
 * The longest a push is kept, whatever its deadline: an unacknowledged message held past
 * RabbitMQ's `consumer_timeout` (30 min by default) gets its whole channel closed, and every
 * push on it redelivered and counted.
 */
export const KEPT_MAX_MS = 60_000;

/** The longest pause between two offers of a kept push (its first is the transport's `retryDelayMs`). */
export const KEPT_MAX_DELAY_MS = 1000;

/** Marks `err`, a refusal for the instance's state, as one the push may be kept for until `until` (epoch ms). */
export function keep(err: FanError, until: number): FanError {
  (err as unknown as Record<symbol, number>)[KEPT_UNTIL] = until;
  return err;
}

/** Until when a push refused with `e` may be kept (`keep`), or undefined: its refusal counts. */
export function keptUntil(e: unknown): number | undefined {
  if (!FanError.is(e)) return undefined;
  const until = (e as unknown as Record<symbol, unknown>)[KEPT_UNTIL];
  return typeof until === "number" ? until : undefined;
}

/**
 * The `deliver` of one push consumer: hands each push to `push` (the instance's Inbound), and
 * keeps one refused with a `keep` mark, offering it again after `firstDelayMs`, doubling up
 * to `KEPT_MAX_DELAY_MS`. A kept push holds its consumer's slot meanwhile, as a failed one
 * waiting for its redelivery does: at most `max` are kept at once, so most of the share of the
 * window that held work leaves free stays free; past that a refusal counts, as before.
 */
export class KeptPushes {
  #kept = 0;

  constructor(
    private readonly push: (env: Envelope) => Promise<void>,
    private readonly firstDelayMs: number,
    private readonly max: number,
    private readonly log: Logger,
  ) {}

  readonly deliver = async (env: Envelope): Promise<void> => {
    let delay = Math.max(1, this.firstDelayMs);
    let keeping = false;
    // The first refusal's bound holds: a push with neither deadline nor ttl gets a new one per offer.
    let bound: number | undefined;
    try {
      for (let offers = 1; ; offers++) {
        try {
          return await this.push(env);
        } catch (e) {
          const until = keptUntil(e);
          if (until === undefined) throw e;
          bound ??= Math.min(until, Date.now() + KEPT_MAX_MS);
          if (Date.now() + delay >= bound) throw e;
          if (!keeping) {
            if (this.#kept >= this.max) throw e;
            this.#kept++;
            keeping = true;
          }
          this.log.debug(
            { id: env.id, ...aboutMessage(env), offers, err: (e as Error).message },
            `push kept: offered again in ${delay} ms`,
          );
        }
        await new Promise((r) => setTimeout(r, delay).unref());
        delay = Math.min(delay * 2, KEPT_MAX_DELAY_MS);
      }
    } finally {
      if (keeping) this.#kept--;
    }
  };
}

/** How many pushes a consumer of `prefetch` keeps at once: an eighth of it (half the quarter held work leaves), at least one. */
export function keptBound(prefetch: number): number {
  return Math.max(1, Math.floor(prefetch / 8));
}
