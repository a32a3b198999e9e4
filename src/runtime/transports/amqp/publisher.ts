/**
 * Confirmed publishing for pushes and events. One confirm channel carries every publish; the
 * broker acknowledges them in batches (`multiple`) when many are in flight, and each caller
 * resolves when its own message is confirmed. A publish that is lost with its channel is sent
 * again on the next channel until its deadline (at least once), so nothing vanishes silently:
 * it is confirmed, or the caller gets UNAVAILABLE, DEADLINE_EXCEEDED or CANCELLED, with
 * `details.maybeDelivered` false when no attempt ever reached the broker (call/outcome.ts).
 */
import { randomBytes } from "node:crypto";
import type { Channel, ConfirmChannel, ConsumeMessage, Options } from "amqplib";
import type { Logger } from "pino";
import { Code, FanError } from "../../errors.js";
import type { SendOptions } from "../transport.js";
import type { AmqpConnection, ManagedChannel } from "./connection.js";
import { eventsExchange } from "./names.js";
import { onAbort } from "../abort.js";
import { notSent } from "../../call/outcome.js";
import { msUntil } from "../deadline-timer.js";

/** What to publish where. */
export interface Publication {
  readonly exchange: string;
  readonly routingKey: string;
  readonly body: Buffer;
  readonly props: Options.Publish;
  /** Fail with UNAVAILABLE when no queue takes it (push to an unknown service). */
  readonly mandatory: boolean;
  /** Names the target in errors. */
  readonly what: string;
}

/** Thrown inside a publish attempt when the channel went away: try again on the next one. */
class ChannelGone extends Error {}

/**
 * The broker nacked the message. A channel whose first publish to a quorum queue came while
 * the queue had no leader (its node just died) keeps nacking it after a new leader is elected
 * (seen on RabbitMQ 3.10), while a fresh channel is accepted: so a nack retires the channel
 * (later publishes get a fresh one; the old one is closed once its outstanding confirms came,
 * so the other publishes on it are not failed and sent again as duplicates) and the publish
 * is tried again after a short pause.
 */
class Nacked extends ChannelGone {}

const NACK_PAUSE_MIN_MS = 50;
const NACK_PAUSE_MAX_MS = 1000;

/** The confirm channel and its bookkeeping of returned messages. */
export class AmqpPublisher {
  readonly #ch: ManagedChannel;
  readonly #returned = new Set<string>();
  readonly #log: Logger;
  readonly #prefix = randomBytes(6).toString("hex");
  #seq = 0;

