/**
 * The serving side of batched broker rpc (amqp, nats), without the broker: a batch frame
 * (batch-frame.ts: the calls a client made in one tick) is split into its calls, which run
 * through the App's dispatcher; the replies to one client that finish in one tick go back as one
 * batch frame. A turn of the event loop starts at most ITEMS_PER_TURN calls and at most `bound`
 * run at once; the rest wait in a backlog, in arrival order, started by a pump on later turns.
 *
 * The transport (a `FrameHost`) receives its broker's messages and hands each frame to `read`,
 * sends the reply frames, answers a frame it cannot read, and acks a request message once every
 * call of it is answered (`settled`), if its broker wants that.
 */
import type { Logger } from "pino";
import { expiredError } from "../../call/dispatch.js";
import { decodeEnvelope } from "../../codec/wire.js";
import type { ServiceDescriptor } from "../../descriptor.js";
import { Code, FanError } from "../../errors.js";
import { LazyAbort } from "../abort.js";
import { FrameBuilder, frameText, itemOverhead, readBatchText, type TextBatchReader } from "../batch-frame.js";
import { handlePush } from "../owner-push.js";
import { decodeServed, encodeFrameReply, errorEnvelope, ReplySink, runWithSink } from "../replies.js";
import type { Envelope, Inbound } from "../transport.js";
import { warnDropped } from "../../telemetry/drops.js";

/**
 * Calls of frames started in one turn of the event loop; the rest wait for the next turn
 * (setImmediate), after the replies of these went out. A client's 64 calls arriving together are
 * answered in two pieces, and the client makes its next calls while this server runs the rest:
 * the two processes work at the same time instead of in turn.
 */
const ITEMS_PER_TURN = 32;

/** A request message holding a batch frame. */
export interface FrameSource {
  /** What its calls' keys start with: a cancellation names `{client}{seq}`. */
  readonly client: string;
  /** Replies of one tick with the same key go back in one frame (to the first one's address). */
  readonly replyKey: string;
  /** Delivered before (amqp): a call that is not idempotent is not run again. */
  readonly redelivered: boolean;
  /** A push may come in it (a @shard push to this owner: owner-push.ts). */
  readonly pushes: boolean;
  /** Its client takes compact replies (the frame started with `%`: batch-frame.ts). */
  readonly compact: boolean;
  /** Calls of it not answered yet, plus one while it is being read. */
  left: number;
}

/** What the pump needs of its transport. */
export interface FrameHost<S extends FrameSource> {
  /** Sends a reply frame (`count` replies) to the reply address of `src`. */
  sendReplies(src: S, text: string, count: number): void;
  /** Answers a frame that cannot be read past some item (or holds none). */
  malformed(src: S): void;
  /** The largest reply envelope, the largest reply frame, and the bound of a frame of one reply. */
  replyBounds(): ReplyBounds;
  /** RESOURCE_EXHAUSTED for a reply of `size` bytes over `limit`. */
  tooLarge(size: number, limit: number): FanError;
  /** Log fields naming where `src` came from. */
  describe(src: S): Record<string, unknown>;
  /** Every call of `src` answered and those replies sent (amqp acks it here). */
  settled?(src: S): void;
}

/** Reply size bounds (see `FrameHost.replyBounds`). */
export interface ReplyBounds {
  readonly limit: number;
  readonly max: number;
  readonly lone: number;
}

/** Pump tuning. */
export interface PumpOptions {
  readonly service: ServiceDescriptor;
  readonly inbound: Inbound;
  readonly maxBytes: number;
  /** Most calls of frames running at once (amqp: rpcPrefetch). */
  readonly bound: number;
  readonly log: Logger;
  /** The transport's name in log lines ("amqp", "nats"). */
  readonly name: string;
  /** What a refusal says received the call ("this queue", "this subject"). */
  readonly where: string;
}

/** A call of a frame waiting for its turn; in `inFlight` already, so cancels reach it. */
interface Waiting<S> {
  readonly src: S;
  readonly seq: number;
  /** Its envelope JSON: a slice of its frame's text. */
  readonly body: string;
  readonly ac: LazyAbort;
}

/** A call of a batch frame: its reply joins its client's frame of this tick. */
class ItemSink<S extends FrameSource> extends ReplySink {
  constructor(
    private readonly pump: FramePump<S>,
    private readonly src: S,
    private readonly seq: number,
    private readonly key: string,
    env: Envelope,
  ) {
    super(env, pump.version);
  }

