/**
 * The calling side of amqp rpc: requests go to the service version's request queue with a
 * correlation id and RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`), so replies need no
 * queue of their own. A cancelled call is announced on the control exchange, where every
 * serving instance of that version listens.
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
import { decodeEnvelope, encodeEnvelope } from "../../codec/wire.js";
import type { AmqpConnection, ManagedChannel } from "./connection.js";
import { callQueue, cancelKey, controlExchange, parseEndpoint, rpcQueue, type AmqpAddress } from "./names.js";

const REPLY_TO = "amq.rabbitmq.reply-to";
const NACK_PAUSE_MS = 100;

interface Pending {
  /** The channel the call went out on; undefined while a nacked call waits to be sent again. */
  ch: Channel | undefined;
  readonly addr: AmqpAddress;
  readonly queue: string;
  settle(result: Envelope | FanError): void;
}

/** Sends calls and matches replies by correlation id. */
export class AmqpRpcClient {
  readonly #ch: ManagedChannel;
  readonly #pending = new Map<string, Pending>();
  readonly #prefix = randomBytes(6).toString("hex");
  /** Channels taken out of use after a nack, still carrying calls sent before it; closed once those settle. */
  readonly #retired = new Set<Channel>();
  #seq = 0;

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
    let body: Buffer;
    try {
      addr = parseEndpoint(endpoint);
      if (opts.signal.aborted) throw new FanError(Code.CANCELLED, "cancelled");
      body = encodeEnvelope(withDeadline(env, opts.deadline));
      if (body.length > this.maxBytes) {
        throw new FanError(Code.RESOURCE_EXHAUSTED, `call of ${body.length} bytes exceeds the limit of ${this.maxBytes}`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    const queue = callQueue(addr, env.headers.shard !== undefined);
    // The channel is open and set up (the usual case): sent in this same synchronous run.
    const ready = this.#ch.ready;
    if (ready !== undefined) return this.#send(ready, addr, queue, body, opts);
    return this.#ch.get(opts.deadline, opts.signal).then((ch) => {
      if (opts.deadline <= Date.now())
        throw new FanError(Code.DEADLINE_EXCEEDED, "deadline passed before the call was sent");
      return this.#send(ch, addr, queue, body, opts);
    });
  }

