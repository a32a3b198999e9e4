/**
 * The serving side of nats rpc: one instance subscribes to its version's subject in the queue
 * group `rpc` (NATS hands each call to one member), to its own instance subject (sharded calls
 * and @shard pushes for a shard's owner) and to the version's cancel subject. Calls are answered on their reply
 * subject. A message that is not a call (garbage bytes, a forbidden key, another service) gets
 * an error reply when it has a reply subject and a warn log line either way; nothing reaches a
 * handler. Subscriptions come back by themselves after a reconnection.
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { ServiceDescriptor } from "../../descriptor.js";
import { decodeEnvelope, encodeEnvelope } from "../../codec/wire.js";
import { Code, FanError } from "../../errors.js";
import { handlePush } from "../owner-push.js";
import { errorEnvelope, refuse } from "../replies.js";
import { LazyAbort } from "../abort.js";
import type { Envelope, Inbound } from "../transport.js";
import type { NatsLink } from "./connection.js";
import { cancelSubject, instanceSubject, type NatsAddress, RPC_QUEUE, rpcSubject } from "./names.js";
import { payloadLimit, tooLarge } from "./rpc-client.js";

/** One served instance's rpc side. */
export class NatsRpcServer {
  readonly #inFlight = new Map<string, LazyAbort>();
  readonly #subs: Subscription[] = [];
  readonly #log: Logger;
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
    this.inbound.call(env, ac).then(
      (out: Envelope) => this.#done(msg, reply, out),
      (e: unknown) => this.#done(msg, reply, errorEnvelope(env.id, env, FanError.from(e))),
    );
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

  /** Stops taking calls (unsubscribes; cancellations still reach calls in flight). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const s of this.#subs.splice(1)) {
      try {
        s.unsubscribe();
      } catch {
        // closed already
      }
    }
    await this.link.flush();
  }

  /** Calls whose handler has not answered yet. */
  get busy(): number {
    return this.#inFlight.size;
  }

  /** Aborts calls still running and waits up to `graceMs` for their replies to go out. */
  async close(graceMs: number): Promise<void> {
    await this.stop();
    for (const ac of this.#inFlight.values()) ac.abort();
    const until = Date.now() + graceMs;
    while (this.#inFlight.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    try {
      this.#subs[0]?.unsubscribe();
    } catch {
      // closed already
    }
  }
}
