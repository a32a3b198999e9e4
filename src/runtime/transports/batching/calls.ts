/**
 * The calling side of batched broker rpc (amqp, nats), without the broker: the calls made in one
 * tick to one destination (a queue or subject) are collected into a batch and sent as one batch
 * frame (batch-frame.ts) when the tick ends, or at once when the batch is full; a lone call is
 * sent in the tick it was made (no waiting for company). Replies are matched by sequence number
 * (a reply frame's items) or by batch (one envelope answering a whole frame, or a broker's
 * verdict on the message). A call cancelled while its batch is queued is left out of the frame;
 * one cancelled after its frame left is announced by the transport (`announceCancel`).
 *
 * The transport subclass sends a frame (`send`), announces cancellations, and reads its broker's
 * messages, handing reply frames to `readFrame` and whole-batch answers to `answerBatch` or
 * `failBatch`.
 *
 * A reply frame's item `0` is a taken notice (batch-frame.ts; nats servers send them): each call
 * it names that went to its version's destination tells its `SendOptions.taken` which instance
 * runs it, so the client can fail it once that instance is gone (call/instance-watch.ts).
 */
import type { Logger } from "pino";
import { deadlines, type Expirable } from "../../call/deadlines.js";
import { Code, FanError } from "../../errors.js";
import { type AbortTarget, unwatchAbort, watchAbort } from "../abort.js";
import {
  FrameBuilder,
  frameText,
  itemOverhead,
  readBatchText,
  readTakenNotice,
  TAKEN_SEQ,
  type TextBatchReader,
} from "../batch-frame.js";
import { notDelivered } from "../not-delivered.js";
import { decodeFrameReply, decodeReply } from "../replies.js";
import type { Envelope, SendOptions, TakenSink } from "../transport.js";
import { warnDropped } from "../../telemetry/drops.js";

/**
 * Most calls one message carries: a tick's calls to a version are still spread over its
 * instances (each message goes to one consumer of the queue or member of the queue group) when
 * there are many.
 */
export const MAX_BATCH = 32;

/** What a call's error messages name of its destination. */
export interface CallAddress {
  readonly service: string;
}

/** Calls of one tick to one destination: one message, and what a broker's answer to it concerns. */
export class CallBatch<A extends CallAddress, V> {
  calls: PendingCall<A, V>[] = [];
  /** The frame's UTF-8 size so far. */
  bytes = 1;
  /** Calls of this batch not settled yet. */
  open = 0;
  /** What it went out on (a channel, a connection); undefined while queued. */
  via: V | undefined = undefined;

  constructor(
    readonly dest: string,
    readonly id: number,
  ) {}
}

/** Collects a tick's calls per destination, sends them as frames and settles their replies. */
export abstract class CallBatcher<A extends CallAddress, V> implements TextBatchReader {
  readonly #pending = new Map<number, PendingCall<A, V>>();
  /** Batches sent with calls still waiting, by id. */
  readonly #batches = new Map<number, CallBatch<A, V>>();
  /** Batches of this tick not sent yet, by destination. */
  readonly #outbox = new Map<string, CallBatch<A, V>>();
  #flushing = false;
  #seq = 0;
  #batchSeq = 0;
  readonly #flushNow = (): void => this.flush();

  constructor(
    /** The transport's name in error messages ("amqp", "nats"). */
    private readonly name: string,
    protected readonly log: Logger,
    protected readonly maxBytes: number,
  ) {}

  /**
   * Sends the frame `text` of batch `b` (the latest deadline of its calls is `latest`) to
   * `b.dest`; returns what it went out on. A throw fails the calls as never delivered.
   */
  protected abstract send(b: CallBatch<A, V>, text: string, latest: number): V;

  /** Tells the servers of `p`'s version that `p`, whose frame left, was cancelled. */
  protected abstract announceCancel(p: PendingCall<A, V>): void;

  /** The largest frame the broker takes now. */
  protected abstract frameLimit(): number;

  /** The sequence number the next call gets. */
  protected get nextSeq(): number {
    return this.#seq + 1;
  }

  /** Queues a call (its envelope JSON `json` of `size` bytes) for this tick's frame to `dest`. */
  protected queue(
    addr: A,
    dest: string,
    sharded: boolean,
    json: string,
    size: number,
    opts: SendOptions,
  ): Promise<Envelope> {
    const seq = ++this.#seq;
    const promise = new Promise<Envelope>(capture);
    const p = new PendingCall<A, V>(
      this,
      seq,
      addr,
      dest,
      sharded,
      json,
      size,
      opts.signal,
      captured.resolve,
      captured.reject,
      opts.deadline,
    );
    // A sharded call's instance is known already (the client watches it).
    if (!sharded) p.taken = opts.taken;
    this.#pending.set(seq, p);
    if (p.finite) deadlines.add(p, opts.deadline);
    watchAbort(opts.signal, p);
    this.#enqueue(p);
    return promise;
  }