  #send(ch: Channel, addr: AmqpAddress, queue: string, body: Buffer, opts: SendOptions): Promise<Envelope> {
    const corr = `${this.#prefix}.${++this.#seq}`;
    const promise = new Promise<Envelope>(capture);
    const p = new PendingReply(this, ch, addr, queue, corr, opts.signal, captured.resolve, captured.reject, opts.deadline);
    this.#pending.set(corr, p);
    if (p.finite) deadlines.add(p, opts.deadline);
    watchAbort(opts.signal, p);
    this.#publish(ch, p, corr, body, opts.deadline);
    return promise;
  }

  /** Forgets a pending call; false when it was already settled. */
  forget(corr: string, p: Pending): boolean {
    if (!this.#pending.delete(corr)) return false;
    if (p.ch !== undefined && this.#retired.has(p.ch)) this.#closeIfIdle(p.ch);
    return true;
  }

  /** A cancelled call: announced to the instances of its version. */
  cancelled(addr: AmqpAddress, corr: string): void {
    this.#sendCancel(addr, corr);
  }

  #publish(ch: Channel, p: Pending, corr: string, body: Buffer, deadline: number): void {
    const props = {
      correlationId: corr,
      replyTo: REPLY_TO,
      mandatory: true,
      contentType: "application/json",
      ...(Number.isFinite(deadline) ? { expiration: String(Math.max(1, Math.ceil(deadline - Date.now()))) } : {}),
    };
    try {
      if (!this.confirm) ch.publish("", p.queue, body, props);
      else
        (ch as ConfirmChannel).publish("", p.queue, body, props, (err: unknown) => {
          if (err !== null && err !== undefined) this.#nacked(ch, p, corr, body, deadline);
        });
    } catch (e) {
      p.settle(new FanError(Code.UNAVAILABLE, `amqp publish failed: ${(e as Error).message}`, { cause: e }));
    }
  }

  /**
   * The broker nacked a call (confirm mode, for quorum request queues): it was not enqueued,
   * so it is sent again on a fresh channel. A channel whose first publish to a quorum queue
   * came while the queue had no leader keeps nacking (RabbitMQ 3.10), hence the new channel.
   * The old one is retired, not closed: the other calls sent on it are being served and their
   * replies come to its direct reply-to consumer; it is closed once none is pending.
   */
  #nacked(ch: Channel, p: Pending, corr: string, body: Buffer, deadline: number): void {
    if (!this.#pending.has(corr) || p.ch !== ch) return;
    p.ch = undefined;
    if (this.#ch.retire(ch)) {
      this.#retired.add(ch);
      // Closed under us (connection lost): its calls are lost as they would be on the current one.
      ch.once("close", () => {
        this.#retired.delete(ch);
        this.#onLost(ch);
      });
      this.log.warn({ queue: p.queue }, "amqp broker nacked a call; sending it again on a fresh rpc channel");
      this.#closeIfIdle(ch);
    }
    setTimeout(() => {
      if (!this.#pending.has(corr)) return;
      this.#ch.get(deadline).then(
        (next) => {
          if (!this.#pending.has(corr)) return;
          p.ch = next;
          this.#publish(next, p, corr, body, deadline);
        },
        (e: unknown) => p.settle(notSent(e)),
      );
    }, NACK_PAUSE_MS).unref();
  }

  /** Closes a retired channel once no pending call went out on it. */
  #closeIfIdle(ch: Channel): void {
    for (const p of this.#pending.values()) if (p.ch === ch) return;
    this.#retired.delete(ch);
    ch.close().catch(() => undefined);
  }

  #sendCancel(addr: AmqpAddress, corr: string): void {
    const ch = this.#ch.current;
    if (ch === undefined) return;
    const send = (): void => {
      ch.publish(controlExchange(addr.cluster), cancelKey(addr.service, addr.version), Buffer.from(corr));
    };
    const declared =
      addr.cluster === this.cluster
        ? Promise.resolve()
        : ch.assertExchange(controlExchange(addr.cluster), "direct", { durable: true });
    declared.then(send).catch((e: unknown) => this.log.debug({ err: (e as Error).message }, "amqp cancel not sent"));
  }

  #onReply(msg: ConsumeMessage | null): void {
    if (msg === null) return;
    const p = this.#pending.get(String(msg.properties.correlationId));
    if (p === undefined) return;
    try {
      p.settle(decodeEnvelope(msg.content, { maxBytes: this.maxBytes }));
    } catch (e) {
      p.settle(FanError.from(e));
    }
  }

  #onReturn(msg: ConsumeMessage): void {
    const p = this.#pending.get(String(msg.properties.correlationId));
    if (p === undefined) return;
    const who = p.queue === rpcQueue(p.addr) ? "version" : `instance ${p.addr.instance}`;
    // Returned by the broker: no queue took it, so no server saw it.
    p.settle(
      notDelivered(new FanError(Code.UNAVAILABLE, `no amqp request queue for ${p.addr.service}@${p.addr.version} (${who})`)),
    );
  }

  #onLost(ch: Channel): void {
    for (const p of [...this.#pending.values()]) {
      if (p.ch === ch) p.settle(new FanError(Code.UNAVAILABLE, "amqp connection lost while the call was in flight"));
    }
  }

  /** Fails every pending call and closes the channel. */
  close(): void {
    for (const p of [...this.#pending.values()]) p.settle(new FanError(Code.UNAVAILABLE, "amqp transport closed"));
    void this.#ch.dispose();
  }
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
class PendingReply implements Pending, Expirable, AbortTarget {
  bucket = 0;
  prev: Expirable | undefined = undefined;
  next: Expirable | undefined = undefined;
  readonly finite: boolean;

  constructor(
    private readonly client: AmqpRpcClient,
    public ch: Channel | undefined,
    readonly addr: AmqpAddress,
    readonly queue: string,
    private readonly corr: string,
    private readonly signal: AbortSignal,
    private readonly resolve: (v: Envelope) => void,
    private readonly reject: (e: unknown) => void,
    deadline: number,
  ) {
    this.finite = Number.isFinite(deadline);
  }

  expire(): void {
    this.settle(new FanError(Code.DEADLINE_EXCEEDED, `no reply from ${this.addr.service} before the deadline`));
  }

  aborted(): void {
    this.settle(new FanError(Code.CANCELLED, "cancelled"));
    this.client.cancelled(this.addr, this.corr);
  }

  settle(result: Envelope | FanError): void {
    if (!this.client.forget(this.corr, this)) return;
    if (this.finite) deadlines.remove(this);
    unwatchAbort(this.signal, this);
    if (result instanceof FanError) this.reject(result);
    else this.resolve(result);
  }
}
