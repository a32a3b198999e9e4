/**
 * Serving one service instance over amqp: the version's request queue (shared by every
 * instance of that version, bounded by prefetch, acked after the reply is sent), the
 * instance's own request queue (sharded calls to the shard's owner), the durable
 * push queue, and an exclusive queue on the control exchange that carries cancellations of
 * calls this instance is running. Everything is declared again on every (re)opened channel.
 *
 * A batch frame (batch-frame.ts: the calls a client made in one tick) is split into its calls by
 * the shared frame pump (batching/served.ts); the replies to one reply address that finish in one
 * tick go back as one batch frame, and the frame is acked once every call of it is answered and
 * those replies were sent. `rpcPrefetch`
 * bounds the request messages unacked here and also the calls running at once: calls of frames
 * beyond it wait in this instance (bounded by prefetch x frame size) until running calls finish.
 * A frame the server cannot read past some item is answered with one error envelope on its
 * correlation id, which fails the calls of that frame still open.
 */
import type { Channel, ConsumeMessage } from "amqplib";
import type { Logger } from "pino";
import { hasMethods, type ServiceDescriptor } from "../../descriptor.js";
import { Code, FanError } from "../../errors.js";
import { LazyAbort } from "../abort.js";
import type { Envelope, Inbound, Served } from "../transport.js";
import { decodeEnvelope, encodeEnvelope } from "../../codec/wire.js";
import { isBatch, wantsCompact } from "../batch-frame.js";
import { type FrameHost, FramePump, type FrameSource } from "../batching/served.js";
import type { AmqpConnection, ManagedChannel, Setup } from "./connection.js";
import {
  cancelKey,
  controlExchange,
  deadLetterQueue,
  formatEndpoint,
  instanceQueue,
  pushQueue,
  rpcQueue,
  type AmqpAddress,
} from "./names.js";
import { warnDropped } from "../../telemetry/drops.js";
import { bounded } from "./waiters.js";
import { assertWorkQueue, WorkConsumer } from "./work.js";
import { errorEnvelope, refuse } from "../replies.js";
import { handlePush } from "../owner-push.js";
import { KeptPushes, keptBound } from "../kept-push.js";
import { limitsOf } from "../push-ends.js";

/** Server-side tuning. */
export interface ServerOptions {
  readonly rpcPrefetch: number;
  readonly pushPrefetch: number;
  readonly maxDeliveries: number;
  readonly retryDelayMs: number;
  /** An rpc queue with no consumer for this long is deleted by the broker. */
  readonly rpcQueueExpiresMs: number;
  readonly rpcQueueType: "classic" | "quorum";
  readonly maxBytes: number;
  /** How long `serve` waits for the broker before failing with UNAVAILABLE. */
  readonly connectTimeoutMs: number;
  readonly log: Logger;
  /** Told of every push dead-lettered. */
  readonly onDeadLetter?: (env: Envelope | undefined) => void;
}

/** A request message holding a batch frame: acked once every call of it is answered. */
interface Frame extends FrameSource {
  readonly ch: Channel;
  readonly msg: ConsumeMessage;
  readonly replyTo: string;
  readonly corr: string;
}

