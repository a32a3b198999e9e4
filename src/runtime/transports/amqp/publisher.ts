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
import { msUntil } from "./waiters.js";

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
 * (seen on RabbitMQ 3.10), while a fresh channel is accepted: so a nack closes the channel
 * (it is reopened) and the publish is tried again after a short pause.
 */
class Nacked extends ChannelGone {}

const NACK_PAUSE_MIN_MS = 50;
const NACK_PAUSE_MAX_MS = 1000;

/** The confirm channel and its bookkeeping of returned messages. */
export class AmqpPublisher {
  readonly #ch: ManagedChannel;
  readonly #returned = new Set<string>();
  readonly #recycled = new WeakSet<Channel>();
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
      }
      else if (returned) done(notSent(new FanError(Code.UNAVAILABLE, `no amqp queue takes ${p.what}`)));
      else done();
    };
    try {
      ch.publish(p.exchange, p.routingKey, p.body, props, onConfirm);
    } catch (e) {
      done(new ChannelGone((e as Error).message));
    }
  }

  /** Closes a channel that nacked (once; the managed channel reopens it), with a log line. */
  #recycle(ch: Channel, what: string): void {
    if (this.#recycled.has(ch) || this.#ch.current !== ch) return;
    this.#recycled.add(ch);
    this.#log.warn({ what }, "amqp broker nacked a publish; reopening the publisher channel and sending again");
    ch.close().catch(() => undefined);
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
