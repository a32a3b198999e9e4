/**
 * The serving side of nats rpc: one instance subscribes to its version's subject in the queue
 * group `rpc` (NATS hands each call to one member), to its own instance subject (sharded calls
 * and @shard pushes for a shard's owner) and to the version's cancel subject. Calls are answered on their reply
 * subject. A message that is not a call (garbage bytes, a forbidden key, another service) gets
 * an error reply when it has a reply subject and a warn log line either way; nothing reaches a
 * handler. Subscriptions come back by themselves after a reconnection.
 *
 * A batch frame (batch-frame.ts: the calls a client made in one tick) is split into its calls by
 * the shared frame pump (batching/served.ts); the replies to one client that finish in one tick go back as one batch frame, to the reply subject
 * of one of its messages (the client matches items by sequence number). A frame the server cannot
 * read past some item is answered with one error envelope on its reply subject, which fails the
 * calls of that message.
 *
 * A call of a frame still running 100 to 200 ms after it arrived is announced to its client (a
 * taken notice: taken-notices.ts), so the caller can fail it if this instance dies.
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { ServiceDescriptor } from "../../descriptor.js";
import { decodeEnvelope, encodeEnvelope } from "../../codec/wire.js";
import { Code, FanError } from "../../errors.js";
import { handlePush } from "../owner-push.js";
import { errorEnvelope, refuse, ReplySink, runWithSink } from "../replies.js";
import { LazyAbort } from "../abort.js";
import type { Envelope, Inbound } from "../transport.js";
import type { NatsLink } from "./connection.js";
import { isBatch, wantsCompact } from "../batch-frame.js";
import { type FrameHost, FramePump, type FrameSource } from "../batching/served.js";
import { cancelSubject, instanceSubject, type NatsAddress, RPC_QUEUE, rpcSubject } from "./names.js";
import { payloadLimit, payloadOf, serverLimit, tooLarge } from "./rpc-client.js";
import { TakenNotices } from "./taken-notices.js";
import { aboutMessage } from "../log-keys.js";
import { warnDropped } from "../../telemetry/drops.js";

/** The message being split: where its items' replies go. */
interface Source extends FrameSource {
  readonly subject: string;
  readonly reply: string;
  readonly msg: Msg;
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
  readonly #pump: FramePump<Source>;
  readonly #inFlight: Map<string, LazyAbort>;
  readonly #subs: Subscription[] = [];
  readonly #log: Logger;
  #stopped = false;
  /** Taken notices of calls still running; none for an address without an instance. */
  readonly #notices: TakenNotices | undefined;

  constructor(
    private readonly link: NatsLink,
    private readonly addr: NatsAddress,
    private readonly service: ServiceDescriptor,
    private readonly inbound: Inbound,
    private readonly maxBytes: number,
    log: Logger,
  ) {
    this.#log = log.child({ service: service.name, instanceId: addr.instance });
    this.#pump = new FramePump<Source>(this.#frames, {
      service,
      inbound,
      maxBytes,
      bound: Number.POSITIVE_INFINITY,
      log: this.#log,
      name: "nats",
      where: "this subject",
    });
    this.#inFlight = this.#pump.inFlight;
    this.#notices =
      addr.instance === undefined ? undefined : new TakenNotices(link, addr.instance, this.#inFlight, this.#log);
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
      // One line per message: dropped when it cannot be answered, else refused to its caller.
      const err = FanError.from(e, Code.INVALID_ARGUMENT);
      const fields = { subject: msg.subject, err: err.message, bytes: msg.data.length };
      if (reply === undefined || reply === "") {
        const undecodable = err.code !== Code.NOT_FOUND && err.code !== Code.UNIMPLEMENTED;
        const reason = undecodable ? "undecodable, no reply subject" : "no reply subject";
        const msgText = undecodable
          ? "undecodable nats call without a reply subject dropped"
          : "nats call without a reply subject dropped";
        warnDropped(this.#log, { transport: "nats", endpoint: msg.subject, reason }, fields, msgText);
        return;
      }
      if (err.code !== Code.NOT_FOUND && err.code !== Code.UNIMPLEMENTED)
        warnDropped(
          this.#log,
          { transport: "nats", endpoint: msg.subject, reason: "undecodable" },
          fields,
          "undecodable nats call refused (INVALID_ARGUMENT)",
        );
      this.#reply(msg, errorEnvelope("?", undefined, err));
      return;
    }
    if (reply === undefined || reply === "") {
      this.#noReply(msg, aboutMessage(env));
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

  /** A call that cannot be answered: no reply subject. */
  #noReply(msg: Msg, fields: Record<string, unknown>): void {
    warnDropped(
      this.#log,
      { transport: "nats", endpoint: msg.subject, reason: "no reply subject" },
      { subject: msg.subject, ...fields },
      "nats call without a reply subject dropped",
    );
  }

  /** Hands a batch frame to the pump. */
  #onBatch(msg: Msg): void {
    const reply = msg.reply;
    if (reply === undefined || reply === "") {
      this.#noReply(msg, { bytes: msg.data.length });
      return;
    }
    const client = clientOf(reply);
    this.#notices?.arm();
    this.#pump.read(
      {
        subject: msg.subject,
        reply,
        msg,
        client: `${client}.`,
        replyKey: client,
        redelivered: false,
        pushes: msg.subject === instanceSubject(this.addr),
        compact: wantsCompact(msg.data),
        left: 1,
      },
      msg.data,
    );
  }

  /** The broker side of the frame pump: where reply frames go. */
  readonly #frames: FrameHost<Source> = {
    sendReplies: (src, text, count) => {
      const nc = this.link.nc;
      try {
        if (nc === undefined) throw new Error("not connected");
        nc.publish(src.reply, payloadOf(text));
      } catch (e) {
        this.#log.warn({ err: (e as Error).message, calls: count }, "nats reply not sent");
      }
    },
    malformed: (src) => {
      warnDropped(
        this.#log,
        { transport: "nats", endpoint: src.subject, reason: "malformed frame" },
        { subject: src.subject, bytes: src.msg.data.length },
        "malformed nats call frame refused (INVALID_ARGUMENT)",
      );
      this.#reply(
        src.msg,
        errorEnvelope("?", undefined, new FanError(Code.INVALID_ARGUMENT, "malformed nats call frame")),
      );
    },
    replyBounds: () => {
      const nc = this.link.nc;
      const max = serverLimit(nc);
      return { limit: nc === undefined ? this.maxBytes : payloadLimit(nc, this.maxBytes), max, lone: max };
    },
    tooLarge: (size, limit) => tooLarge("reply", size, limit, this.maxBytes),
    describe: (src) => ({ subject: src.subject }),
  };

  /** The served version (reply envelopes name it). */
  get version(): string {
    return this.service.version;
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
      if (!msg.respond(body)) this.#noReply(msg, { id: out.id });
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

  /**
   * Aborts calls still running, answers those still waiting for a turn (UNAVAILABLE: they never
   * started here), and waits up to `graceMs` for the replies to go out.
   */
  async close(graceMs: number): Promise<void> {
    await this.stop();
    for (const ac of this.#inFlight.values()) ac.abort();
    this.#pump.refuseWaiting();
    const until = Date.now() + graceMs;
    while (this.busy > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    this.#pump.flush();
    this.#notices?.close();
    try {
      this.#subs[0]?.unsubscribe();
    } catch {
      // closed already
    }
  }
}
