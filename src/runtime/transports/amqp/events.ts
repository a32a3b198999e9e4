/**
 * Event subscriptions over amqp: events are published to the cluster's topic exchange with
 * the routing key `{service}.{event}`; each subscribing service has one durable work queue
 * bound to it (its instances share the queue, so each event is handled once per service),
 * and a `@broadcast` event gets one queue per instance instead, which the broker deletes
 * once the instance has been gone for `broadcastExpiresMs`. An ephemeral subscriber (a
 * client's subscription, a state view, fanc) is no service: its queue, a dead-letter queue of
 * that queue's own (not its group's, which other subscribers may share) and its watch are
 * deleted when it closes and expire `broadcastExpiresMs` after its process died.
 */
import type { Channel } from "amqplib";
import type { Logger } from "pino";
import { Code, FanError } from "../../errors.js";
import type { Envelope, EventDelivery, EventSubscription, Unsubscribe } from "../transport.js";
import type { AmqpConnection, ManagedChannel } from "./connection.js";
import { deadLetterQueue, deadLetterWatch, eventKey, eventsExchange, subscriptionQueue } from "./names.js";
import { bounded } from "./waiters.js";
import { assertDeadLetterQueue, assertWorkQueue, WorkConsumer, type WorkQueueSpec } from "./work.js";

/** Subscription tuning. */
export interface SubscribeOptions {
  readonly prefetch: number;
  readonly maxDeliveries: number;
  readonly retryDelayMs: number;
  readonly broadcastExpiresMs: number;
  readonly maxBytes: number;
  readonly connectTimeoutMs: number;
  /** How long closing a subscription waits for deliveries in their handler. */
  readonly drainMs: number;
  readonly log: Logger;
  /** Told of every event dead-lettered. */
  readonly onDeadLetter?: (env: Envelope | undefined) => void;
}

/** A subscription: `close` drains handlers in flight first, `kill` does not. */
export interface AmqpSubscription extends Unsubscribe {
  kill(): Promise<void>;
}

/** Declares, binds and consumes the subscription's queue; resolves once it is bound. */
export async function subscribeEvents(
  conn: AmqpConnection,
  cluster: string,
  sub: EventSubscription,
  deliver: EventDelivery,
  opts: SubscribeOptions,
): Promise<AmqpSubscription> {
  const names = {
    group: sub.group,
    instanceId: sub.instanceId,
    broadcast: sub.broadcast,
    service: sub.source.name,
    event: sub.event,
  };
  const ephemeral = sub.ephemeral === true;
  const queue = subscriptionQueue(cluster, names);
  // A broadcast queue's dead letters go to its group's dead-letter queue; an ephemeral
  // subscriber's to one of its own, which it deletes on close with its watch: a group it shares
  // with others (every `fanc subscribe` of an event) would lose them under the others.
  const dead = deadLetterQueue(ephemeral ? queue : subscriptionQueue(cluster, { ...names, broadcast: false }));
  const work = new WorkConsumer(deliver, {
    queue,
    deadLetters: dead,
    maxDeliveries: opts.maxDeliveries,
    retryDelayMs: opts.retryDelayMs,
    maxBytes: opts.maxBytes,
    log: opts.log,
    ...(opts.onDeadLetter === undefined ? {} : { onDeadLetter: opts.onDeadLetter }),
    // `ch` below consumes this queue and the watch, whose copies are acked as they arrive: no
    // `multiple` ack can find one of them still open.
    ownChannel: true,
  });
  const ch = conn.channel(`subscribe ${queue}`, false);
  let consumer: { c: Channel; tags: string[] } | undefined;
  const spec: WorkQueueSpec = {
    cluster,
    queue,
    deadLetterQueue: dead,
    maxDeliveries: opts.maxDeliveries,
    ...(sub.broadcast || ephemeral ? { expiresMs: opts.broadcastExpiresMs } : {}),
    ...(ephemeral ? { deadLetterExpires: true } : {}),
  };
  const setup = async (c: Channel): Promise<void> => {
    const exchange = eventsExchange(cluster);
    await c.assertExchange(exchange, "topic", { durable: true });
    await assertWorkQueue(c, spec);
    await c.bindQueue(queue, exchange, eventKey(sub.source.name, sub.event));
    await c.prefetch(opts.prefetch);
    const tags = [(await c.consume(queue, (m) => work.handle(c, m))).consumerTag];
    consumer = { c, tags };
    await work.watch(c, spec, tags);
  };
  ch.register(setup);
  try {
    await ch.get(Date.now() + opts.connectTimeoutMs);
  } catch (e) {
    void ch.dispose();
    throw new FanError(
      Code.UNAVAILABLE,
      `cannot subscribe to ${sub.source.name}.${sub.event} over amqp: ${(e as Error).message}`,
      { cause: e },
    );
  }
  // An ephemeral subscriber's dead-letter queue has no consumer, so it would expire while the
  // subscriber lives and its dead letters would be dropped: declare it again well within the
  // expiry while subscribed (after its process died, it expires).
  const renew = ephemeral ? renewDeadLetterQueue(ch, spec, opts.log) : undefined;
  // What closing deletes: a broadcast queue, and all of an ephemeral subscriber's queues.
  const queues = ephemeral ? [queue, dead, deadLetterWatch(dead)] : sub.broadcast ? [queue] : [];
  const stop = async (): Promise<void> => {
    clearInterval(renew);
    work.unwatch();
    ch.unregister(setup);
    const c = consumer;
    if (c !== undefined && c.c === ch.current) await Promise.all(c.tags.map((t) => bounded(c.c.cancel(t), 2000)));
    await drained(work, opts.drainMs);
  };
  return {
    close: () => stop().then(() => unsubscribe(conn, ch, queues, opts.log)),
    kill: () => {
      clearInterval(renew);
      work.unwatch();
      return unsubscribe(conn, ch, queues, opts.log);
    },
  };
}

/** Declares `spec`'s dead-letter queue again every quarter of its expiry, on the channel's current channel. */
function renewDeadLetterQueue(ch: ManagedChannel, spec: WorkQueueSpec, log: Logger): NodeJS.Timeout | undefined {
  if (spec.expiresMs === undefined) return undefined;
  const timer = setInterval(
    () => {
      const c = ch.current;
      if (c === undefined) return; // reconnecting: the setup declares it again
      assertDeadLetterQueue(c, spec).catch((e: unknown) =>
        log.warn(
          { queue: spec.deadLetterQueue, err: (e as Error).message },
          "could not renew the subscription's dead-letter queue; it expires if this keeps failing",
        ),
      );
    },
    Math.max(50, Math.floor(spec.expiresMs / 4)),
  );
  timer.unref();
  return timer;
}

/** Waits until `work` has no delivery in its handler, or `ms` passed. */
export async function drained(work: WorkConsumer, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (work.inFlight > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
}

async function unsubscribe(
  conn: AmqpConnection,
  ch: ManagedChannel,
  queues: readonly string[],
  log: Logger,
): Promise<void> {
  await bounded(ch.dispose(), 2000);
  if (queues.length === 0) return;
  const model = conn.model;
  if (model === undefined) return;
  try {
    const tmp = await model.createChannel();
    tmp.on("error", () => undefined);
    for (const q of queues) await tmp.deleteQueue(q);
    await tmp.close();
  } catch (e) {
    log.debug({ queues, err: (e as Error).message }, "subscription queue not deleted (it expires by itself)");
  }
}
