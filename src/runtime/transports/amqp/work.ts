/**
 * Work queues: pushes and event subscriptions. Each is a durable quorum queue, so the broker
 * counts deliveries (`x-delivery-count`) even across consumer crashes, and after
 * `maxDeliveries` it dead-letters the message, at least once, to `{queue}.dlq` through the
 * cluster's dead-letter exchange. A message is acknowledged only when its handler resolved;
 * a rejection returns it to the queue after a short backoff, and the last one dead-letters it
 * (reason `rejected`). The messages whose handlers resolved in one tick are acknowledged at the
 * end of it: on a channel of its own, with one `multiple` ack when no earlier message of the
 * channel is still in a handler.
 *
 * The broker dead-letters a message whose consumers died holding it by itself (reason
 * `delivery_limit`), and no fan process sees that happen; so every dead letter is also copied
 * to a watch queue (`{queue}.dlq.watch`), which the consumers of the work queue read, and the
 * one that gets a copy RabbitMQ dead-lettered logs it in a warning naming the message
 * (docs/decisions.md, 2026-12-07: the queue's `x-delivery-limit` cannot change).
 */
import type { Channel, ConsumeMessage } from "amqplib";
import type { Logger } from "pino";
import type { Envelope } from "../transport.js";
import { decodeEnvelope } from "../../codec/wire.js";
import { deadLetterExchange, deadLetterQueue, deadLetterWatch } from "./names.js";
import { aboutMessage } from "../log-keys.js";
import { warnDropped } from "../../telemetry/drops.js";
import { type DeliveryLimits, finalError, limitNote, limitOf, redeliver, warnFinal } from "../push-ends.js";

/** The queue of one kind of work and where its dead letters go. */
export interface WorkQueueSpec {
  readonly cluster: string;
  readonly queue: string;
  readonly deadLetterQueue: string;
  /** Deliveries before the message is dead-lettered (at least 1). */
  readonly maxDeliveries: number;
  /** Deletes the queue after it has had no consumer this long (broadcast queues). */
  readonly expiresMs?: number;
  /** The dead-letter queue expires too (an ephemeral subscriber's, which no one else reads). */
  readonly deadLetterExpires?: boolean;
}

/**
 * The watch queue's arguments, the same from every process (a queue declared again with other
 * arguments is refused, 406): copies it keeps while no consumer reads it (every instance of the
 * work queue gone, a service or group retired), at most 1000 and 16 MiB of bodies, the newest
 * kept (`drop-head`: the at-least-once dead-lettering of the work queue waits for every target
 * to take its copy, so a full watch must drop, never refuse). 16 MiB holds four messages at the
 * default 4 MiB payload limit; the dead-letter queue keeps every message. Quorum, as the
 * dead-letter queue: a watch on one node that is down would hold the work queue's dead letters
 * until it is back (docs/decisions.md, 2026-12-07, "the amqp dead-letter watch, its arguments for good").
 */
export const WATCH_ARGUMENTS = {
  "x-queue-type": "quorum",
  "x-max-length": 1000,
  "x-max-length-bytes": 16 * 1024 * 1024,
  "x-overflow": "drop-head",
} as const;

/**
 * Declares the dead-letter exchange, the dead-letter queue and its watch queue, and binds them
 * (both with the dead-letter queue's name as key). Declaring an expiring queue
 * again renews its lease: a queue with no consumer (as a dead-letter queue always is) expires
 * `x-expires` after it was last declared, so an ephemeral subscriber calls this while it
 * lives (`renewDeadLetterQueue`), and its dead letters keep a queue to go to.
 */
export async function assertDeadLetterQueue(ch: Channel, spec: WorkQueueSpec): Promise<void> {
  const dlx = deadLetterExchange(spec.cluster);
  await ch.assertExchange(dlx, "direct", { durable: true });
  const expires =
    spec.deadLetterExpires === true && spec.expiresMs !== undefined ? { "x-expires": spec.expiresMs } : {};
  await ch.assertQueue(spec.deadLetterQueue, { durable: true, arguments: { "x-queue-type": "quorum", ...expires } });
  await ch.bindQueue(spec.deadLetterQueue, dlx, spec.deadLetterQueue);
  await assertWatch(ch, spec);
}

