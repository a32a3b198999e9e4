/**
 * Serving one service instance over amqp: the version's request queue (shared by every
 * instance of that version, bounded by prefetch, acked after the reply is sent), the
 * instance's own request queue (sharded calls to the shard's owner), the durable
 * push queue, and an exclusive queue on the control exchange that carries cancellations of
 * calls this instance is running. Everything is declared again on every (re)opened channel.
 *
 * A batch frame (batch-frame.ts: the calls a client made in one tick) is split into its calls;
 * the replies to one reply address that finish in one tick go back as one batch frame, and the
 * frame is acked once every call of it is answered and those replies were sent. `rpcPrefetch`
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
import { decodeEnvelope, encodeEnvelope, encodeEnvelopeText } from "../../codec/wire.js";
import { type BatchReader, FrameBuilder, isBatch, itemOverhead, readBatch } from "../batch-frame.js";
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
import { bounded } from "./waiters.js";
import { assertWorkQueue, WorkConsumer } from "./work.js";
import { decodeServed, errorEnvelope, refuse } from "../replies.js";
import { handlePush } from "../owner-push.js";

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

/**
 * Calls of frames started in one turn of the event loop; the rest wait for the next turn
 * (setImmediate), after the replies of these went out, so client and server work at the same
 * time (as nats rpc-server.ts does).
 */
const ITEMS_PER_TURN = 32;

/** A request message holding a batch frame: acked once every call of it is answered. */
interface Frame {
  readonly ch: Channel;
  readonly msg: ConsumeMessage;
  readonly replyTo: string;
  readonly corr: string;
  /** The client's correlation prefix with its dot: a cancellation names `{prefix}.{seq}`. */
  readonly client: string;
  readonly redelivered: boolean;
  /** Calls of it not answered yet, plus one while it is being read. */
  left: number;
}

/** Replies of this tick to one reply address, sent as one batch frame. */
interface Outbox {
  readonly replyTo: string;
  readonly corr: string;
  readonly frame: FrameBuilder;
  /** The channel a frame of it came on: replies go out there while no channel is current (during setup). */
  readonly ch: Channel;
}

/** A call of a frame waiting for its turn (see `#take`); in `#inFlight` already, so cancels reach it. */
interface Waiting {
  readonly frame: Frame;
  readonly seq: number;
  readonly body: Uint8Array;
  readonly ac: LazyAbort;
}

