/**
 * The calling side of amqp rpc: the calls made in one tick to one request queue (the version's,
 * or a shard owner's own queue) travel as one AMQP message, a batch frame (batch-frame.ts) whose
 * items carry this client's sequence numbers, sent with RabbitMQ's direct reply-to
 * (`amq.rabbitmq.reply-to`) and a correlation id naming the batch (`{prefix}.{batch}`). Replies
 * come back as batch frames too, matched by sequence number; a plain envelope answering a batch's
 * correlation id (a server that could not read the frame) settles all of its calls. A lone call
 * is sent in the tick it was made (no waiting for company). The frame's `expiration` is the
 * latest deadline of its calls (each call's own deadline travels in its envelope and is checked
 * by the server). A mandatory publish the broker returns (no queue) fails every call of the
 * frame as never delivered. A cancelled call still queued is left out of its frame; one already
 * sent is announced on the control exchange (`{prefix}.{seq}`), where every serving instance of
 * that version listens.
 */
import { notDelivered } from "../not-delivered.js";
import { randomBytes } from "node:crypto";
import type { Channel, ConfirmChannel, ConsumeMessage } from "amqplib";
import { notSent } from "../../call/outcome.js";
import type { Logger } from "pino";
import { deadlines, type Expirable } from "../../call/deadlines.js";
import { type AbortTarget, unwatchAbort, watchAbort } from "../abort.js";
import { Code, FanError } from "../../errors.js";
import type { Envelope, SendOptions } from "../transport.js";
import { decodeEnvelope, encodeEnvelopeText } from "../../codec/wire.js";
import { type BatchReader, FrameBuilder, isBatch, itemOverhead, readBatch } from "../batch-frame.js";
import type { AmqpConnection, ManagedChannel } from "./connection.js";
import { callQueue, cancelKey, controlExchange, parseEndpoint, rpcQueue, type AmqpAddress } from "./names.js";

const REPLY_TO = "amq.rabbitmq.reply-to";
const NACK_PAUSE_MS = 100;

/**
 * Most calls one message carries: a tick's calls to a version are still spread over its
 * instances (each message goes to one consumer of the queue) when there are many.
 */
export const MAX_BATCH = 32;

/** Calls of one tick to one queue: one message, and what a return, nack or plain reply to it concerns. */
class Batch {
  calls: PendingReply[] = [];
  /** The frame's UTF-8 size so far. */
  bytes = 1;
  /** Calls of this batch not settled yet. */
  open = 0;
  /** The channel it went out on (undefined while queued). */
  ch: Channel | undefined = undefined;

  constructor(
    readonly queue: string,
    readonly id: number,
  ) {}
}

/** Sends calls and matches replies by sequence number (frames) or correlation id (a batch's). */
export class AmqpRpcClient implements BatchReader {
  readonly #ch: ManagedChannel;
  readonly #pending = new Map<number, PendingReply>();
  /** Batches sent with calls still waiting, by id (their correlation id's last token). */
  readonly #batches = new Map<number, Batch>();
  /** Batches of this tick not sent yet, by queue. */
  readonly #outbox = new Map<string, Batch>();
  #flushing = false;
  readonly #prefix = randomBytes(6).toString("hex");
  readonly #prefixDot = `${this.#prefix}.`;
  /** Channels taken out of use after a nack, still carrying calls sent before it; closed once those settle. */
  readonly #retired = new Set<Channel>();
  #seq = 0;
  #batchSeq = 0;

