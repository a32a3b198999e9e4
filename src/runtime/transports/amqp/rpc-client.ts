/**
 * The calling side of amqp rpc: the calls made in one tick to one request queue (the version's,
 * or a shard owner's own queue) travel as one AMQP message (batched by the shared core,
 * batching/calls.ts), a batch frame (batch-frame.ts) whose
 * items carry this client's sequence numbers, sent with the client channel's own reply queue
 * (exclusive, auto-deleted: `replyQueue`) and a correlation id naming the batch
 * (`{prefix}.{batch}`). Not RabbitMQ's direct reply-to: on RabbitMQ 3.10 a round trip through
 * it took ~30 µs longer than through a queue (docs/decisions.md). Replies come back as batch
 * frames too, matched by sequence number; a plain envelope answering a batch's
 * correlation id (a server that could not read the frame) settles all of its calls. A lone call
 * is sent in the tick it was made (no waiting for company). The frame's `expiration` is the
 * latest deadline of its calls (each call's own deadline travels in its envelope and is checked
 * by the server). A mandatory publish the broker returns (no queue) fails every call of the
 * frame as never delivered. A cancelled call still queued is left out of its frame; one already
 * sent is announced on the control exchange (`{prefix}.{seq}`), where every serving instance of
 * that version listens.
 */
import { randomBytes } from "node:crypto";
import type { Channel, ConfirmChannel, ConsumeMessage } from "amqplib";
import type { Logger } from "pino";
import { notSent } from "../../call/outcome.js";
import { encodeEnvelopeText } from "../../codec/wire.js";
import { Code, FanError } from "../../errors.js";
import { isBatch } from "../batch-frame.js";
import { type CallBatch, CallBatcher, type PendingCall, release, withDeadline } from "../batching/calls.js";
import { notDelivered } from "../not-delivered.js";
import type { Envelope, SendOptions } from "../transport.js";
import type { AmqpConnection, ManagedChannel } from "./connection.js";
import { type AmqpAddress, callQueue, cancelKey, controlExchange, parseEndpoint, replyQueue } from "./names.js";
import { warnDropped } from "../../telemetry/drops.js";

const NACK_PAUSE_MS = 100;

type Batch = CallBatch<AmqpAddress, Channel>;
type Pending = PendingCall<AmqpAddress, Channel>;

/** Sends calls and matches replies by sequence number (frames) or correlation id (a batch's). */
export class AmqpRpcClient extends CallBatcher<AmqpAddress, Channel> {
  readonly #ch: ManagedChannel;
  readonly #prefix = randomBytes(6).toString("hex");
  readonly #prefixDot = `${this.#prefix}.`;
  /** Each channel's reply queue (a frame names the queue of the channel it is sent on). */
  readonly #replyTo = new WeakMap<Channel, string>();
  #channels = 0;
  /**
   * Channels taken out of use after a nack, with how many calls sent on them still wait on them
   * (settled or taken back by a later nack, they leave); closed when none is left.
   */
  readonly #retired = new Map<Channel, number>();
  /** Nacked batches waiting to be sent again, and what stops the wait once all their calls settled. */
  readonly #resending = new Map<Batch, AbortController>();