/** Declares the watch queue of `spec`'s dead-letter queue and binds it (the exchange exists). */
async function assertWatch(ch: Channel, spec: WorkQueueSpec): Promise<void> {
  const expires =
    spec.deadLetterExpires === true && spec.expiresMs !== undefined ? { "x-expires": spec.expiresMs } : {};
  const watch = deadLetterWatch(spec.deadLetterQueue);
  await ch.assertQueue(watch, { durable: true, arguments: { ...WATCH_ARGUMENTS, ...expires } });
  await ch.bindQueue(watch, deadLetterExchange(spec.cluster), spec.deadLetterQueue);
}

/** Declares the dead-letter exchange and queue, then the work queue. */
export async function assertWorkQueue(ch: Channel, spec: WorkQueueSpec): Promise<void> {
  const dlx = deadLetterExchange(spec.cluster);
  const expires = spec.expiresMs !== undefined ? { "x-expires": spec.expiresMs } : {};
  await assertDeadLetterQueue(ch, spec);
  await ch.assertQueue(spec.queue, {
    durable: true,
    arguments: {
      "x-queue-type": "quorum",
      "x-delivery-limit": Math.max(0, spec.maxDeliveries - 1),
      "x-dead-letter-exchange": dlx,
      "x-dead-letter-routing-key": spec.deadLetterQueue,
      "x-dead-letter-strategy": "at-least-once",
      "x-overflow": "reject-publish",
      ...expires,
    },
  });
}

/** How a work consumer behaves. */
export interface WorkOptions {
  readonly queue: string;
  /** Where its dead letters go; default `deadLetterQueue(queue)` (a broadcast queue's go to its group's). */
  readonly deadLetters?: string;
  readonly maxDeliveries: number;
  /** Pushes whose `@retry(n)` allows fewer deliveries than `maxDeliveries` (push-ends.ts). */
  readonly limits?: DeliveryLimits;
  /** First redelivery delay after a failure; doubles per attempt, at most 30 s (a longer retryAfterMs wins). */
  readonly retryDelayMs: number;
  readonly maxBytes: number;
  readonly log: Logger;
  /** Told of every message dead-lettered (its envelope, when it decodes). */
  readonly onDeadLetter?: (env: Envelope | undefined) => void;
  /**
   * The channel consumes this queue only (and its dead letters' watch, whose copies are acked
   * as they arrive), so every delivery tag on it passes through this consumer and one
   * `multiple` ack may cover many. False where the channel carries other
   * consumers too (the server's rpc frames): their tags interleave, and a `multiple` ack would
   * take a running call's frame with it.
   */
  readonly ownChannel?: boolean;
}

function attemptOf(msg: ConsumeMessage): number {
  const count = (msg.properties.headers as Record<string, unknown> | undefined)?.["x-delivery-count"];
  return (typeof count === "number" ? count : 0) + 1;
}

function quietly(f: () => void): void {
  try {
    f();
  } catch {
    // The channel the message came on has closed: the broker redelivers it.
  }
}

/** Acknowledgement bookkeeping of one channel (delivery tags are per channel). */
interface Acks {
  /** Delivery tags in a handler or waiting for their nack: never covered by a `multiple` ack. */
  readonly open: Set<number>;
  /** Messages whose handlers resolved in this tick. */
  ready: ConsumeMessage[];
  scheduled: boolean;
}

/** Handles deliveries of one work queue with `deliver`. */
export class WorkConsumer {
  /** Deliveries whose handler has not settled. */
  inFlight = 0;

  constructor(
    private readonly deliver: (env: Envelope) => Promise<void>,
    private readonly opts: WorkOptions,
  ) {}

  /** The amqplib consume callback for channel `ch`. */
  handle(ch: Channel, msg: ConsumeMessage | null): void {
    if (msg === null) {
      this.opts.log.warn({ queue: this.opts.queue }, "amqp consumer cancelled by the broker; declaring again");
      ch.close().catch(() => undefined);
      return;
    }
    const attempt = attemptOf(msg);
    let env: Envelope;
    try {
      env = decodeEnvelope(msg.content, { maxBytes: this.opts.maxBytes });
    } catch (e) {
      warnDropped(
        this.opts.log,
        { transport: "amqp", endpoint: this.opts.queue, reason: "undecodable" },
        {
          queue: this.opts.queue,
          err: (e as Error).message,
          bytes: msg.content.length,
          deadLetters: this.#deadLetters,
        },
        "undecodable amqp message dead-lettered",
      );
      quietly(() => ch.reject(msg, false));
      this.opts.onDeadLetter?.(undefined);
      return;
    }
    const limit = limitOf(this.opts.limits, env, this.opts.maxDeliveries);
    if (attempt > limit) {
      // Past its method's @retry limit, below the queue's: its consumers died holding it.
      this.opts.log.warn(
        {
          queue: this.opts.queue,
          id: env.id,
          ...aboutMessage(env),
          deliveries: attempt - 1,
          deadLetters: this.#deadLetters,
        },
        `not acknowledged after ${attempt - 1} deliveries${limitNote(limit, this.opts.maxDeliveries)} (its consumers went away holding it); dead-lettered`,
      );
      quietly(() => ch.reject(msg, false));
      this.opts.onDeadLetter?.(env);
      return;
    }
    this.#run(ch, msg, { ...env, headers: { ...env.headers, attempt } }, attempt);
  }

