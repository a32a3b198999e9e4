/**
 * The calling side of nats rpc: the calls made in one tick to one subject (the version's, which
 * its instances share in a queue group; a sharded call goes to its owner's own subject) travel as
 * one core NATS message, a batch frame (batch-frame.ts) whose items carry this client's sequence
 * numbers. The message's reply subject is this client's `{prefix}.{n}` (`n` the batch's first
 * call), all answered through one wildcard subscription; replies come back as batch frames too,
 * matched by sequence number whatever subject they arrive on. NATS answers a message nobody
 * subscribes to with a "no responders" status at once: its batch's calls fail with UNAVAILABLE,
 * marked as never delivered. A lone call is sent in the tick it was made (no waiting for
 * company). A cancelled call is announced on the version's cancel subject (`{prefix}.{seq}`),
 * where every serving instance listens.
 */
import { randomBytes } from "node:crypto";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { deadlines, type Expirable } from "../../call/deadlines.js";
import { decodeEnvelope, encodeEnvelopeText } from "../../codec/wire.js";
import { Code, FanError } from "../../errors.js";
import { type AbortTarget, unwatchAbort, watchAbort } from "../abort.js";
import { notDelivered } from "../not-delivered.js";
import type { Envelope, SendOptions } from "../transport.js";
import { type BatchReader, FrameBuilder, isBatch, itemOverhead, readBatch } from "../batch-frame.js";
import type { NatsLink } from "./connection.js";
import { callSubject, cancelSubject, type NatsAddress, parseEndpoint, replyPrefix } from "./names.js";

/** The largest message the connected server takes, and the App's bound. */
export function payloadLimit(nc: NatsConnection, maxBytes: number): number {
  const server = nc.info?.max_payload;
  return typeof server === "number" && server > 0 ? Math.min(maxBytes, server) : maxBytes;
}

/** The largest message the connected server takes (a batch frame's bound). */
export function serverLimit(nc: NatsConnection | undefined): number {
  const server = nc?.info?.max_payload;
  return typeof server === "number" && server > 0 ? server : 1024 * 1024;
}

/** RESOURCE_EXHAUSTED naming which bound `size` broke. */
export function tooLarge(what: string, size: number, limit: number, maxBytes: number): FanError {
  const whose = limit < maxBytes ? `the nats server's max_payload of ${limit}` : `the limit of ${limit}`;
  return new FanError(Code.RESOURCE_EXHAUSTED, `${what} of ${size} bytes exceeds ${whose}`);
}

/**
 * Most calls one message carries: a tick's calls to a version are still spread over its
 * instances (each message goes to one member of the queue group) when there are many.
 */
const MAX_BATCH = 32;

/** Calls of one tick to one subject: one message, and what a status or plain reply to it concerns. */
class Batch {
  readonly frame = new FrameBuilder();
  readonly calls: PendingReply[] = [];
  /** Calls of this batch not settled yet. */
  open = 0;

  constructor(
    readonly subject: string,
    readonly first: number,
  ) {}
}

/** Sends calls and matches the replies arriving on this client's reply subjects. */
export class NatsRpcClient implements BatchReader {
  readonly #pending = new Map<number, PendingReply>();
  /** Batches with calls still waiting, by their first call's sequence number (their reply subject's last token). */
  readonly #batches = new Map<number, Batch>();
  /** Batches of this tick not sent yet, by subject. */
  readonly #outbox = new Map<string, Batch>();
  #flushing = false;
  readonly #prefix: string;
  readonly #prefixDot: string;
  #seq = 0;
  #sub: Subscription | undefined;
  readonly #stopWatching: () => void;

  constructor(
    private readonly link: NatsLink,
    cluster: string,
    private readonly log: Logger,
    private readonly maxBytes: number,
  ) {
    this.#prefix = replyPrefix(cluster, randomBytes(6).toString("hex"));
    this.#prefixDot = `${this.#prefix}.`;
    this.#stopWatching = link.onDown((why) => this.#onLost(why));
  }

  /** Sends `env` to `endpoint`'s subject; resolves with the reply or error envelope. */
  call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope> {
    let addr: NatsAddress;
    let json: string;
    try {
      addr = parseEndpoint(endpoint);
      if (opts.signal.aborted) throw notDelivered(new FanError(Code.CANCELLED, "cancelled"));
      json = encodeEnvelopeText(withDeadline(env, opts.deadline));
    } catch (e) {
      return Promise.reject(e);
    }
    const nc = this.link.nc;
    if (nc !== undefined && this.link.up) return this.#send(nc, addr, env, json, opts);
    return this.link.ready(opts.deadline, opts.signal).then(
      (c) => this.#send(c, addr, env, json, opts),
      (e: unknown) => {
        throw notDelivered(FanError.from(e, Code.UNAVAILABLE));
      },
    );
  }

