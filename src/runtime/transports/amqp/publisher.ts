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

/** The confirm channel and its bookkeeping of returned messages. */
export class AmqpPublisher {
  readonly #ch: ManagedChannel;
  readonly #returned = new Set<string>();
  readonly #prefix = randomBytes(6).toString("hex");
  #seq = 0;

  constructor(conn: AmqpConnection, cluster: string) {
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
      if (err !== null && err !== undefined) done(new ChannelGone(String((err as Error).message ?? err)));
      else if (returned) done(notSent(new FanError(Code.UNAVAILABLE, `no amqp queue takes ${p.what}`)));
      else done();
    };
    try {
      ch.publish(p.exchange, p.routingKey, p.body, props, onConfirm);
    } catch (e) {
      done(new ChannelGone((e as Error).message));
    }
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