  /** Adds a call to this tick's batch for its destination (sending that batch first when it is full). */
  #enqueue(p: PendingCall<A, V>): void {
    let b = this.#outbox.get(p.dest);
    // A frame stays within the limit unless it holds one call (whose own size is bounded by it).
    if (
      b !== undefined &&
      (b.calls.length >= MAX_BATCH || b.bytes + p.size + itemOverhead(p.seq) > this.frameLimit())
    ) {
      this.#outbox.delete(p.dest);
      this.#publish(b);
      b = undefined;
    }
    if (b === undefined) {
      b = new CallBatch<A, V>(p.dest, ++this.#batchSeq);
      this.#outbox.set(p.dest, b);
    }
    p.batch = b;
    b.calls.push(p);
    b.bytes += p.size + itemOverhead(p.seq);
    b.open++;
    if (!this.#flushing) {
      this.#flushing = true;
      process.nextTick(this.#flushNow);
    }
  }

  /** Sends this tick's batches. */
  protected flush(): void {
    this.#flushing = false;
    for (const b of this.#outbox.values()) this.#publish(b);
    this.#outbox.clear();
  }

  /** Sends a batch's calls still open (a call cancelled while queued is left out) as one frame. */
  #publish(b: CallBatch<A, V>): void {
    if (b.open === 0) return;
    const calls = b.calls.filter((p) => this.#pending.get(p.seq) === p);
    b.calls = calls;
    const frame = new FrameBuilder("%");
    let latest = 0;
    for (const p of calls) {
      frame.add(p.seq, p.json, p.size);
      if (p.deadline > latest) latest = p.deadline;
    }
    this.#batches.set(b.id, b);
    let via: V;
    try {
      via = this.send(b, frame.text, latest);
    } catch (e) {
      const err = FanError.is(e)
        ? e
        : new FanError(Code.UNAVAILABLE, `${this.name} publish failed: ${(e as Error).message}`, { cause: e });
      for (const p of calls) p.settle(notDelivered(err));
      return;
    }
    b.via = via;
    for (const p of calls) p.via = via;
  }

  /** Forgets a pending call; false when it was already settled. */
  forget(p: PendingCall<A, V>): boolean {
    if (this.#pending.get(p.seq) !== p) return false;
    this.#pending.delete(p.seq);
    p.json = "";
    const b = p.batch;
    if (b !== undefined && --b.open === 0 && this.#batches.get(b.id) === b) this.#batches.delete(b.id);
    this.forgotten(p);
    return true;
  }

  /** Told of every call settled (after it is forgotten: its batch's `open` no longer counts it). */
  protected forgotten(_p: PendingCall<A, V>): void {}

  /** A cancelled call: announced to the instances of its version when it left already. */
  cancelled(p: PendingCall<A, V>): void {
    if (p.via !== undefined) this.announceCancel(p);
  }

  /** Whether `p` still waits for its reply. */
  protected isOpen(p: PendingCall<A, V>): boolean {
    return this.#pending.get(p.seq) === p;
  }

  /** The calls waiting for their reply (queued ones too). */
  protected waiting(): IterableIterator<PendingCall<A, V>> {
    return this.#pending.values();
  }

  /** The sent batch `id` names, while calls of it wait. */
  protected batch(id: number): CallBatch<A, V> | undefined {
    return this.#batches.get(id);
  }

  /**
   * Takes batch `b` back (its message was not taken by the broker): its calls still open, no
   * longer tied to what it went out on, to be sent again with `resend`. They stay in `b` until
   * then, so `b.open` tells when the last of them settled meanwhile (see `forgotten`).
   */
  protected reopen(b: CallBatch<A, V>): PendingCall<A, V>[] {
    this.#batches.delete(b.id);
    const calls = b.calls.filter((p) => this.#pending.get(p.seq) === p);
    for (const p of calls) p.via = undefined;
    return calls;
  }

  /** Queues the calls of `reopen` still open for this tick's frames again. */
  protected resend(calls: readonly PendingCall<A, V>[]): void {
    for (const p of calls) if (this.#pending.get(p.seq) === p) this.#enqueue(p);
  }

  /** Hands the items of a reply frame to `item`; false when it is malformed. */
  protected readFrame(data: Uint8Array): boolean {
    return readBatchText(frameText(data), this);
  }

  /** One reply of a batch frame, or its taken notice (batch-frame.ts). */
  item(seq: number, body: string): void {
    const p = this.#pending.get(seq);
    if (p !== undefined) p.settle(decodeFrameReply(body, this.maxBytes, p.addr.service));
    else if (seq === TAKEN_SEQ) this.#noticed(body);
  }

  /** A taken notice: tells each call it names, still waiting, which instance runs it. */
  #noticed(body: string): void {
    const n = readTakenNotice(body);
    if (n === undefined) {
      // Rate limited as every drop is: a server of another build could send one per reply frame.
      warnDropped(
        this.log,
        { transport: this.name, endpoint: "taken notices", reason: "malformed taken notice" },
        { bytes: body.length },
        `malformed ${this.name} taken notice ignored`,
      );
      return;
    }
    for (const seq of n.seqs) this.#pending.get(seq)?.taken?.taken(n.instance);
  }

  /** One envelope answering every call of `b` (a server that could not read its frame). */
  protected answerBatch(b: CallBatch<A, V>, data: Uint8Array): void {
    const result = olderServer(decodeReply(data, this.maxBytes));
    for (const p of [...b.calls]) p.settle(result);
  }

  /** Fails every call of `b` with the error `why` makes for it. */
  protected failBatch(b: CallBatch<A, V>, why: (p: PendingCall<A, V>) => FanError): void {
    for (const p of [...b.calls]) p.settle(why(p));
  }

  /** Fails (each with an error of its own) the calls queued for this tick's frames (they never left) and drops those frames. */
  protected failQueued(err: () => FanError): void {
    for (const b of this.#outbox.values()) for (const p of [...b.calls]) p.settle(err());
    this.#outbox.clear();
  }

  /** Fails (each with an error of its own) every waiting call (queued ones too, which are then never sent). */
  protected failAll(err: () => FanError): void {
    for (const p of [...this.#pending.values()]) p.settle(err());
    this.#outbox.clear();
  }
}

/**
 * A server older than the `%` call frame (batch-frame.ts) reads it as one envelope, fails to
 * parse it and answers the whole frame with INVALID_ARGUMENT naming the `%`: the error then also
 * says why, and what to do.
 */
function olderServer(result: Envelope | FanError): Envelope | FanError {
  if (FanError.is(result) || result.kind !== "error") return result;
  const err = result.payload as { code?: unknown; message?: unknown } | null;
  if (err?.code !== Code.INVALID_ARGUMENT || typeof err.message !== "string" || !err.message.includes("'%'"))
    return result;
  const message = `${err.message} (the serving instance runs an older fan that cannot read this client's call frames: upgrade servers before clients)`;
  return { ...result, payload: { ...err, message } };
}

/**
 * Lets go of the request JSON of calls whose frame the broker has: a call can wait long for its
 * reply, and its batch (kept while any call of it waits) would otherwise hold every request of it.
 */
export function release(calls: readonly PendingCall<CallAddress, unknown>[]): void {
  for (const p of calls) p.json = "";
}

/** The envelope with the send deadline in its headers, so the server sees the caller's budget. */
export function withDeadline(env: Envelope, deadline: number): Envelope {
  if (!Number.isFinite(deadline) || env.headers.deadline === deadline) return env;
  return { ...env, headers: { ...env.headers, deadline } };
}

/**
 * The resolving functions of the promise just made by `new Promise(capture)`: one shared
 * executor instead of a closure per call. Read right after the constructor returns.
 */
export const captured: { resolve: (v: Envelope) => void; reject: (e: unknown) => void } = {
  resolve: () => undefined,
  reject: () => undefined,
};

export function capture(resolve: (v: Envelope) => void, reject: (e: unknown) => void): void {
  captured.resolve = resolve;
  captured.reject = reject;
}

/** One call waiting for its reply: settles once (reply, broker verdict, error, deadline or cancellation). */
export class PendingCall<A extends CallAddress, V> implements Expirable, AbortTarget {
  bucket = 0;
  prev: Expirable | undefined = undefined;
  next: Expirable | undefined = undefined;
  readonly finite: boolean;
  /** The batch it is queued in or went out with (a reopened call's until it is queued again). */
  batch: CallBatch<A, V> | undefined = undefined;
  /** What its frame went out on; undefined while queued. */
  via: V | undefined = undefined;
  /** Told which instance took it (a taken notice), when it went to its version's destination. */
  taken: TakenSink | undefined = undefined;

  constructor(
    private readonly client: CallBatcher<A, V>,
    readonly seq: number,
    readonly addr: A,
    readonly dest: string,
    /** Sent to one instance's own destination (a sharded call), not its version's. */
    readonly sharded: boolean,
    /**
     * The envelope's JSON and its UTF-8 size: kept to frame it again after its frame came back,
     * until the broker has the frame (`release`).
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
