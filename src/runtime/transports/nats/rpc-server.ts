/**
 * The serving side of nats rpc: one instance subscribes to its version's subject in the queue
 * group `rpc` (NATS hands each call to one member), to its own instance subject (sharded calls
 * and @shard pushes for a shard's owner) and to the version's cancel subject. Calls are answered on their reply
 * subject. A message that is not a call (garbage bytes, a forbidden key, another service) gets
 * an error reply when it has a reply subject and a warn log line either way; nothing reaches a
 * handler. Subscriptions come back by themselves after a reconnection.
 *
 * A batch frame (batch-frame.ts: the calls a client made in one tick) is split into its calls; the
 * replies to one client that finish in one tick go back as one batch frame, to the reply subject
 * of one of its messages (the client matches items by sequence number). A frame the server cannot
 * read past some item is answered with one error envelope on its reply subject, which fails the
 * calls of that message.
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { ServiceDescriptor } from "../../descriptor.js";
import { decodeEnvelope, encodeEnvelope, encodeEnvelopeText } from "../../codec/wire.js";
import { Code, FanError } from "../../errors.js";
import { handlePush } from "../owner-push.js";
import { decodeServed, errorEnvelope, refuse, ReplySink, runWithSink } from "../replies.js";
import { LazyAbort } from "../abort.js";
import type { Envelope, Inbound } from "../transport.js";
import type { NatsLink } from "./connection.js";
import { type BatchReader, FrameBuilder, isBatch, itemOverhead, readBatch } from "../batch-frame.js";
import { cancelSubject, instanceSubject, type NatsAddress, RPC_QUEUE, rpcSubject } from "./names.js";
import { payloadLimit, serverLimit, tooLarge } from "./rpc-client.js";

/**
 * Calls of batch frames started in one turn of the event loop; the rest wait for the next turn
 * (setImmediate), after the replies of these went out. A client's 64 calls arriving together are
 * answered in two pieces, and the client makes its next calls while this server runs the rest: the
 * two processes work at the same time instead of in turn.
 */
const ITEMS_PER_TURN = 32;

/** Replies of this tick to one client, sent as one batch frame. */
interface Outbox {
  readonly subject: string;
  readonly frame: FrameBuilder;
}

/** The message being split: where its items' replies go. */
export interface Source {
  subject: string;
  reply: string;
  /** The client the replies are grouped by: its reply prefix (a fan client's) or the reply subject. */
  client: string;
  own: boolean;
}

/**
 * The client a reply subject belongs to: a fan client's reply prefix (`fan.{cluster}.reply.{id}`,
 * whatever its cluster) when `reply` is one of its subjects, else `reply` itself (a raw publisher's).
 */
export function clientOf(reply: string): string {
  const dot = reply.lastIndexOf(".");
  const id = reply.lastIndexOf(".", dot - 1);
  const kind = reply.lastIndexOf(".", id - 1);
  return kind > 3 && reply.startsWith("fan.") && reply.startsWith(".reply.", kind) ? reply.slice(0, dot) : reply;
}

/** A call of a batch frame: its reply joins its client's frame of this tick. */
class ItemSink extends ReplySink {
  constructor(
    private readonly server: NatsRpcServer,
    private readonly src: Source,
    private readonly seq: number,
    private readonly key: string,
    env: Envelope,
  ) {
    super(env, server.version);
  }

  protected answer(reply: Envelope): void {
    this.server.itemDone(this.src, this.seq, this.key, reply);
  }
}

/** A call in a message of its own: answered on the message's reply subject. */
class MessageSink extends ReplySink {
  constructor(
    private readonly server: NatsRpcServer,
    private readonly msg: Msg,
    private readonly replyTo: string,
    env: Envelope,
  ) {
    super(env, server.version);
  }

  protected answer(reply: Envelope): void {
    this.server.messageDone(this.msg, this.replyTo, reply);
  }
}

