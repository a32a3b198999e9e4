/**
 * The calling side of nats rpc: the calls made in one tick to one subject (the version's, which
 * its instances share in a queue group; a sharded call goes to its owner's own subject) travel as
 * one core NATS message, a batch frame (batch-frame.ts) whose items carry this client's sequence
 * numbers; the batching itself is the shared core's (batching/calls.ts). The message's reply
 * subject is this client's `{prefix}.{n}` (`n` the batch's number), all answered through one
 * wildcard subscription; replies come back as batch frames too, matched by sequence number
 * whatever subject they arrive on. NATS answers a message nobody subscribes to with a "no
 * responders" status at once: its batch's calls fail with UNAVAILABLE, marked as never
 * delivered. A lone call is sent in the tick it was made (no waiting for company). A cancelled
 * call still queued is left out of its frame; one already sent is announced on the version's
 * cancel subject (`{prefix}.{seq}`), where every serving instance listens.
 */
import { randomBytes } from "node:crypto";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { encodeEnvelopeText } from "../../codec/wire.js";
import { Code, FanError } from "../../errors.js";
import { isBatch, itemOverhead } from "../batch-frame.js";
import { type CallBatch, CallBatcher, type PendingCall, release, withDeadline } from "../batching/calls.js";
import { notDelivered } from "../not-delivered.js";
import type { Envelope, SendOptions } from "../transport.js";
import type { NatsLink } from "./connection.js";
import { callSubject, cancelSubject, type NatsAddress, parseEndpoint, replyPrefix } from "./names.js";
import { warnDropped } from "../../telemetry/drops.js";

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

/** Frames up to this many UTF-16 code units are handed to nats.js as bytes (see `payloadOf`). */
export const SMALL_FRAME = 1024;

/**
 * A frame's text as nats.js's `publish` should get it. nats.js encodes a string payload with
 * `TextEncoder`, a fresh ArrayBuffer per message; a small frame (a lone call or reply) costs
 * less copied from Node's Buffer pool (0.3–0.7 µs less per publish at 270 bytes), a large one
 * more (~2 µs more at 8.4 KB: docs/performance.md, "c=1 across processes"), so only small frames
 * go as bytes. The bytes on the wire are the same either way.
 */
export function payloadOf(text: string): string | Uint8Array {
  return text.length <= SMALL_FRAME ? Buffer.from(text, "utf8") : text;
}

type Batch = CallBatch<NatsAddress, NatsConnection>;
type Pending = PendingCall<NatsAddress, NatsConnection>;

/** Sends calls and matches the replies arriving on this client's reply subjects. */
export class NatsRpcClient extends CallBatcher<NatsAddress, NatsConnection> {
  readonly #prefix: string;
  readonly #prefixDot: string;
  #sub: Subscription | undefined;
  readonly #stopWatching: () => void;

  constructor(
    private readonly link: NatsLink,
    cluster: string,
    log: Logger,
    maxBytes: number,
  ) {
    super("nats", log, maxBytes);
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
    const max = serverLimit(nc);
    const framed = 1 + size + itemOverhead(this.nextSeq);
    if (framed > max) return Promise.reject(tooLarge("call", framed, max, max));
    this.#sub ??= nc.subscribe(`${this.#prefix}.*`, { callback: (err, msg) => this.#onReply(err, msg) });
    const sharded = (env.headers.shard !== undefined || opts.instance === true) && addr.instance !== undefined;
    return this.queue(addr, callSubject(addr, sharded), sharded, json, size, opts);
  }

  protected frameLimit(): number {
    return serverLimit(this.link.nc);
  }

  /** Publishes a frame, its reply subject naming the batch. */
  protected send(b: Batch, text: string): NatsConnection {
    const nc = this.link.nc;
    if (nc === undefined || !this.link.up) throw new Error("connection lost");
    nc.publish(b.dest, payloadOf(text), { reply: `${this.#prefixDot}${b.id}` });
    release(b.calls);
    return nc;
  }

  #onReply(err: Error | null, msg: Msg): void {
    if (err !== null) return;
    const data = msg.data;
    if (isBatch(data)) {
      if (!this.readFrame(data))
        warnDropped(
          this.log,
          // One key for the client: each batch has a reply subject of its own (named in the fields).
          { transport: "nats", endpoint: "reply subjects", reason: "malformed frame" },
          { subject: msg.subject, bytes: data.length },
          "malformed nats reply frame dropped",
        );
      return;
    }
    // Not a frame: a status, or one envelope answering the whole message (a server that could not read it).
    const b = this.batch(Number(msg.subject.slice(this.#prefixDot.length)));
    if (b === undefined) return;
    if (data.length === 0 && msg.headers?.code === 503) {
      this.failBatch(b, (p) => {
        const what = `${p.addr.service}@${p.addr.version}`;
        const who = p.sharded ? `instance ${p.addr.instance} of ${what} is not` : `no instance of ${what} is`;
        return notDelivered(new FanError(Code.UNAVAILABLE, `${who} serving on nats (no responders)`));
      });
      return;
    }
    this.answerBatch(b, data);
  }

  /** Announces a cancelled call to the instances of its version. */
  protected announceCancel(p: Pending): void {
    const nc = this.link.nc;
    if (nc === undefined || !this.link.up) return;
    try {
      nc.publish(cancelSubject(p.addr), `${this.#prefixDot}${p.seq}`);
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, "nats cancel not sent");
    }
  }

  /** The connection dropped: replies sent meanwhile are lost, so pending calls fail. */
  #onLost(why: string): void {
    // Calls still queued for this tick's frame never left: provably not delivered (retryable anywhere).
    this.failQueued(() =>
      notDelivered(new FanError(Code.UNAVAILABLE, `nats connection lost before the call was sent (${why})`)),
    );
    this.failAll(() => new FanError(Code.UNAVAILABLE, `nats connection lost while the call was in flight (${why})`));
  }

  /** Fails every pending call and stops listening for replies. */
  close(): void {
    this.#stopWatching();
    this.failAll(() => new FanError(Code.UNAVAILABLE, "nats transport closed"));
    try {
      this.#sub?.unsubscribe();
    } catch {
      // the connection is already closed
    }
  }
}
