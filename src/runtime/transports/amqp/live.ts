/**
 * The amqp transport's lossy fan-out (`Transport.volatile`), which replicated states use for
 * their updates: transient messages on the cluster's topic exchange, published on a channel
 * without confirms, each watcher consuming a server-named, exclusive, auto-deleted classic
 * queue without acknowledgements. Events go through durable quorum queues with confirms and
 * acks, which cost a disk write and several round trips per update per watcher; an update a
 * watcher misses (a broker restart, a full buffer) shows as a gap in its sequence numbers and
 * it takes a snapshot. A queue dies with its connection and is declared again on the next one.
 */
import type { Channel, ConsumeMessage } from "amqplib";
import type { Logger } from "pino";
import { decodeEnvelope } from "../../codec/wire.js";
import { Code, FanError } from "../../errors.js";
import type { Envelope, EventDelivery, EventSubscription, SendOptions, Unsubscribe } from "../transport.js";
import type { AmqpConnection, ManagedChannel } from "./connection.js";
import { eventKey, eventsExchange } from "./names.js";
import { bounded } from "./waiters.js";
import { warnDropped } from "../../telemetry/drops.js";

export class AmqpLive {
  #pub: ManagedChannel | undefined;
  readonly #subs = new Set<ManagedChannel>();

  constructor(
    private readonly conn: AmqpConnection,
    private readonly cluster: string,
    private readonly log: Logger,
    private readonly maxBytes: number,
  ) {}

  /** Publishes a transient message; resolves once it is written to the connection (no confirm). */
  async publish(env: Envelope, body: Buffer, opts: SendOptions): Promise<void> {
    if (this.#pub === undefined) {
      this.#pub = this.conn.channel("states publish", false);
      this.#pub.register((c) =>
        c.assertExchange(eventsExchange(this.cluster), "topic", { durable: true }).then(() => undefined),
      );
    }
    const c = await this.#pub.get(opts.deadline, opts.signal);
    c.publish(eventsExchange(this.cluster), eventKey(env.service, env.method), body, {
      persistent: false,
      contentType: "application/json",
    });
  }

  /** Declares the watcher's own queue, binds and consumes it; resolves once it is bound. */
  async subscribe(sub: EventSubscription, deliver: EventDelivery, deadline: number): Promise<Unsubscribe> {
    const key = eventKey(sub.source.name, sub.event);
    const ch = this.conn.channel(`states ${key}`, false);
    const receive = (m: ConsumeMessage | null): void => {
      if (m === null) return;
      let env: Envelope;
      try {
        env = decodeEnvelope(m.content, { maxBytes: this.maxBytes });
      } catch (e) {
        warnDropped(
          this.log,
          { transport: "amqp", endpoint: key, reason: "undecodable" },
          { err: (e as Error).message, key, bytes: m.content.length },
          "amqp: malformed state update dropped",
        );
        return;
      }
      deliver(env).catch((e: unknown) => this.log.warn({ err: e, key }, "amqp: state update handler failed"));
    };
    const setup = async (c: Channel): Promise<void> => {
      const exchange = eventsExchange(this.cluster);
      await c.assertExchange(exchange, "topic", { durable: true });
      const q = await c.assertQueue("", {
        exclusive: true,
        autoDelete: true,
        durable: false,
        arguments: { "x-queue-type": "classic" },
      });
      await c.bindQueue(q.queue, exchange, key);
      await c.consume(q.queue, receive, { noAck: true });
    };
    ch.register(setup);
    try {
      await ch.get(deadline);
    } catch (e) {
      void ch.dispose();
      throw new FanError(Code.UNAVAILABLE, `cannot subscribe to ${key} over amqp: ${(e as Error).message}`, {
        cause: e,
      });
    }
    this.#subs.add(ch);
    return {
      close: async () => {
        this.#subs.delete(ch);
        ch.unregister(setup);
        await bounded(ch.dispose(), 2000);
      },
    };
  }

  async close(): Promise<void> {
    const all = [...this.#subs, ...(this.#pub === undefined ? [] : [this.#pub])];
    this.#subs.clear();
    await Promise.all(all.map((c) => bounded(c.dispose(), 2000)));
  }
}