  constructor(conn: AmqpConnection, cluster: string) {
    this.#log = conn.opts.log;
    this.#ch = conn.channel("publisher", true);
    this.#ch.register(async (ch) => {
      await ch.assertExchange(eventsExchange(cluster), "topic", { durable: true });
    });
    this.#ch.listen({ onReturn: (msg: ConsumeMessage) => this.#onReturn(msg) });
  }

  #onReturn(msg: ConsumeMessage): void {
    const id = msg.properties.messageId;
    if (typeof id === "string") this.#returned.add(id);
  }

  /** Publishes and waits for the broker's confirm, republishing after a lost channel. */
  async publish(p: Publication, opts: SendOptions): Promise<void> {
    let sentBefore = false;
    let nacks = 0;
    for (;;) {
      if (opts.signal.aborted) throw notSent(new FanError(Code.CANCELLED, "cancelled"));
      // No channel until the deadline: this attempt never left (an earlier one may have).
      const ch = (await this.#ch.get(opts.deadline, opts.signal).catch((e: unknown) => {
        throw sentBefore ? e : notSent(e);
      })) as ConfirmChannel;
      sentBefore = true;
      try {
        await this.#once(ch, p, opts);
        return;
      } catch (e) {
        if (!(e instanceof ChannelGone)) throw e;
        if (opts.deadline <= Date.now()) {
          throw new FanError(Code.UNAVAILABLE, `amqp broker lost before ${p.what} was confirmed`, { cause: e });
        }
        if (e instanceof Nacked) {
          this.#recycle(ch, p.what);
          await pause(Math.min(NACK_PAUSE_MAX_MS, NACK_PAUSE_MIN_MS * 2 ** nacks++), opts);
        }
      }
    }
  }

  #once(ch: ConfirmChannel, p: Publication, opts: SendOptions): Promise<void> {
    const id = `${this.#prefix}.${++this.#seq}`;
    return new Promise<void>((resolve, reject) => {
      const ms = msUntil(opts.deadline);
      const timer =
        ms === undefined
          ? undefined
          : setTimeout(
              () => done(new FanError(Code.DEADLINE_EXCEEDED, `${p.what} not confirmed before the deadline`)),
              ms,
            );
      let settled = false;
      const done = (err?: Error): void => {
        if (settled) return;
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        stopListening();
        if (err === undefined) resolve();
        else reject(err);
      };
      const stopListening = onAbort(opts.signal, () => done(new FanError(Code.CANCELLED, "cancelled")));
      this.#send(ch, p, id, done);
    });
  }

  #send(ch: ConfirmChannel, p: Publication, id: string, done: (err?: Error) => void): void {
    const props: Options.Publish = { ...p.props, messageId: id, mandatory: p.mandatory };
    const onConfirm = (err: unknown): void => {
      const returned = this.#returned.delete(id);
      if (err !== null && err !== undefined) {
        const why = String((err as Error).message ?? err);
        done(why === "message nacked" ? new Nacked(why) : new ChannelGone(why));
      } else if (returned) {
        // Pushes go through the default exchange, straight to their queue: name it.
        const where =
          p.exchange === ""
            ? ` (the queue ${p.routingKey} does not exist: no consumer has declared it yet, or it was deleted)`
            : "";
        done(notSent(new FanError(Code.UNAVAILABLE, `no amqp queue takes ${p.what}${where}`)));
      } else done();
    };
    try {
      ch.publish(p.exchange, p.routingKey, p.body, props, onConfirm);
    } catch (e) {
      done(new ChannelGone((e as Error).message));
    }
  }

  /**
   * Retires a channel that nacked (once; the managed channel opens a fresh one), with a log
   * line, and closes it once every publish still on it is confirmed or nacked.
   */
  #recycle(ch: ConfirmChannel, what: string): void {
    if (!this.#ch.retire(ch)) return;
    this.#log.warn({ what }, "amqp broker nacked a publish; sending it again on a fresh publisher channel");
    void closeWhenConfirmed(ch);
  }

  /** While the channel is not ready: the error a push waiting for it gets at its deadline. */
  stalled(): FanError | undefined {
    return this.#ch.stalled();
  }

  /** The channel, for tests that need to provoke a channel-only close. */
  get channel(): Channel | undefined {
    return this.#ch.current;
  }

  /** Closes the channel; unconfirmed publishes fail. */
  close(): void {
    void this.#ch.dispose();
  }
}

/**
 * Closes `ch` once no publish on it awaits a confirm. `waitForConfirms` rejects at the first
 * nack, so it is asked again until it resolves (each round settles at least one publish; a
 * closed channel has none left).
 */
async function closeWhenConfirmed(ch: ConfirmChannel): Promise<void> {
  for (;;) {
    try {
      await ch.waitForConfirms();
      break;
    } catch {
      // a nack (that publish is sent again by its caller) or the channel closed
    }
  }
  ch.close().catch(() => undefined);
}

/** Waits `ms`, less when the deadline or the signal comes first. */
function pause(ms: number, opts: SendOptions): Promise<void> {
  const left = msUntil(opts.deadline);
  const wait = left === undefined ? ms : Math.min(ms, left);
  return new Promise<void>((resolve) => {
    const t = setTimeout(done, wait);
    const stop = onAbort(opts.signal, done);
    function done(): void {
      clearTimeout(t);
      stop();
      resolve();
    }
  });
}