  /** Where this queue's dead letters go. */
  get #deadLetters(): string {
    return this.opts.deadLetters ?? deadLetterQueue(this.opts.queue);
  }

  /** False once `unwatch` was called: a cancelled watch is not consumed again. */
  #watching = true;
  /** Broker cancellations of the watch in a row (each within a minute of the last): the backoff. */
  #cancels = 0;
  #lastCancel = 0;

  /**
   * Consumes the watch queue of this queue's dead letters (`spec`'s, declared) on `ch`; its
   * consumer tag is in `tags` (replaced there when the watch is consumed again).
   */
  async watch(ch: Channel, spec: WorkQueueSpec, tags: string[]): Promise<void> {
    const queue = deadLetterWatch(spec.deadLetterQueue);
    let tag = "";
    tag = (
      await ch.consume(queue, (m) => {
        if (m !== null) this.#deadLettered(ch, m);
        else this.#rewatch(ch, spec, tags, tag);
      })
    ).consumerTag;
    tags.push(tag);
  }

  /** Stops consuming the watch again after a cancellation (the consumer is closing). */
  unwatch(): void {
    this.#watching = false;
  }

  /**
   * The broker cancelled the watch's consumer (the watch queue was deleted: an operator, or a
   * process cleaning up). The channel also carries the work queue, and on a server rpc calls:
   * closing it would return running calls and pushes to their queues, to run twice. So only the
   * watch is declared again and consumed, after a backoff that grows while cancellations follow
   * each other; if that fails the channel is gone anyway, and its reopening declares it all.
   */
  #rewatch(ch: Channel, spec: WorkQueueSpec, tags: string[], tag: string): void {
    const i = tags.indexOf(tag);
    if (i >= 0) tags.splice(i, 1);
    if (!this.#watching) return;
    const now = Date.now();
    this.#cancels = now - this.#lastCancel < 60_000 ? this.#cancels + 1 : 0;
    this.#lastCancel = now;
    const delay = Math.min(30_000, 100 * 2 ** this.#cancels);
    this.opts.log.warn(
      { queue: this.opts.queue, watch: deadLetterWatch(spec.deadLetterQueue), retryMs: delay },
      "amqp dead-letter watch cancelled by the broker (its queue was deleted); declaring and consuming it again",
    );
    setTimeout(() => {
      if (!this.#watching) return;
      // A closed channel may throw at once: the chain takes that as a rejection too.
      Promise.resolve()
        .then(() => ch.assertExchange(deadLetterExchange(spec.cluster), "direct", { durable: true }))
        .then(() => assertWatch(ch, spec))
        .then(() => this.watch(ch, spec, tags))
        .catch((e: unknown) =>
          this.opts.log.debug(
            { queue: this.opts.queue, err: (e as Error).message },
            "amqp dead-letter watch not consumed again here (its channel closed; reopening declares it)",
          ),
        );
    }, delay).unref();
  }

  /**
   * A copy of a dead letter. One the broker dead-lettered by itself is logged as a warning
   * naming the message; one a fan consumer rejected (`rejected`) was logged by it, with the
   * handler's error, and is only acknowledged.
   */
  #deadLettered(ch: Channel, msg: ConsumeMessage): void {
    const headers = (msg.properties.headers ?? {}) as Record<string, unknown>;
    const deaths = headers["x-death"];
    // The most recent death comes first.
    const death = (Array.isArray(deaths) ? deaths[0] : undefined) as Record<string, unknown> | undefined;
    const reason = String(death?.reason ?? headers["x-first-death-reason"] ?? "unknown");
    if (reason !== "rejected") {
      let env: Envelope | undefined;
      try {
        env = decodeEnvelope(msg.content, { maxBytes: this.opts.maxBytes });
      } catch {
        env = undefined;
      }
      const log = {
        queue: String(death?.queue ?? headers["x-first-death-queue"] ?? this.opts.queue),
        ...(env === undefined ? { bytes: msg.content.length } : { id: env.id, ...aboutMessage(env) }),
        reason,
        deadLetters: this.#deadLetters,
      };
      if (reason === "delivery_limit")
        this.opts.log.warn(
          { ...log, deliveries: this.opts.maxDeliveries },
          `not acknowledged after ${this.opts.maxDeliveries} deliveries (its consumers went away holding it: a process died, or its channel or connection closed); dead-lettered by RabbitMQ`,
        );
      else this.opts.log.warn(log, `dead-lettered by RabbitMQ (${reason})`);
      this.opts.onDeadLetter?.(env);
    }
    quietly(() => ch.ack(msg));
  }

  #run(ch: Channel, msg: ConsumeMessage, env: Envelope, attempt: number): void {
    this.inFlight++;
    const acks = this.#acksOf(ch);
    acks.open.add(msg.fields.deliveryTag);
    this.deliver(env).then(
      () => {
        this.inFlight--;
        this.#ack(ch, acks, msg);
      },
      (e: unknown) => {
        this.inFlight--;
        this.#failed(ch, msg, env, attempt, e);
      },
    );
  }

  readonly #acks = new WeakMap<Channel, Acks>();

  #acksOf(ch: Channel): Acks {
    let a = this.#acks.get(ch);
    if (a === undefined) {
      a = { open: new Set(), ready: [], scheduled: false };
      this.#acks.set(ch, a);
    }
    return a;
  }

  /**
   * Acknowledges at the end of the tick: the messages whose handlers resolved in it, below
   * every message still open on the channel (in a handler, or waiting for its nack), with one
   * `multiple` ack of the highest; the others one by one. A message still open is never
   * covered by a `multiple` ack.
   */
  #ack(ch: Channel, acks: Acks, msg: ConsumeMessage): void {
    acks.ready.push(msg);
    if (acks.scheduled) return;
    acks.scheduled = true;
    process.nextTick(() => {
      acks.scheduled = false;
      const ready = acks.ready;
      acks.ready = [];
      for (const m of ready) acks.open.delete(m.fields.deliveryTag);
      // Sharing the channel, any tag may be another consumer's: no `multiple` ack at all.
      let lowestOpen = this.opts.ownChannel === true ? Number.POSITIVE_INFINITY : 0;
      for (const t of acks.open) if (t < lowestOpen) lowestOpen = t;
      let cover: ConsumeMessage | undefined;
      for (const m of ready) {
        const t = m.fields.deliveryTag;
        if (t < lowestOpen) {
          if (cover === undefined || t > cover.fields.deliveryTag) cover = m;
        } else quietly(() => ch.ack(m));
      }
      if (cover !== undefined) {
        const last = cover;
        quietly(() => ch.ack(last, true));
      }
    });
  }

  #failed(ch: Channel, msg: ConsumeMessage, env: Envelope, attempt: number, e: unknown): void {
    const limit = limitOf(this.opts.limits, env, this.opts.maxDeliveries);
    const final = finalError(e);
    const last = final !== undefined || attempt >= limit;
    const log = {
      queue: this.opts.queue,
      id: env.id,
      ...aboutMessage(env),
      attempt,
      err: (e as Error)?.message,
      ...(last ? { deadLetters: this.#deadLetters } : {}),
    };
    const open = this.#acksOf(ch).open;
    if (last) {
      if (final !== undefined)
        warnFinal(this.opts.log, { queue: this.opts.queue, attempt }, env, final, e, this.#deadLetters);
      else
        this.opts.log.warn(
          log,
          `delivery failed ${attempt} times${limitNote(limit, this.opts.maxDeliveries)}; dead-lettered`,
        );
      open.delete(msg.fields.deliveryTag);
      // Rejected, not returned: the dead letter's reason is then `rejected`, which tells the
      // watch (above) that this line was written, from a death the broker saw alone.
      quietly(() => ch.reject(msg, false));
      this.opts.onDeadLetter?.(env);
      return;
    }
    const delay = redeliver(this.opts.log, log, this.opts.retryDelayMs, attempt, e, env);
    setTimeout(() => {
      open.delete(msg.fields.deliveryTag);
      // basic.reject, not basic.nack: from RabbitMQ 4.3 a nack with requeue returns the message
      // without counting a failed delivery (x-delivery-count stays, x-acquired-count grows), so
      // maxDeliveries and @retry would never end a push that keeps failing; a reject counts on
      // every version (rabbitmq-server#15387). A reject without requeue dead-letters (`rejected`).
      quietly(() => ch.reject(msg, true));
    }, delay).unref();
  }
}