/** One served instance. */
export class AmqpServer {
  readonly #ch: ManagedChannel;
  readonly #addr: AmqpAddress;
  readonly #inFlight = new Map<string, LazyAbort>();
  readonly #tags = new WeakMap<Channel, string[]>();
  readonly #work: WorkConsumer;
  readonly #setup: Setup = (ch) => this.#declare(ch);
  readonly #log: Logger;
  #stopped = false;
  /** Replies of this tick, by reply address. */
  readonly #outbox = new Map<string, Outbox>();
  /** Frames whose every call is answered: acked once this tick's replies are sent. */
  #acks: Frame[] = [];
  #flushing = false;
  #frame: Frame | undefined;
  readonly #reader: BatchReader = { item: (seq, body) => this.#take(seq, body) };
  /** Calls of frames running now (bounded by rpcPrefetch). */
  #running = 0;
  /** Calls of frames started in this turn of the event loop (see ITEMS_PER_TURN). */
  #started = 0;
  #backlog: Waiting[] = [];
  #backlogAt = 0;
  #pumping = false;

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
    this.#work = new WorkConsumer((env) => inbound.push(env), {
      queue: pushQueue(this.#addr),
      maxDeliveries: opts.maxDeliveries,
      retryDelayMs: opts.retryDelayMs,
      maxBytes: opts.maxBytes,
      log: this.#log,
      ...(opts.onDeadLetter === undefined ? {} : { onDeadLetter: opts.onDeadLetter }),
    });
    this.#ch = conn.channel(`serve ${service.name}@${service.version}`, false);
    this.#ch.register(this.#setup);
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
    await assertWorkQueue(ch, {
      cluster: a.cluster,
      queue: push,
      deadLetterQueue: deadLetterQueue(push),
      maxDeliveries: this.opts.maxDeliveries,
    });
    await ch.prefetch(this.opts.pushPrefetch);
    tags.push((await ch.consume(push, (m) => this.#work.handle(ch, m))).consumerTag);
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
      this.#log.warn({ err: (e as Error).message, replyTo }, "undecodable amqp call");
      this.#reply(
        ch,
        msg,
        replyTo,
        corr,
        errorEnvelope(corr ?? "?", undefined, FanError.from(e, Code.INVALID_ARGUMENT)),
      );
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

  /** Splits a batch frame into its calls. */
  #onFrame(ch: Channel, msg: ConsumeMessage): void {
    const corr = typeof msg.properties.correlationId === "string" ? msg.properties.correlationId : undefined;
    const replyTo = typeof msg.properties.replyTo === "string" ? msg.properties.replyTo : undefined;
    if (replyTo === undefined || corr === undefined) {
      this.#log.warn({ replyTo, corr, bytes: msg.content.length }, "amqp call frame without a reply address dropped");
      quietAck(ch, msg);
      return;
    }
    const f: Frame = {
      ch,
      msg,
      replyTo,
      corr,
      client: corr.slice(0, corr.lastIndexOf(".") + 1),
      redelivered: msg.fields.redelivered,
      left: 1,
    };
    this.#frame = f;
    // A frame of no item (`#` alone) reads as a good one: malformed too, so it is not dropped unanswered.
    if (msg.content.length === 1 || !readBatch(msg.content, this.#reader)) {
      this.#log.warn({ replyTo, bytes: msg.content.length }, "malformed amqp call frame");
      const e = new FanError(Code.INVALID_ARGUMENT, "malformed amqp call frame");
      const out = this.#ch.current ?? ch;
      try {
        out.publish("", replyTo, encodeEnvelope(errorEnvelope("?", undefined, e)), {
          correlationId: corr,
          contentType: "application/json",
        });
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, "amqp reply not sent: channel closed");
      }
    }
    this.#answered(f);
  }

  /**
   * One call of the frame being split (`#frame`): started now, or, once this turn has started
   * ITEMS_PER_TURN calls or rpcPrefetch calls are running, queued for later.
   */
  #take(seq: number, body: Uint8Array): void {
    const f = this.#frame as Frame;
    f.left++;
    if (this.#backlog.length === 0 && this.#started < ITEMS_PER_TURN && this.#running < this.opts.rpcPrefetch) {
      if (this.#started++ === 0) queueMicrotask(this.#newTurn);
      this.#onItem(f, seq, body);
      return;
    }
    const ac = new LazyAbort();
    this.#inFlight.set(`${f.client}${seq}`, ac);
    this.#backlog.push({ frame: f, seq, body, ac });
    this.#pumpLater();
  }

  readonly #newTurn = (): void => {
    this.#started = 0;
  };

  #pumpLater(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    setImmediate(this.#pump);
  }

  /** Starts waiting calls: up to ITEMS_PER_TURN, while fewer than rpcPrefetch run. */
  readonly #pump = (): void => {
    this.#pumping = false;
    const q = this.#backlog;
    let i = this.#backlogAt;
    const end = Math.min(q.length, i + ITEMS_PER_TURN);
    for (; i < end && this.#running < this.opts.rpcPrefetch; i++) {
      const w = q[i] as Waiting;
      this.#onItem(w.frame, w.seq, w.body, w.ac);
    }
    if (i < q.length) {
      // Under steady load the backlog may never empty: drop the calls started, once they are
      // half of it (each entry holds its frame's message), so it stays within twice what waits.
      if (i * 2 >= q.length) {
        q.splice(0, i);
        i = 0;
      }
      this.#backlogAt = i;
      // Full: a call finishing pumps again.
      if (this.#running < this.opts.rpcPrefetch) this.#pumpLater();
    } else {
      this.#backlog = [];
      this.#backlogAt = 0;
    }
  };

  /** Starts one call of a frame; `queued` is its abort when it waited in the backlog (see `#take`). */
  #onItem(f: Frame, seq: number, body: Uint8Array, queued?: LazyAbort): void {
    const key = `${f.client}${seq}`;
    if (queued !== undefined) this.#inFlight.delete(key);
    const env = decodeServed(this.service, body, this.opts.maxBytes, true, "this queue");
    if (env instanceof FanError) {
      if (env.code !== Code.NOT_FOUND)
        this.#log.warn({ err: env.message, replyTo: f.replyTo, bytes: body.length }, "undecodable amqp call");
      this.#queue(f, seq, errorEnvelope("?", undefined, env));
      return;
    }
    if (env.kind === "push") {
      // A @shard push to this owner (owner-push.ts): acknowledged to the producer once handled.
      void handlePush(this.inbound, env).then((out) => this.#queue(f, seq, out));
      return;
    }
    let refused: FanError | undefined;
    if (f.redelivered && this.service.methods[env.method]?.idempotent !== true)
      refused = new FanError(
        Code.UNAVAILABLE,
        "the server handling this call was lost; not retried because the method is not idempotent",
      );
    else if (queued?.aborted === true) refused = new FanError(Code.CANCELLED, "cancelled before it started");
    else if (typeof env.headers.deadline === "number" && env.headers.deadline <= Date.now())
      // The frame lives until its latest call's deadline; this call's own passed while it waited.
      refused = new FanError(Code.DEADLINE_EXCEEDED, `deadline of ${env.method} passed before the call started`);
    if (refused !== undefined) {
      this.#queue(f, seq, errorEnvelope(env.id, env, refused));
      return;
    }
    const ac = queued ?? new LazyAbort();
    this.#inFlight.set(key, ac);
    this.#running++;
    this.inbound.call(env, ac).then(
      (out) => this.#itemDone(f, seq, key, out),
      (e: unknown) => this.#itemDone(f, seq, key, errorEnvelope(env.id, env, FanError.from(e))),
    );
  }

  #itemDone(f: Frame, seq: number, key: string, out: Envelope): void {
    this.#inFlight.delete(key);
    this.#running--;
    this.#queue(f, seq, out);
    if (this.#backlog.length > 0) this.#pumpLater();
  }

  /** Queues a call's reply for this tick's frame to its reply address (sent at once when the frame is full). */
  #queue(f: Frame, seq: number, out: Envelope): void {
    const max = this.opts.maxBytes;
    let json = encodeEnvelopeText(out);
    let size = Buffer.byteLength(json, "utf8");
    if (size > max) {
      const e = new FanError(Code.RESOURCE_EXHAUSTED, `reply of ${size} bytes exceeds the limit of ${max}`);
      json = encodeEnvelopeText(errorEnvelope(out.id, out, e));
      size = Buffer.byteLength(json, "utf8");
    }
    let box = this.#outbox.get(f.replyTo);
    if (box !== undefined && box.frame.bytes + size + itemOverhead(seq) > max) {
      this.#outbox.delete(f.replyTo);
      this.#send(box);
      box = undefined;
    }
    if (box === undefined) {
      box = { replyTo: f.replyTo, corr: f.corr, frame: new FrameBuilder(), ch: f.ch };
      this.#outbox.set(f.replyTo, box);
    }
    box.frame.add(seq, json, size);
    this.#answered(f);
  }

  /** One call of `f` answered (or its reading done): once all are, `f` is acked after this tick's replies. */
  #answered(f: Frame): void {
    if (--f.left === 0) this.#acks.push(f);
    if (!this.#flushing) {
      this.#flushing = true;
      process.nextTick(() => this.#flushReplies());
    }
  }

  /** Sends this tick's reply frames, then acks the frames they finished. */
  #flushReplies(): void {
    this.#flushing = false;
    for (const box of this.#outbox.values()) this.#send(box);
    this.#outbox.clear();
    const acks = this.#acks;
    if (acks.length === 0) return;
    this.#acks = [];
    for (const f of acks) quietAck(f.ch, f.msg);
  }

  #send(box: Outbox): void {
    const out = this.#ch.current ?? box.ch;
    try {
      out.publish("", box.replyTo, Buffer.from(box.frame.text, "utf8"), {
        correlationId: box.corr,
        contentType: "application/json",
      });
    } catch (e) {
      this.#log.warn({ err: (e as Error).message, calls: box.frame.count }, "amqp reply not sent");
    }
  }

  /**
   * Answers the calls of frames still waiting for a turn (closing): they never started here, so
   * UNAVAILABLE, at once — not once the running calls (which may ignore their abort) finish, nor
   * at their deadline after the channel closed with their frames unacked.
   */
  #refuseWaiting(): void {
    const q = this.#backlog;
    const from = this.#backlogAt;
    this.#backlog = [];
    this.#backlogAt = 0;
    const e = new FanError(Code.UNAVAILABLE, "the serving instance closed before the call started");
    for (let i = from; i < q.length; i++) {
      const w = q[i] as Waiting;
      this.#inFlight.delete(`${w.frame.client}${w.seq}`);
      let env: Envelope | undefined;
      try {
        env = decodeEnvelope(w.body, { maxBytes: this.opts.maxBytes });
      } catch {
        env = undefined;
      }
      this.#queue(w.frame, w.seq, errorEnvelope(env?.id ?? "?", env, e));
    }
  }

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
      this.#log.warn({ replyTo, corr }, "amqp call without a reply address dropped");
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
    for (const ac of this.#inFlight.values()) ac.abort();
    this.#refuseWaiting();
    const until = Date.now() + graceMs;
    while (this.#inFlight.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    this.#flushReplies();
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