  #send(nc: NatsConnection, addr: NatsAddress, env: Envelope, json: string, opts: SendOptions): Promise<Envelope> {
    const size = Buffer.byteLength(json, "utf8");
    const limit = payloadLimit(nc, this.maxBytes);
    if (size > limit) return Promise.reject(tooLarge("call", size, limit, this.maxBytes));
    const seq = ++this.#seq;
    const max = serverLimit(nc);
    const framed = 1 + size + itemOverhead(seq);
    if (framed > max) return Promise.reject(tooLarge("call", framed, max, max));
    this.#sub ??= nc.subscribe(`${this.#prefix}.*`, { callback: (err, msg) => this.#onReply(err, msg) });
    const sharded = env.headers.shard !== undefined && addr.instance !== undefined;
    const subject = callSubject(addr, sharded);
    let b = this.#outbox.get(subject);
    if (b !== undefined && (b.frame.count >= MAX_BATCH || b.frame.bytes + size + itemOverhead(seq) > max)) {
      this.#outbox.delete(subject);
      this.#publish(b);
      b = undefined;
    }
    if (b === undefined) {
      b = new Batch(subject, seq);
      this.#outbox.set(subject, b);
      this.#batches.set(seq, b);
    }
    const promise = new Promise<Envelope>(capture);
    const p = new PendingReply(
      this,
      seq,
      b,
      addr,
      sharded,
      opts.signal,
      captured.resolve,
      captured.reject,
      opts.deadline,
    );
    this.#pending.set(seq, p);
    b.frame.add(seq, json, size);
    b.calls.push(p);
    b.open++;
    if (p.finite) deadlines.add(p, opts.deadline);
    watchAbort(opts.signal, p);
    if (!this.#flushing) {
      this.#flushing = true;
      process.nextTick(() => this.#flush());
    }
    return promise;
  }

  /** Sends this tick's batches. */
  #flush(): void {
    this.#flushing = false;
    for (const b of this.#outbox.values()) this.#publish(b);
    this.#outbox.clear();
  }

  #publish(b: Batch): void {
    if (b.open === 0) return; // every call of it settled (cancelled) before it left
    const nc = this.link.nc;
    try {
      if (nc === undefined || !this.link.up) throw new Error("connection lost");
      nc.publish(b.subject, b.frame.text, { reply: `${this.#prefixDot}${b.first}` });
    } catch (e) {
      const err = `nats publish failed: ${(e as Error).message}`;
      for (const p of b.calls) p.settle(notDelivered(new FanError(Code.UNAVAILABLE, err)));
    }
  }

  #onReply(err: Error | null, msg: Msg): void {
    if (err !== null) return;
    const data = msg.data;
    if (isBatch(data)) {
      if (!readBatch(data, this)) this.log.warn({ subject: msg.subject }, "malformed nats reply frame");
      return;
    }
    // Not a frame: a status, or one envelope answering the whole message (a server that could not read it).
    const b = this.#batches.get(Number(msg.subject.slice(this.#prefixDot.length)));
    if (b === undefined) return;
    if (data.length === 0 && msg.headers?.code === 503) {
      for (const p of [...b.calls]) {
        const who = p.sharded ? `instance ${p.addr.instance} of` : "no instance of";
        p.settle(
          notDelivered(new FanError(Code.UNAVAILABLE, `${who} ${p.addr.service}@${p.addr.version} is serving on nats`)),
        );
      }
      return;
    }
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

  /** Forgets a pending call; false when it was already settled. */
  forget(seq: number, b: Batch): boolean {
    if (!this.#pending.delete(seq)) return false;
    if (--b.open === 0) this.#batches.delete(b.first);
    return true;
  }

  /** Announces a cancelled call to the instances of its version (after its own batch, if still queued). */
  cancelled(addr: NatsAddress, seq: number): void {
    const nc = this.link.nc;
    if (nc === undefined || !this.link.up) return;
    if (this.#outbox.size > 0) this.#flush();
    try {
      nc.publish(cancelSubject(addr), `${this.#prefixDot}${seq}`);
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, "nats cancel not sent");
    }
  }

  /** The connection dropped: replies sent meanwhile are lost, so pending calls fail. */
  #onLost(why: string): void {
    // Calls still queued for this tick's frame never left: provably not delivered (retryable anywhere).
    for (const b of this.#outbox.values())
      for (const p of [...b.calls])
        p.settle(
          notDelivered(new FanError(Code.UNAVAILABLE, `nats connection lost before the call was sent (${why})`)),
        );
    this.#outbox.clear();
    for (const p of [...this.#pending.values()])
      p.settle(new FanError(Code.UNAVAILABLE, `nats connection lost while the call was in flight (${why})`));
  }

  /** Fails every pending call and stops listening for replies. */
  close(): void {
    this.#stopWatching();
    for (const p of [...this.#pending.values()]) p.settle(new FanError(Code.UNAVAILABLE, "nats transport closed"));
    this.#outbox.clear();
    try {
      this.#sub?.unsubscribe();
    } catch {
      // the connection is already closed
    }
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

/** One call waiting for its reply: settles once (reply, error, deadline or cancellation). */
class PendingReply implements Expirable, AbortTarget {
  bucket = 0;
  prev: Expirable | undefined = undefined;
  next: Expirable | undefined = undefined;
  readonly finite: boolean;

  constructor(
    private readonly client: NatsRpcClient,
    private readonly seq: number,
    private readonly batch: Batch,
    readonly addr: NatsAddress,
    readonly sharded: boolean,
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
    this.client.cancelled(this.addr, this.seq);
  }

  settle(result: Envelope | FanError): void {
    if (!this.client.forget(this.seq, this.batch)) return;
    if (this.finite) deadlines.remove(this);
    unwatchAbort(this.signal, this);
    if (result instanceof FanError) this.reject(result);
    else this.resolve(result);
  }
}