  constructor(
    conn: AmqpConnection,
    private readonly cluster: string,
    private readonly log: Logger,
    private readonly maxBytes: number,
    private readonly confirm = false,
  ) {
    this.#ch = conn.channel("rpc-client", confirm);
    this.#ch.register((ch) => this.#setup(ch));
    this.#ch.listen({
      onReturn: (msg) => this.#onReturn(msg),
      onLost: (ch) => this.#onLost(ch),
    });
  }

  async #setup(ch: Channel): Promise<void> {
    await ch.assertExchange(controlExchange(this.cluster), "direct", { durable: true });
    await ch.consume(REPLY_TO, (msg) => this.#onReply(msg), { noAck: true });
  }

  /** Sends `env` to `endpoint`'s request queue; resolves with the reply or error envelope. */
  call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope> {
    let addr: AmqpAddress;
    let json: string;
    let size: number;
    try {
      addr = parseEndpoint(endpoint);
      if (opts.signal.aborted) throw new FanError(Code.CANCELLED, "cancelled");
      json = encodeEnvelopeText(withDeadline(env, opts.deadline));
      size = Buffer.byteLength(json, "utf8");
      if (size > this.maxBytes) {
        throw new FanError(Code.RESOURCE_EXHAUSTED, `call of ${size} bytes exceeds the limit of ${this.maxBytes}`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    const queue = callQueue(addr, env.headers.shard !== undefined);
    // The channel is open and set up (the usual case): queued for this tick's frame at once.
    if (this.#ch.ready !== undefined) return this.#send(addr, queue, json, size, opts);
    return this.#ch.get(opts.deadline, opts.signal).then(() => {
      if (opts.deadline <= Date.now())
        throw new FanError(Code.DEADLINE_EXCEEDED, "deadline passed before the call was sent");
      return this.#send(addr, queue, json, size, opts);
    });
  }

  #send(addr: AmqpAddress, queue: string, json: string, size: number, opts: SendOptions): Promise<Envelope> {
    const seq = ++this.#seq;
    const promise = new Promise<Envelope>(capture);
    const p = new PendingReply(
      this,
      seq,
      addr,
      queue,
      json,
      size,
      opts.signal,
      captured.resolve,
      captured.reject,
      opts.deadline,
    );
    this.#pending.set(seq, p);
    if (p.finite) deadlines.add(p, opts.deadline);
    watchAbort(opts.signal, p);
    this.#enqueue(p);
    return promise;
  }

  /** Adds a call to this tick's batch for its queue (sending that batch first when it is full). */
  #enqueue(p: PendingReply): void {
    let b = this.#outbox.get(p.queue);
    // A frame stays within maxBytes unless it holds one call (whose own size is bounded by it).
    if (b !== undefined && (b.calls.length >= MAX_BATCH || b.bytes + p.size + itemOverhead(p.seq) > this.maxBytes)) {
      this.#outbox.delete(p.queue);
      this.#publish(b);
      b = undefined;
    }
    if (b === undefined) {
      b = new Batch(p.queue, ++this.#batchSeq);
      this.#outbox.set(p.queue, b);
    }
    p.batch = b;
    b.calls.push(p);
    b.bytes += p.size + itemOverhead(p.seq);
    b.open++;
    if (!this.#flushing) {
      this.#flushing = true;
      process.nextTick(() => this.#flush());
    }
  }

  /** Sends this tick's batches. */
  #flush(): void {
    this.#flushing = false;
    for (const b of this.#outbox.values()) this.#publish(b);
    this.#outbox.clear();
  }

  /** Sends a batch's calls still open (a call cancelled while queued is left out) as one frame. */
  #publish(b: Batch): void {
    if (b.open === 0) return;
    const calls = b.calls.filter((p) => this.#pending.get(p.seq) === p);
    b.calls = calls;
    const ch = this.#ch.ready;
    if (ch === undefined) {
      const e = new FanError(Code.UNAVAILABLE, "amqp channel lost before the call was sent");
      for (const p of calls) p.settle(notDelivered(e));
      return;
    }
    const frame = new FrameBuilder();
    let latest = 0;
    for (const p of calls) {
      frame.add(p.seq, p.json, p.size);
      p.ch = ch;
      if (p.deadline > latest) latest = p.deadline;
    }
    b.ch = ch;
    this.#batches.set(b.id, b);
    const props = {
      correlationId: `${this.#prefixDot}${b.id}`,
      replyTo: REPLY_TO,
      mandatory: true,
      contentType: "application/json",
      ...(Number.isFinite(latest) ? { expiration: String(Math.max(1, Math.ceil(latest - Date.now()))) } : {}),
    };
    const body = Buffer.from(frame.text, "utf8");
    try {
      if (!this.confirm) {
        ch.publish("", b.queue, body, props);
        release(calls);
      } else
        (ch as ConfirmChannel).publish("", b.queue, body, props, (err: unknown) => {
          if (err === null || err === undefined) {
            release(calls);
            return;
          }
          // amqplib fails every unconfirmed publish when the channel closes, before the managed
          // channel hears of the close: that is no nack (the frame may have been enqueued and
          // run). Told after the close was handled, its calls are settled already (`#onLost`).
          queueMicrotask(() => this.#nacked(ch, b));
        });
    } catch (e) {
      const err = notDelivered(
        new FanError(Code.UNAVAILABLE, `amqp publish failed: ${(e as Error).message}`, { cause: e }),
      );
      for (const p of calls) p.settle(err);
    }
  }

  /** Forgets a pending call; false when it was already settled. */
  forget(p: PendingReply): boolean {
    if (this.#pending.get(p.seq) !== p) return false;
    this.#pending.delete(p.seq);
    p.json = "";
    const b = p.batch;
    if (b !== undefined && --b.open === 0 && this.#batches.get(b.id) === b) this.#batches.delete(b.id);
    if (p.ch !== undefined && this.#retired.has(p.ch)) this.#closeIfIdle(p.ch);
    return true;
  }

  /** A cancelled call: announced to the instances of its version when it left already. */
  cancelled(p: PendingReply): void {
    if (p.ch !== undefined) this.#sendCancel(p.addr, `${this.#prefixDot}${p.seq}`);
  }

  /**
   * The broker nacked a frame (confirm mode, for quorum request queues): it was not enqueued,
   * so its calls still open are framed and sent again on a fresh channel. A channel whose first
   * publish to a quorum queue came while the queue had no leader keeps nacking (RabbitMQ 3.10),
   * hence the new channel. The old one is retired, not closed: the other frames sent on it are
   * being served and their replies come to its direct reply-to consumer; it is closed once none
   * is pending.
   */
  #nacked(ch: Channel, b: Batch): void {
    // Settled meanwhile (the channel closed: `#onLost` failed its calls as possibly run).
    if (this.#batches.get(b.id) !== b || b.ch !== ch) return;
    this.#batches.delete(b.id);
    const calls = b.calls.filter((p) => this.#pending.get(p.seq) === p);
    let latest = 0;
    for (const p of calls) {
      p.ch = undefined;
      p.batch = undefined;
      if (p.deadline > latest) latest = p.deadline;
    }
    if (this.#ch.retire(ch)) {
      this.#retired.add(ch);
      // Closed under us (connection lost): its calls are lost as they would be on the current one.
      ch.once("close", () => {
        this.#retired.delete(ch);
        this.#onLost(ch);
      });
      this.log.warn(
        { queue: b.queue, calls: calls.length },
        "amqp broker nacked a call frame; sending its calls again on a fresh rpc channel",
      );
      this.#closeIfIdle(ch);
    }
    setTimeout(() => {
      if (!calls.some((p) => this.#pending.get(p.seq) === p)) return;
      this.#ch.get(latest).then(
        () => {
          for (const p of calls) if (this.#pending.get(p.seq) === p) this.#enqueue(p);
        },
        (e: unknown) => {
          for (const p of calls) p.settle(notSent(e));
        },
      );
    }, NACK_PAUSE_MS).unref();
  }

  /** Closes a retired channel once no pending call went out on it. */
  #closeIfIdle(ch: Channel): void {
    for (const p of this.#pending.values()) if (p.ch === ch) return;
    this.#retired.delete(ch);
    ch.close().catch(() => undefined);
  }

  #sendCancel(addr: AmqpAddress, key: string): void {
    const ch = this.#ch.current;
    if (ch === undefined) return;
    const send = (): void => {
      ch.publish(controlExchange(addr.cluster), cancelKey(addr.service, addr.version), Buffer.from(key));
    };
    const declared =
      addr.cluster === this.cluster
        ? Promise.resolve()
        : ch.assertExchange(controlExchange(addr.cluster), "direct", { durable: true });
    declared.then(send).catch((e: unknown) => this.log.debug({ err: (e as Error).message }, "amqp cancel not sent"));
  }

  /** The batch a correlation id of this client names. */
  #batchOf(corr: unknown): Batch | undefined {
    if (typeof corr !== "string" || !corr.startsWith(this.#prefixDot)) return undefined;
    return this.#batches.get(Number(corr.slice(this.#prefixDot.length)));
  }

  #onReply(msg: ConsumeMessage | null): void {
    if (msg === null) return;
    const data = msg.content;
    if (isBatch(data)) {
      if (!readBatch(data, this)) this.log.warn({ bytes: data.length }, "malformed amqp reply frame");
      return;
    }
    // Not a frame: one envelope answering a whole batch (a server that could not read it).
    const b = this.#batchOf(msg.properties.correlationId);
    if (b === undefined) return;
    let result: Envelope | FanError;
    try {
      result = decodeEnvelope(data, { maxBytes: this.maxBytes });
    } catch (e) {
      result = FanError.from(e);
    }
    for (const p of [...b.calls]) p.settle(result);
  }

  /** One reply of a batch frame. */
  item(seq: number, body: Uint8Array): void {
    const p = this.#pending.get(seq);
    if (p === undefined) return;
    try {
      p.settle(decodeEnvelope(body, { maxBytes: this.maxBytes }));
    } catch (e) {
      p.settle(FanError.from(e));
    }
  }

  #onReturn(msg: ConsumeMessage): void {
    const b = this.#batchOf(msg.properties.correlationId);
    if (b === undefined) return;
    // Returned by the broker: no queue took it, so no server saw any of its calls.
    for (const p of [...b.calls]) {
      const who = p.queue === rpcQueue(p.addr) ? "version" : `instance ${p.addr.instance}`;
      p.settle(
        notDelivered(
          new FanError(Code.UNAVAILABLE, `no amqp request queue for ${p.addr.service}@${p.addr.version} (${who})`),
        ),
      );
    }
  }

  #onLost(ch: Channel): void {
    for (const p of [...this.#pending.values()]) {
      if (p.ch === ch) p.settle(new FanError(Code.UNAVAILABLE, "amqp connection lost while the call was in flight"));
    }
  }

  /** Fails every pending call (queued ones too) and closes the channel. */
  close(): void {
    for (const p of [...this.#pending.values()]) p.settle(new FanError(Code.UNAVAILABLE, "amqp transport closed"));
    this.#outbox.clear();
    void this.#ch.dispose();
  }
}

/**
 * Lets go of the request JSON of calls whose frame the broker has: a call can wait long for its
 * reply, and its batch (kept while any call of it waits) would otherwise hold every request of it.
 */
function release(calls: readonly PendingReply[]): void {
  for (const p of calls) p.json = "";
}

/** The envelope with the send deadline in its headers, so the server sees the caller's budget. */
export function withDeadline(env: Envelope, deadline: number): Envelope {
  if (!Number.isFinite(deadline) || env.headers.deadline === deadline) return env;
  return { ...env, headers: { ...env.headers, deadline } };
}

/** The resolving functions of the promise just made by `new Promise(capture)` (one shared executor). */
const captured: { resolve: (v: Envelope) => void; reject: (e: unknown) => void } = {
  resolve: () => undefined,
  reject: () => undefined,
};

function capture(resolve: (v: Envelope) => void, reject: (e: unknown) => void): void {
  captured.resolve = resolve;
  captured.reject = reject;
}

/** One call waiting for its reply: settles once (reply, return, error, deadline or cancellation). */
class PendingReply implements Expirable, AbortTarget {
  bucket = 0;
  prev: Expirable | undefined = undefined;
  next: Expirable | undefined = undefined;
  readonly finite: boolean;
  /** The batch it is queued in or went out with; undefined while a nacked call waits to be sent again. */
  batch: Batch | undefined = undefined;
  /** The channel its frame went out on; undefined while queued. */
  ch: Channel | undefined = undefined;

  constructor(
    private readonly client: AmqpRpcClient,
    readonly seq: number,
    readonly addr: AmqpAddress,
    readonly queue: string,
    /**
     * The envelope's JSON and its UTF-8 size: kept to frame it again after a nack, until its
     * frame is taken by the broker (sent, or confirmed on a confirm channel; `release`).
     */
    public json: string,
    readonly size: number,
    private readonly signal: AbortSignal,
    private readonly resolve: (v: Envelope) => void,
    private readonly reject: (e: unknown) => void,
    readonly deadline: number,
  ) {
    this.finite = Number.isFinite(deadline);
  }

  expire(): void {
    this.settle(new FanError(Code.DEADLINE_EXCEEDED, `no reply from ${this.addr.service} before the deadline`));
  }

  aborted(): void {
    this.settle(new FanError(Code.CANCELLED, "cancelled"));
    this.client.cancelled(this);
  }

  settle(result: Envelope | FanError): void {
    if (!this.client.forget(this)) return;
    if (this.finite) deadlines.remove(this);
    unwatchAbort(this.signal, this);
    if (result instanceof FanError) this.reject(result);
    else this.resolve(result);
  }
}
