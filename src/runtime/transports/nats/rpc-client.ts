/**
 * The calling side of nats rpc: a call is one core NATS message to the version's subject (the
 * instances share it in a queue group; a sharded call goes to its owner's own subject) with a
 * reply subject of this client's (`{prefix}.{n}`), all answered through one wildcard
 * subscription. NATS answers a call nobody subscribes to with a "no responders" status at once:
 * UNAVAILABLE, marked as never delivered. A cancelled call is announced on the version's cancel
 * subject, where every serving instance listens.
 */
import { randomBytes } from "node:crypto";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { deadlines, type Expirable } from "../../call/deadlines.js";
import { decodeEnvelope, encodeEnvelope } from "../../codec/wire.js";
import { Code, FanError } from "../../errors.js";
import { type AbortTarget, unwatchAbort, watchAbort } from "../abort.js";
import { notDelivered } from "../not-delivered.js";
import type { Envelope, SendOptions } from "../transport.js";
import type { NatsLink } from "./connection.js";
import { callSubject, cancelSubject, type NatsAddress, parseEndpoint, replyPrefix } from "./names.js";

/** The largest message the connected server takes, and the App's bound. */
export function payloadLimit(nc: NatsConnection, maxBytes: number): number {
  const server = nc.info?.max_payload;
  return typeof server === "number" && server > 0 ? Math.min(maxBytes, server) : maxBytes;
}

/** RESOURCE_EXHAUSTED naming which bound `size` broke. */
export function tooLarge(what: string, size: number, limit: number, maxBytes: number): FanError {
  const whose = limit < maxBytes ? `the nats server's max_payload of ${limit}` : `the limit of ${limit}`;
  return new FanError(Code.RESOURCE_EXHAUSTED, `${what} of ${size} bytes exceeds ${whose}`);
}

/** Sends calls and matches the replies arriving on this client's reply subjects. */
export class NatsRpcClient {
  readonly #pending = new Map<string, PendingReply>();
  readonly #prefix: string;
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
    this.#stopWatching = link.onDown((why) => this.#onLost(why));
  }

  /** Sends `env` to `endpoint`'s subject; resolves with the reply or error envelope. */
  call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope> {
    let addr: NatsAddress;
    let body: Buffer;
    try {
      addr = parseEndpoint(endpoint);
      if (opts.signal.aborted) throw notDelivered(new FanError(Code.CANCELLED, "cancelled"));
      body = encodeEnvelope(withDeadline(env, opts.deadline));
    } catch (e) {
      return Promise.reject(e);
    }
    const nc = this.link.nc;
    if (nc !== undefined && this.link.up) return this.#send(nc, addr, env, body, opts);
    return this.link.ready(opts.deadline, opts.signal).then(
      (c) => this.#send(c, addr, env, body, opts),
      (e: unknown) => {
        throw notDelivered(FanError.from(e, Code.UNAVAILABLE));
      },
    );
  }

  #send(nc: NatsConnection, addr: NatsAddress, env: Envelope, body: Buffer, opts: SendOptions): Promise<Envelope> {
    const limit = payloadLimit(nc, this.maxBytes);
    if (body.length > limit) return Promise.reject(tooLarge("call", body.length, limit, this.maxBytes));
    this.#sub ??= nc.subscribe(`${this.#prefix}.*`, { callback: (err, msg) => this.#onReply(err, msg) });
    const reply = `${this.#prefix}.${++this.#seq}`;
    const sharded = env.headers.shard !== undefined && addr.instance !== undefined;
    const promise = new Promise<Envelope>(capture);
    const p = new PendingReply(this, reply, addr, sharded, opts.signal, captured.resolve, captured.reject, opts.deadline);
    this.#pending.set(reply, p);
    if (p.finite) deadlines.add(p, opts.deadline);
    watchAbort(opts.signal, p);
    try {
      nc.publish(callSubject(addr, sharded), body, { reply });
    } catch (e) {
      p.settle(notDelivered(new FanError(Code.UNAVAILABLE, `nats publish failed: ${(e as Error).message}`)));
    }
    return promise;
  }

  #onReply(err: Error | null, msg: Msg): void {
    if (err !== null) return;
    const p = this.#pending.get(msg.subject);
    if (p === undefined) return;
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      const who = p.sharded ? `instance ${p.addr.instance} of` : "no instance of";
      p.settle(notDelivered(new FanError(Code.UNAVAILABLE, `${who} ${p.addr.service}@${p.addr.version} is serving on nats`)));
      return;
    }
    try {
      p.settle(decodeEnvelope(msg.data, { maxBytes: this.maxBytes }));
    } catch (e) {
      p.settle(FanError.from(e));
    }
  }

  /** Forgets a pending call; false when it was already settled. */
  forget(reply: string): boolean {
    return this.#pending.delete(reply);
  }

  /** Announces a cancelled call to the instances of its version. */
  cancelled(addr: NatsAddress, reply: string): void {
    const nc = this.link.nc;
    if (nc === undefined || !this.link.up) return;
    try {
      nc.publish(cancelSubject(addr), reply);
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, "nats cancel not sent");
    }
  }

  /** The connection dropped: replies sent meanwhile are lost, so pending calls fail. */
  #onLost(why: string): void {
    for (const p of [...this.#pending.values()])
      p.settle(new FanError(Code.UNAVAILABLE, `nats connection lost while the call was in flight (${why})`));
  }

  /** Fails every pending call and stops listening for replies. */
  close(): void {
    this.#stopWatching();
    for (const p of [...this.#pending.values()]) p.settle(new FanError(Code.UNAVAILABLE, "nats transport closed"));
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
    private readonly reply: string,
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
    this.client.cancelled(this.addr, this.reply);
  }

  settle(result: Envelope | FanError): void {
    if (!this.client.forget(this.reply)) return;
    if (this.finite) deadlines.remove(this);
    unwatchAbort(this.signal, this);
    if (result instanceof FanError) this.reject(result);
    else this.resolve(result);
  }
}