  constructor(
    conn: AmqpConnection,
    private readonly cluster: string,
    log: Logger,
    maxBytes: number,
    private readonly confirm = false,
  ) {
    super("amqp", log, maxBytes);
    this.#ch = conn.channel("rpc-client", confirm);
    this.#ch.register((ch) => this.#setup(ch));
    this.#ch.listen({
      onReturn: (msg) => this.#onReturn(msg),
      onLost: (ch) => this.#onLost(ch),
    });
  }

  async #setup(ch: Channel): Promise<void> {
    await ch.assertExchange(controlExchange(this.cluster), "direct", { durable: true });
    const q = replyQueue(this.cluster, this.#prefix, ++this.#channels);
    await ch.assertQueue(q, {
      exclusive: true,
      autoDelete: true,
      durable: false,
      arguments: { "x-queue-type": "classic" },
    });
    await ch.consume(q, (msg) => this.#onReply(ch, msg), { noAck: true });
    this.#replyTo.set(ch, q);
  }

  /** While the channel is not ready: the error a call waiting for it gets at its deadline. */
  stalled(): FanError | undefined {
    return this.#ch.stalled();
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
    const sharded = (env.headers.shard !== undefined || opts.instance === true) && addr.instance !== undefined;
    const queue = callQueue(addr, sharded);
    // The channel is open and set up (the usual case): queued for this tick's frame at once.
    if (this.#ch.ready !== undefined) return this.queue(addr, queue, sharded, json, size, opts);
    return this.#ch.get(opts.deadline, opts.signal).then(() => {
      if (opts.deadline <= Date.now())
        throw new FanError(Code.DEADLINE_EXCEEDED, "deadline passed before the call was sent");
      return this.queue(addr, queue, sharded, json, size, opts);
    });
  }

  protected frameLimit(): number {
    return this.maxBytes;
  }

  /** Publishes a frame (mandatory: a frame no queue takes comes back, `#onReturn`). */
  protected send(b: Batch, text: string, latest: number): Channel {
    const ch = this.#ch.ready;
    const replyTo = ch === undefined ? undefined : this.#replyTo.get(ch);
    if (ch === undefined || replyTo === undefined)
      throw new FanError(Code.UNAVAILABLE, "amqp channel lost before the call was sent");
    const props = {
      correlationId: `${this.#prefixDot}${b.id}`,
      replyTo,
      mandatory: true,
      contentType: "application/json",
      ...(Number.isFinite(latest) ? { expiration: String(Math.max(1, Math.ceil(latest - Date.now()))) } : {}),
    };
    const body = Buffer.from(text, "utf8");
    const calls = b.calls;
    if (!this.confirm) {
      ch.publish("", b.dest, body, props);
      release(calls);
    } else
      (ch as ConfirmChannel).publish("", b.dest, body, props, (err: unknown) => {
        if (err === null || err === undefined) {
          release(calls);
          return;
        }
        // amqplib fails every unconfirmed publish when the channel closes, before the managed
        // channel hears of the close: that is no nack (the frame may have been enqueued and
        // run). Told after the close was handled, its calls are settled already (`#onLost`).
        queueMicrotask(() => this.#nacked(ch, b));
      });
    return ch;
  }

  protected override forgotten(p: Pending): void {
    if (p.via !== undefined) this.#leave(p.via, 1);
    const b = p.batch;
    if (b === undefined || b.open > 0 || this.#resending.size === 0) return;
    const waiting = this.#resending.get(b);
    if (waiting === undefined) return;
    this.#resending.delete(b);
    waiting.abort();
  }

  protected announceCancel(p: Pending): void {
    const ch = this.#ch.current;
    if (ch === undefined) return;
    const addr = p.addr;
    const key = `${this.#prefixDot}${p.seq}`;
    const send = (): void => {
      ch.publish(controlExchange(addr.cluster), cancelKey(addr.service, addr.version), Buffer.from(key));
    };
    const declared =
      addr.cluster === this.cluster
        ? Promise.resolve()
        : ch.assertExchange(controlExchange(addr.cluster), "direct", { durable: true });
    declared.then(send).catch((e: unknown) => this.log.debug({ err: (e as Error).message }, "amqp cancel not sent"));
  }

  /**
   * The broker nacked a frame (confirm mode, for quorum request queues): it was not enqueued,
   * so its calls still open are framed and sent again on a fresh channel. A channel whose first
   * publish to a quorum queue came while the queue had no leader keeps nacking (RabbitMQ 3.10),
   * hence the new channel. The old one is retired, not closed: the other frames sent on it are
   * being served and their replies come to its reply queue's consumer; it is closed once none
   * is pending.
   */
  #nacked(ch: Channel, b: Batch): void {
    // Settled meanwhile (the channel closed: `#onLost` failed its calls as possibly run).
    if (this.batch(b.id) !== b || b.via !== ch) return;
    const calls = this.reopen(b);
    let latest = 0;
    for (const p of calls) if (p.deadline > latest) latest = p.deadline;
    if (this.#ch.retire(ch)) {
      // Closed under us (connection lost): its calls are lost as they would be on the current one.
      ch.once("close", () => {
        this.#retired.delete(ch);
        this.#onLost(ch);
      });
      this.log.warn(
        { queue: b.dest, calls: calls.length },
        "amqp broker nacked a call frame; sending its calls again on a fresh rpc channel",
      );
      let open = 0;
      for (const p of this.waiting()) if (p.via === ch) open++;
      if (open > 0) this.#retired.set(ch, open);
      else ch.close().catch(() => undefined);
    } else this.#leave(ch, calls.length);
    // Stopped when every call of it settled meanwhile (cancelled, expired): while the broker is
    // down, the wait would otherwise hold them until it comes back or the latest deadline passes.
    const waiting = new AbortController();
    this.#resending.set(b, waiting);
    setTimeout(() => {
      if (waiting.signal.aborted) return;
      this.#ch.get(latest, waiting.signal).then(
        () => {
          this.#resending.delete(b);
          this.resend(calls);
        },
        (e: unknown) => {
          this.#resending.delete(b);
          for (const p of calls) p.settle(notSent(e));
        },
      );
    }, NACK_PAUSE_MS).unref();
  }

  /** `n` calls sent on `ch` no longer wait on it: a retired channel is closed when none does. */
  #leave(ch: Channel, n: number): void {
    const open = this.#retired.get(ch);
    if (open === undefined) return;
    if (open > n) {
      this.#retired.set(ch, open - n);
      return;
    }
    this.#retired.delete(ch);
    ch.close().catch(() => undefined);
  }

  /** The batch a correlation id of this client names. */
  #batchOf(corr: unknown): Batch | undefined {
    if (typeof corr !== "string" || !corr.startsWith(this.#prefixDot)) return undefined;
    return this.batch(Number(corr.slice(this.#prefixDot.length)));
  }

  #onReply(ch: Channel, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The broker cancelled the consumer: the reply queue was deleted (an operator, `rabbitmqctl
      // delete_queue`). Replies to the calls sent on this channel would be dropped, and the next
      // frames would name the same queue: closing the channel fails those calls (`#onLost`) and
      // the managed channel reopens with a reply queue of its own.
      this.log.warn("amqp reply queue's consumer cancelled by the broker; reopening the rpc channel");
      ch.close().catch(() => undefined);
      return;
    }
    const data = msg.content;
    if (isBatch(data)) {
      if (!this.readFrame(data))
        warnDropped(
          this.log,
          { transport: "amqp", endpoint: "reply queue", reason: "malformed frame" },
          { bytes: data.length },
          "malformed amqp reply frame dropped",
        );
      return;
    }
    // Not a frame: one envelope answering a whole batch (a server that could not read it).
    const b = this.#batchOf(msg.properties.correlationId);
    if (b !== undefined) this.answerBatch(b, data);
  }

  #onReturn(msg: ConsumeMessage): void {
    const b = this.#batchOf(msg.properties.correlationId);
    if (b === undefined) return;
    // Returned by the broker: no queue took it, so no server saw any of its calls.
    this.failBatch(b, (p) => {
      const what = `${p.addr.service}@${p.addr.version}`;
      const who = p.sharded ? `instance ${p.addr.instance} of ${what} is not` : `no instance of ${what} is`;
      return notDelivered(new FanError(Code.UNAVAILABLE, `${who} serving on amqp (no request queue)`));
    });
  }

  #onLost(ch: Channel): void {
    for (const p of [...this.waiting()]) {
      if (p.via === ch) p.settle(new FanError(Code.UNAVAILABLE, "amqp connection lost while the call was in flight"));
    }
  }

  /** Fails every pending call (queued ones too) and closes the channel. */
  close(): void {
    this.failAll(() => new FanError(Code.UNAVAILABLE, "amqp transport closed"));
    void this.#ch.dispose();
  }
}