  protected answer(reply: Envelope): void {
    this.pump.itemDone(this.src, this.seq, this.key, reply);
  }
}

/** Runs the calls of batch frames and sends their replies as frames. */
export class FramePump<S extends FrameSource> {
  /** Calls not answered yet (running, or waiting for a turn), by `{client}{seq}`; the transport's own calls too. */
  readonly inFlight = new Map<string, LazyAbort>();
  /** Replies of this tick, by reply key. */
  readonly #outbox = new Map<string, { readonly src: S; readonly frame: FrameBuilder }>();
  /** Frames whose every call is answered: settled once this tick's replies are sent. */
  #acks: S[] = [];
  #flushing = false;
  #src: S | undefined;
  readonly #reader: TextBatchReader = { item: (seq, body) => this.#take(seq, body) };
  /** Calls of frames running now (bounded by `bound`). */
  #running = 0;
  /** Calls of frames started in this turn of the event loop (see ITEMS_PER_TURN). */
  #started = 0;
  #backlog: Waiting<S>[] = [];
  #backlogAt = 0;
  #pumping = false;
  readonly #flushNow = (): void => this.flush();

  constructor(
    private readonly host: FrameHost<S>,
    private readonly opts: PumpOptions,
  ) {}

  /** The served version (reply envelopes name it). */
  get version(): string {
    return this.opts.service.version;
  }