/** One served instance. */
export class AmqpServer {
  readonly #ch: ManagedChannel;
  readonly #addr: AmqpAddress;
  readonly #pump: FramePump<Frame>;
  readonly #inFlight: Map<string, LazyAbort>;
  readonly #tags = new WeakMap<Channel, string[]>();
  readonly #work: WorkConsumer;
  readonly #setup: Setup = (ch) => this.#declare(ch);
  readonly #log: Logger;
  #stopped = false;
  constructor(
    conn: AmqpConnection,
    cluster: string,
    private readonly service: ServiceDescriptor,
    instanceId: string,
    private readonly inbound: Inbound,
    private readonly opts: ServerOptions,
  ) {
    this.#addr = { cluster, service: service.name, version: service.version, instance: instanceId };
    this.#log = opts.log.child({ service: service.name, instanceId });
    // A push refused for the instance's state is kept, not counted as a delivery (kept-push.ts).
    const kept = new KeptPushes((env) => inbound.push(env), opts.retryDelayMs, keptBound(opts.pushPrefetch), this.#log);
    this.#work = new WorkConsumer(kept.deliver, {
      queue: pushQueue(this.#addr),
      maxDeliveries: opts.maxDeliveries,
      ...limitsOf(service, opts.maxDeliveries),
      retryDelayMs: opts.retryDelayMs,
      maxBytes: opts.maxBytes,
      log: this.#log,
      ...(opts.onDeadLetter === undefined ? {} : { onDeadLetter: opts.onDeadLetter }),
    });
    this.#ch = conn.channel(`serve ${service.name}@${service.version}`, false);
    this.#ch.register(this.#setup);
    this.#pump = new FramePump<Frame>(this.#frames, {
      service,
      inbound,
      maxBytes: opts.maxBytes,
      bound: opts.rpcPrefetch,
      log: this.#log,
      name: "amqp",
      where: "this queue",
    });
    this.#inFlight = this.#pump.inFlight;
  }

  /** Waits until the topology is declared and consumers run; UNAVAILABLE when the broker is not there in time. */
  async start(): Promise<Served> {
    try {
      await this.#ch.get(Date.now() + this.opts.connectTimeoutMs);
    } catch (e) {
      void this.#ch.dispose();
      throw new FanError(Code.UNAVAILABLE, `cannot serve ${this.service.name} over amqp: ${(e as Error).message}`, {
        cause: e,
      });
    }
    return { endpoint: formatEndpoint(this.#addr), stop: () => this.stop() };
  }

  async #declare(ch: Channel): Promise<void> {
    const a = this.#addr;
    const tags: string[] = [];
    this.#tags.set(ch, tags);
    const control = controlExchange(a.cluster);
    await ch.assertExchange(control, "direct", { durable: true });
    const { queue: cancelQueue } = await ch.assertQueue("", { exclusive: true, autoDelete: true });
    await ch.bindQueue(cancelQueue, control, cancelKey(a.service, a.version));
    await ch.consume(cancelQueue, (m) => this.#onCancel(m), { noAck: true });
    if (this.#stopped) return;
    const quorum = this.opts.rpcQueueType === "quorum" ? { "x-queue-type": "quorum" } : {};
    await ch.assertQueue(rpcQueue(a), {
      durable: true,
      arguments: { "x-expires": this.opts.rpcQueueExpiresMs, ...quorum },
    });
    await ch.prefetch(this.opts.rpcPrefetch);
    tags.push((await ch.consume(rpcQueue(a), (m) => this.#onCall(ch, m))).consumerTag);
    // Calls addressed to this instance (a shard's owner) come on its own queue.
    await ch.assertQueue(instanceQueue(a), { exclusive: true, autoDelete: true });
    tags.push((await ch.consume(instanceQueue(a), (m) => this.#onCall(ch, m))).consumerTag);
    // The durable push queue and its dead-letter queue outlive every instance: only services
    // with push members get them.
    if (!hasMethods(this.service, "push")) return;
    const push = pushQueue(a);
    const spec = {
      cluster: a.cluster,
      queue: push,
      deadLetterQueue: deadLetterQueue(push),
      maxDeliveries: this.opts.maxDeliveries,
    };
    await assertWorkQueue(ch, spec);
    await ch.prefetch(this.opts.pushPrefetch);
    tags.push((await ch.consume(push, (m) => this.#work.handle(ch, m))).consumerTag);
    // A cancelled watch is consumed again by itself: this channel's calls and pushes run on.
    await this.#work.watch(ch, spec, tags);
  }

  #onCancel(msg: ConsumeMessage | null): void {
    if (msg === null) return;
    this.#inFlight.get(msg.content.toString("utf8"))?.abort();
  }

  #onCall(ch: Channel, msg: ConsumeMessage | null): void {
    if (msg === null) {
      this.#log.warn("amqp rpc consumer cancelled by the broker; declaring again");
      ch.close().catch(() => undefined);
      return;
    }
    if (isBatch(msg.content)) {
      this.#onFrame(ch, msg);
      return;
    }
    const corr = typeof msg.properties.correlationId === "string" ? msg.properties.correlationId : undefined;
    const replyTo = typeof msg.properties.replyTo === "string" ? msg.properties.replyTo : undefined;
    let env: Envelope;
    try {
      env = decodeEnvelope(msg.content, { maxBytes: this.opts.maxBytes });
      if (env.kind !== "call" && env.kind !== "push")
        throw new FanError(Code.INVALID_ARGUMENT, `expected a call or push, got a ${env.kind}`);
    } catch (e) {
      // One line per message: dropped when it cannot be answered, else refused to its caller.
      const queue = msg.fields.routingKey;
      const bytes = msg.content.length;
      if (replyTo === undefined || corr === undefined) {
        const drop = { transport: "amqp", endpoint: queue, reason: "undecodable, no reply address" };
        warnDropped(
          this.#log,
          drop,
          { queue, err: (e as Error).message, bytes },
          "amqp: undecodable call without a reply address dropped",
        );
        quietAck(ch, msg);
        return;
      }
      const drop = { transport: "amqp", endpoint: queue, reason: "undecodable" };
      warnDropped(
        this.#log,
        drop,
        { queue, err: (e as Error).message, replyTo, bytes },
        "amqp: undecodable call refused (INVALID_ARGUMENT)",
      );
      this.#reply(ch, msg, replyTo, corr, errorEnvelope(corr, undefined, FanError.from(e, Code.INVALID_ARGUMENT)));
      return;
    }
    const refused = refuse(this.service, env, "this queue");
    if (refused !== undefined) {
      this.#reply(ch, msg, replyTo, corr, errorEnvelope(env.id, env, refused));
      return;
    }
    if (env.kind === "push") {
      // A @shard push to this owner (owner-push.ts): acknowledged to the producer once handled.
      handlePush(this.inbound, env).then((reply) => this.#reply(ch, msg, replyTo, corr, reply));
      return;
    }
    if (msg.fields.redelivered && this.service.methods[env.method]?.idempotent !== true) {
      const e = new FanError(
        Code.UNAVAILABLE,
        "the server handling this call was lost; not retried because the method is not idempotent",
      );
      this.#reply(ch, msg, replyTo, corr, errorEnvelope(env.id, env, e));
      return;
    }
    // Anonymous reactions, no named closure per call (tsx's keepNames wraps those in a
    // defineProperty call); the signal is made only if the handler reads it.
    const ac = new LazyAbort();
    const key = corr ?? env.id;
    this.#inFlight.set(key, ac);
    this.inbound.call(env, ac).then(
      (reply) => {
        this.#inFlight.delete(key);
        this.#reply(ch, msg, replyTo, corr, reply);
      },
      (e: unknown) => {
        this.#inFlight.delete(key);
        this.#reply(ch, msg, replyTo, corr, errorEnvelope(env.id, env, FanError.from(e)));
      },
    );
  }

  /** Hands a batch frame to the pump. */
  #onFrame(ch: Channel, msg: ConsumeMessage): void {
    const corr = typeof msg.properties.correlationId === "string" ? msg.properties.correlationId : undefined;
    const replyTo = typeof msg.properties.replyTo === "string" ? msg.properties.replyTo : undefined;
    if (replyTo === undefined || corr === undefined) {
      const queue = msg.fields.routingKey;
      warnDropped(
        this.#log,
        { transport: "amqp", endpoint: queue, reason: "no reply address" },
        { queue, replyTo, corr, bytes: msg.content.length },
        "amqp call frame without a reply address dropped",
      );
      quietAck(ch, msg);
      return;
    }
    this.#pump.read(
      {
        ch,
        msg,
        replyTo,
        corr,
        // The client's correlation prefix with its dot: a cancellation names `{prefix}.{seq}`.
        client: corr.slice(0, corr.lastIndexOf(".") + 1),
        replyKey: replyTo,
        redelivered: msg.fields.redelivered,
        pushes: true,
        compact: wantsCompact(msg.content),
        left: 1,
      },
      msg.content,
    );
  }

  /** The broker side of the frame pump: where reply frames go, and the ack once a frame is answered. */
  readonly #frames: FrameHost<Frame> = {
    sendReplies: (f, text, count) => {
      const out = this.#ch.current ?? f.ch;
      try {
        out.publish("", f.replyTo, Buffer.from(text, "utf8"), {
          correlationId: f.corr,
          contentType: "application/json",
        });
      } catch (e) {
        this.#log.warn({ err: (e as Error).message, calls: count }, "amqp reply not sent");
      }
    },
    malformed: (f) => {
      const queue = f.msg.fields.routingKey;
      warnDropped(
        this.#log,
        { transport: "amqp", endpoint: queue, reason: "malformed frame" },
        { queue, replyTo: f.replyTo, bytes: f.msg.content.length },
        "malformed amqp call frame refused (INVALID_ARGUMENT)",
      );
      const e = new FanError(Code.INVALID_ARGUMENT, "malformed amqp call frame");
      const out = this.#ch.current ?? f.ch;
      try {
        out.publish("", f.replyTo, encodeEnvelope(errorEnvelope("?", undefined, e)), {
          correlationId: f.corr,
          contentType: "application/json",
        });
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, "amqp reply not sent: channel closed");
      }
    },
    replyBounds: () => ({ limit: this.opts.maxBytes, max: this.opts.maxBytes, lone: Number.POSITIVE_INFINITY }),
    tooLarge: (size, limit) =>
      new FanError(Code.RESOURCE_EXHAUSTED, `reply of ${size} bytes exceeds the limit of ${limit}`),
    describe: (f) => ({ replyTo: f.replyTo }),
    settled: (f) => quietAck(f.ch, f.msg),
  };

  /** Publishes `reply` to the caller (when it left an address) and acks the request. */
  #reply(
    ch: Channel,
    msg: ConsumeMessage,
    replyTo: string | undefined,
    corr: string | undefined,
    reply: Envelope,
  ): void {
    if (replyTo !== undefined && corr !== undefined) {
      let body = encodeEnvelope(reply);
      if (body.length > this.opts.maxBytes) {
        const e = new FanError(
          Code.RESOURCE_EXHAUSTED,
          `reply of ${body.length} bytes exceeds the limit of ${this.opts.maxBytes}`,
        );
        body = encodeEnvelope(errorEnvelope(reply.id, reply, e));
      }
      const out = this.#ch.current ?? ch;
      try {
        out.publish("", replyTo, body, { correlationId: corr, contentType: "application/json" });
      } catch (e) {
        this.#log.warn({ err: (e as Error).message }, "amqp reply not sent: channel closed");
      }
    } else {
      const queue = msg.fields.routingKey;
      warnDropped(
        this.#log,
        { transport: "amqp", endpoint: queue, reason: "no reply address" },
        { queue, replyTo, corr, id: reply.id },
        "amqp call without a reply address dropped (its answer cannot be sent)",
      );
    }
    try {
      ch.ack(msg);
    } catch {
      // The request's channel is gone; the broker redelivers it (answered UNAVAILABLE unless idempotent).
    }
  }

  /** Stops consuming requests and pushes (cancellations still reach in-flight calls). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#work.unwatch();
    const ch = this.#ch.current;
    const tags = ch === undefined ? [] : (this.#tags.get(ch) ?? []);
    await Promise.all(tags.map((t) => bounded((ch as Channel).cancel(t), 2000)));
  }

  /** In-flight calls (running or waiting for a turn) plus unsettled pushes. */
  get busy(): number {
    return this.#inFlight.size + this.#work.inFlight;
  }

  /**
   * Aborts calls still running, gives their replies up to `graceMs` to go out, then closes the
   * channel; unacknowledged pushes return to the queue.
   */
  async close(graceMs: number): Promise<void> {
    this.#work.unwatch();
    for (const ac of this.#inFlight.values()) ac.abort();
    this.#pump.refuseWaiting();
    const until = Date.now() + graceMs;
    while (this.#inFlight.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    this.#pump.flush();
    await bounded(this.#ch.dispose(), 2000);
  }
}

/** Acks `msg`; a closed channel is ignored (the broker redelivers the request). */
function quietAck(ch: Channel, msg: ConsumeMessage): void {
  try {
    ch.ack(msg);
  } catch {
    // The request's channel is gone; the broker redelivers it (answered UNAVAILABLE unless idempotent).
  }
}