/** One served instance's rpc side. */
export class NatsRpcServer {
  readonly #inFlight = new Map<string, LazyAbort>();
  readonly #subs: Subscription[] = [];
  readonly #log: Logger;
  /** Replies of this tick, by client. */
  readonly #outbox = new Map<string, Outbox>();
  #flushing = false;
  readonly #reader: BatchReader = { item: (seq, body) => this.#take(seq, body) };
  /** Calls started in this turn of the event loop (see ITEMS_PER_TURN). */
  #started = 0;
  /**
   * Calls of frames waiting for a later turn, in arrival order (source, seq, body, abort
   * quadruples). Each is in `#inFlight` already, so a cancellation or `close` reaches it too.
   */
  #backlog: Array<Source | number | Uint8Array | LazyAbort> = [];
  #backlogAt = 0;
  #source: Source = { subject: "", reply: "", client: "", own: false };
  #stopped = false;

  constructor(
    private readonly link: NatsLink,
    private readonly addr: NatsAddress,
    private readonly service: ServiceDescriptor,
    private readonly inbound: Inbound,
    private readonly maxBytes: number,
    log: Logger,
  ) {
    this.#log = log.child({ service: service.name, instanceId: addr.instance });
  }

  /** Subscribes (cancellations first) and waits until the server has the subscriptions. */
  async start(nc: NatsConnection): Promise<void> {
    this.#subs.push(nc.subscribe(cancelSubject(this.addr), { callback: (_e, m) => this.#onCancel(m) }));
    this.#subs.push(nc.subscribe(instanceSubject(this.addr), { callback: (_e, m) => this.#onCall(m) }));
    this.#subs.push(nc.subscribe(rpcSubject(this.addr), { queue: RPC_QUEUE, callback: (_e, m) => this.#onCall(m) }));
    await nc.flush();
  }