  /** Splits the batch frame `data` of `src` into its calls (a malformed one goes to `host.malformed`). */
  read(src: S, data: Uint8Array): void {
    src.left = 1;
    this.#src = src;
    // A frame of no item (`#` alone) reads as a good one: malformed too, so it is not dropped unanswered.
    if (data.length === 1 || !readBatchText(frameText(data), this.#reader)) this.host.malformed(src);
    this.#answered(src);
  }

  /**
   * One call of the frame being split: started now, or, once this turn has started
   * ITEMS_PER_TURN calls or `bound` calls are running, queued for later.
   */
  #take(seq: number, body: string): void {
    const src = this.#src as S;
    src.left++;
    if (this.#backlog.length === 0 && this.#started < ITEMS_PER_TURN && this.#running < this.opts.bound) {
      if (this.#started++ === 0) queueMicrotask(this.#newTurn);
      this.#onItem(src, seq, body);
      return;
    }
    const ac = new LazyAbort();
    this.inFlight.set(`${src.client}${seq}`, ac);
    this.#backlog.push({ src, seq, body, ac });
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

  /** Starts waiting calls: up to ITEMS_PER_TURN, while fewer than `bound` run. */
  readonly #pump = (): void => {
    this.#pumping = false;
    const q = this.#backlog;
    let i = this.#backlogAt;
    const end = Math.min(q.length, i + ITEMS_PER_TURN);
    for (; i < end && this.#running < this.opts.bound; i++) {
      const w = q[i] as Waiting<S>;
      this.#onItem(w.src, w.seq, w.body, w.ac);
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
      if (this.#running < this.opts.bound) this.#pumpLater();
    } else {
      this.#backlog = [];
      this.#backlogAt = 0;
    }
  };

  /** Starts one call of a frame; `queued` is its abort when it waited in the backlog (see `#take`). */
  #onItem(src: S, seq: number, body: string, queued?: LazyAbort): void {
    const key = `${src.client}${seq}`;
    if (queued !== undefined) this.inFlight.delete(key);
    const { service, inbound } = this.opts;
    const env = decodeServed(service, body, this.opts.maxBytes, src.pushes, this.opts.where);
    if (env instanceof FanError) {
      if (env.code !== Code.NOT_FOUND && env.code !== Code.UNIMPLEMENTED)
        warnDropped(
          this.opts.log,
          { transport: this.opts.name, endpoint: this.opts.where, reason: "undecodable" },
          { err: env.message, ...this.host.describe(src), bytes: Buffer.byteLength(body, "utf8") },
          `undecodable ${this.opts.name} call refused (INVALID_ARGUMENT)`,
        );
      this.#queue(src, seq, errorEnvelope("?", undefined, env));
      return;
    }
    if (env.kind === "push") {
      // A @shard push to this owner (owner-push.ts): acknowledged to the producer once handled.
      void handlePush(inbound, env).then((out) => this.#queue(src, seq, out));
      return;
    }
    let refused: FanError | undefined;
    if (src.redelivered && service.methods[env.method]?.idempotent !== true)
      refused = new FanError(
        Code.UNAVAILABLE,
        "the server handling this call was lost; not retried because the method is not idempotent",
      );
    else if (queued?.aborted === true) refused = new FanError(Code.CANCELLED, "cancelled before it started");
    else if (typeof env.headers.deadline === "number" && env.headers.deadline <= Date.now()) {
      // The frame lives until its latest call's deadline; this call's own passed while it waited.
      const e = inbound.expired?.(env) ?? expiredError(env.service, env.method);
      refused = new FanError(e.code, e.message);
    }
    if (refused !== undefined) {
      this.#queue(src, seq, errorEnvelope(env.id, env, refused));
      return;
    }
    const ac = queued ?? new LazyAbort();
    this.inFlight.set(key, ac);
    this.#running++;
    if (runWithSink(inbound, env, ac, new ItemSink(this, src, seq, key, env))) return;
    inbound.call(env, ac).then(
      (out) => this.itemDone(src, seq, key, out),
      (e: unknown) => this.itemDone(src, seq, key, errorEnvelope(env.id, env, FanError.from(e))),
    );
  }

  /** A call of a batch frame answered (from its ItemSink or its promise). */
  itemDone(src: S, seq: number, key: string, out: Envelope): void {
    this.inFlight.delete(key);
    this.#running--;
    this.#queue(src, seq, out);
    if (this.#backlog.length > 0) this.#pumpLater();
  }

  /** Queues a call's reply for this tick's frame to its client (sent at once when the frame is full). */
  #queue(src: S, seq: number, out: Envelope): void {
    const { limit, max, lone } = this.host.replyBounds();
    let json = encodeFrameReply(out, src.compact);
    let size = Buffer.byteLength(json, "utf8");
    if (size > limit || 1 + size + itemOverhead(seq) > lone) {
      json = encodeFrameReply(errorEnvelope(out.id, out, this.host.tooLarge(size, limit)), src.compact);
      size = Buffer.byteLength(json, "utf8");
    }
    let box = this.#outbox.get(src.replyKey);
    if (box !== undefined && box.frame.bytes + size + itemOverhead(seq) > max) {
      this.#outbox.delete(src.replyKey);
      this.host.sendReplies(box.src, box.frame.text, box.frame.count);
      box = undefined;
    }
    if (box === undefined) {
      box = { src, frame: new FrameBuilder() };
      this.#outbox.set(src.replyKey, box);
    }
    box.frame.add(seq, json, size);
    this.#answered(src);
  }

  /** One call of `src` answered (or its reading done): once all are, it is settled after this tick's replies. */
  #answered(src: S): void {
    if (--src.left === 0 && this.host.settled !== undefined) this.#acks.push(src);
    if (!this.#flushing && (this.#outbox.size > 0 || this.#acks.length > 0)) {
      this.#flushing = true;
      process.nextTick(this.#flushNow);
    }
  }

  /** Sends this tick's reply frames, then settles the frames they finished. */
  flush(): void {
    this.#flushing = false;
    for (const box of this.#outbox.values()) this.host.sendReplies(box.src, box.frame.text, box.frame.count);
    this.#outbox.clear();
    const acks = this.#acks;
    if (acks.length === 0) return;
    this.#acks = [];
    for (const src of acks) this.host.settled?.(src);
  }

  /**
   * Answers the calls of frames still waiting for a turn (closing): they never started here, so
   * UNAVAILABLE (another instance may take them), at once — not once the running calls (which
   * may ignore their abort) finish.
   */
  refuseWaiting(): void {
    const q = this.#backlog;
    const from = this.#backlogAt;
    this.#backlog = [];
    this.#backlogAt = 0;
    const service = this.opts.service.name;
    for (let i = from; i < q.length; i++) {
      const w = q[i] as Waiting<S>;
      this.inFlight.delete(`${w.src.client}${w.seq}`);
      let env: Envelope | undefined;
      try {
        env = decodeEnvelope(w.body, { maxBytes: this.opts.maxBytes });
      } catch {
        env = undefined;
      }
      const what = env === undefined ? service : `${service}.${env.method}`;
      const e = new FanError(Code.UNAVAILABLE, `the instance serving ${what} closed before the call started`);
      this.#queue(w.src, w.seq, errorEnvelope(env?.id ?? "?", env, e));
    }
  }
}