  #onCancel(msg: Msg): void {
    this.#inFlight.get(msg.string())?.abort();
  }

  /** Handles a call, also one that arrived just after `stop` (NATS had sent it before the unsubscribe). */
  #onCall(msg: Msg): void {
    if (isBatch(msg.data)) {
      this.#onBatch(msg);
      return;
    }
    const reply = msg.reply;
    let env: Envelope;
    try {
      env = decodeEnvelope(msg.data, { maxBytes: this.maxBytes });
      // A push comes only to this instance's own subject: a @shard push to its owner (owner-push.ts).
      const own = msg.subject === instanceSubject(this.addr);
      if (env.kind !== "call" && !(own && env.kind === "push"))
        throw new FanError(Code.INVALID_ARGUMENT, `expected a call${own ? " or push" : ""}, got a ${env.kind}`);
      const refused = refuse(this.service, env, "this subject");
      if (refused !== undefined) throw refused;
    } catch (e) {
      const err = FanError.from(e, Code.INVALID_ARGUMENT);
      if (err.code !== Code.NOT_FOUND)
        this.#log.warn({ err: err.message, subject: msg.subject, bytes: msg.data.length }, "undecodable nats call");
      if (reply === undefined || reply === "") {
        this.#log.warn({ subject: msg.subject }, "nats call without a reply subject dropped");
        return;
      }
      this.#reply(msg, errorEnvelope("?", undefined, err));
      return;
    }
    if (reply === undefined || reply === "") {
      this.#log.warn({ subject: msg.subject, method: env.method }, "nats call without a reply subject dropped");
      return;
    }
    if (env.kind === "push") {
      // Acknowledged to the producer once handled (an UNAVAILABLE error asks it to send again).
      void handlePush(this.inbound, env).then((out) => this.#reply(msg, out));
      return;
    }
    const ac = new LazyAbort();
    this.#inFlight.set(reply, ac);
    if (runWithSink(this.inbound, env, ac, new MessageSink(this, msg, reply, env))) return;
    this.inbound.call(env, ac).then(
      (out: Envelope) => this.#done(msg, reply, out),
      (e: unknown) => this.#done(msg, reply, errorEnvelope(env.id, env, FanError.from(e))),
    );
  }

  /** Splits a batch frame into its calls. */
  #onBatch(msg: Msg): void {
    const reply = msg.reply;
    if (reply === undefined || reply === "") {
      this.#log.warn({ subject: msg.subject, bytes: msg.data.length }, "nats call without a reply subject dropped");
      return;
    }
    const client = clientOf(reply);
    const src: Source = {
      subject: msg.subject,
      reply,
      client,
      own: msg.subject === instanceSubject(this.addr),
    };
    this.#source = src;
    // A frame of no item (`#` alone) reads as a good one: malformed too, so it is not dropped unanswered.
    if (msg.data.length === 1 || !readBatch(msg.data, this.#reader)) {
      this.#log.warn({ subject: msg.subject, bytes: msg.data.length }, "malformed nats call frame");
      this.#reply(msg, errorEnvelope("?", undefined, new FanError(Code.INVALID_ARGUMENT, "malformed nats call frame")));
    }
  }

  /**
   * One call of the batch frame being split (`#source`): started now, or, once this turn has
   * started ITEMS_PER_TURN calls, queued for a later turn.
   */
  #take(seq: number, body: Uint8Array): void {
    if (this.#backlog.length === 0 && this.#started < ITEMS_PER_TURN) {
      if (this.#started++ === 0) queueMicrotask(this.#newTurn);
      this.#onItem(this.#source, seq, body);
      return;
    }
    if (this.#backlog.length === 0) setImmediate(this.#drain);
    const ac = new LazyAbort();
    this.#inFlight.set(`${this.#source.client}.${seq}`, ac);
    this.#backlog.push(this.#source, seq, body, ac);
  }

  readonly #newTurn = (): void => {
    this.#started = 0;
  };

  /** Starts the next ITEMS_PER_TURN queued calls, after the replies of the last ones went out. */
  readonly #drain = (): void => {
    const q = this.#backlog;
    let i = this.#backlogAt;
    const end = Math.min(q.length, i + ITEMS_PER_TURN * 4);
    for (; i < end; i += 4)
      this.#onItem(q[i] as Source, q[i + 1] as number, q[i + 2] as Uint8Array, q[i + 3] as LazyAbort);
    if (i < q.length) {
      this.#backlogAt = i;
      setImmediate(this.#drain);
    } else {
      this.#backlog = [];
      this.#backlogAt = 0;
    }
  };

  /** Starts one call of a frame; `queued` is its abort when it waited in the backlog (see `#take`). */
  #onItem(src: Source, seq: number, body: Uint8Array, queued?: LazyAbort): void {
    const key = `${src.client}.${seq}`;
    if (queued !== undefined) this.#inFlight.delete(key);
    const env = decodeServed(this.service, body, this.maxBytes, src.own, "this subject");
    if (env instanceof FanError) {
      if (env.code !== Code.NOT_FOUND)
        this.#log.warn({ err: env.message, subject: src.subject, bytes: body.length }, "undecodable nats call");
      this.#queue(src, seq, errorEnvelope("?", undefined, env));
      return;
    }
    if (env.kind === "push") {
      void handlePush(this.inbound, env).then((out) => this.#queue(src, seq, out));
      return;
    }
    if (queued?.aborted === true) {
      // Cancelled (or the server closed) while it waited: answered without running the handler.
      this.#queue(src, seq, errorEnvelope(env.id, env, new FanError(Code.CANCELLED, "cancelled before it started")));
      return;
    }
    const ac = queued ?? new LazyAbort();
    this.#inFlight.set(key, ac);
    if (runWithSink(this.inbound, env, ac, new ItemSink(this, src, seq, key, env))) return;
    this.inbound.call(env, ac).then(
      (out: Envelope) => this.itemDone(src, seq, key, out),
      (e: unknown) => this.itemDone(src, seq, key, errorEnvelope(env.id, env, FanError.from(e))),
    );
  }

  /** The served version (reply envelopes name it). */
  get version(): string {
    return this.service.version;
  }

  /** A call of a batch frame answered (from its ItemSink or its promise). */
  itemDone(src: Source, seq: number, key: string, out: Envelope): void {
    this.#inFlight.delete(key);
    this.#queue(src, seq, out);
  }

  /** Queues a reply for this tick's frame to its client (sent at once when the frame is full). */
  #queue(src: Source, seq: number, out: Envelope): void {
    const nc = this.link.nc;
    let json = encodeEnvelopeText(out);
    let size = Buffer.byteLength(json, "utf8");
    const limit = nc === undefined ? this.maxBytes : payloadLimit(nc, this.maxBytes);
    const max = serverLimit(nc);
    if (size > limit || 1 + size + itemOverhead(seq) > max) {
      json = encodeEnvelopeText(errorEnvelope(out.id, out, tooLarge("reply", size, limit, this.maxBytes)));
      size = Buffer.byteLength(json, "utf8");
    }
    let box = this.#outbox.get(src.client);
    if (box !== undefined && box.frame.bytes + size + itemOverhead(seq) > max) {
      this.#outbox.delete(src.client);
      this.#send(box);
      box = undefined;
    }
    if (box === undefined) {
      box = { subject: src.reply, frame: new FrameBuilder() };
      this.#outbox.set(src.client, box);
    }
    box.frame.add(seq, json, size);
    if (!this.#flushing) {
      this.#flushing = true;
      process.nextTick(() => this.#flushReplies());
    }
  }

  #flushReplies(): void {
    this.#flushing = false;
    for (const box of this.#outbox.values()) this.#send(box);
    this.#outbox.clear();
  }

  #send(box: Outbox): void {
    const nc = this.link.nc;
    try {
      if (nc === undefined) throw new Error("not connected");
      nc.publish(box.subject, box.frame.text);
    } catch (e) {
      this.#log.warn({ err: (e as Error).message, calls: box.frame.count }, "nats reply not sent");
    }
  }

  /** A call in a message of its own answered (from its MessageSink). */
  messageDone(msg: Msg, reply: string, out: Envelope): void {
    this.#done(msg, reply, out);
  }

  #done(msg: Msg, reply: string, out: Envelope): void {
    this.#inFlight.delete(reply);
    this.#reply(msg, out);
  }

  #reply(msg: Msg, out: Envelope): void {
    const nc = this.link.nc;
    let body = encodeEnvelope(out);
    const limit = nc === undefined ? this.maxBytes : payloadLimit(nc, this.maxBytes);
    if (body.length > limit)
      body = encodeEnvelope(errorEnvelope(out.id, out, tooLarge("reply", body.length, limit, this.maxBytes)));
    try {
      if (!msg.respond(body)) this.#log.warn({ subject: msg.subject }, "nats call without a reply subject dropped");
    } catch (e) {
      this.#log.warn({ err: (e as Error).message }, "nats reply not sent");
    }
  }

  /**
   * Stops taking calls (cancellations still reach calls in flight). Drains rather than
   * unsubscribes while connected: the messages nats-server routed here before it had the
   * unsubscription still reach `#onCall` and are answered. nats.js drops a message for a
   * subscription already unsubscribed without a word, and each held up to 32 calls that then
   * waited for their deadline. Bounded as `link.flush` is (2 s).
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const drained: Promise<unknown>[] = [];
    for (const s of this.#subs.splice(1)) {
      try {
        if (this.link.up) drained.push(s.drain().catch(() => undefined));
        else s.unsubscribe();
      } catch {
        // closed already
      }
    }
    if (drained.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(drained),
        new Promise((r) => {
          timer = setTimeout(r, 2000);
        }),
      ]);
      clearTimeout(timer);
    }
    await this.link.flush();
  }

  /** Calls not answered yet: running, or waiting for a turn (see `#take`). */
  get busy(): number {
    return this.#inFlight.size;
  }

  /** Aborts calls still running and waits up to `graceMs` for their replies to go out. */
  async close(graceMs: number): Promise<void> {
    await this.stop();
    for (const ac of this.#inFlight.values()) ac.abort();
    const until = Date.now() + graceMs;
    while (this.busy > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    this.#flushReplies();
    try {
      this.#subs[0]?.unsubscribe();
    } catch {
      // closed already
    }
  }
}
