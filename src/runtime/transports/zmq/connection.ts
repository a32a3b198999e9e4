/**
 * One DEALER connected to one endpoint, with many requests in flight on it, matched to their
 * answers by id. A DEALER never waits for a reply before sending the next request (no stuck
 * REQ socket), so a lost reply costs one request its deadline, never the socket.
 *
 * Pipes survive disconnects (`immediate` off), so a reply read just before the peer went away
 * is not discarded with its pipe. Reachability comes from the socket monitor instead:
 * - connecting (no ZMTP handshake yet): requests are held here, not handed to the socket, until
 *   the handshake succeeds (then sent) or `sendTimeoutMs` passes; a peer that accepts TCP and
 *   never greets is named as such, one whose greeting fails ends them at once;
 * - down (the connection dropped, a connect attempt was refused, or the handshake failed):
 *   requests fail UNAVAILABLE at once, until zeromq reconnects (then they are held again), and `reachable` says so for callers to skip the
 *   endpoint. Held and refused requests never reached the socket: they are marked not
 *   delivered (`not-delivered.ts`), so the client may send them to another instance;
 * - requests in flight when it drops fail UNAVAILABLE (after a moment, for replies that
 *   arrived just before the drop to be read).
 */
import type { Logger } from "pino";
import { Dealer } from "zeromq";
import { deadlines, type Expirable } from "../../call/deadlines.js";
import { lostWith } from "../../call/lost.js";
import { Code, FanError } from "../../errors.js";
import type { Envelope, SendOptions } from "../transport.js";
import type { ZmqClientOptions } from "./client.js";
import { onAbort } from "../abort.js";
import { notDelivered } from "../not-delivered.js";
import { COMPACT_ID_MARK } from "../replies.js";
import { envelopeJson, head, Op, oversize, text } from "./frames.js";
import { Writer } from "./writer.js";

/** How long after a disconnect the requests then pending are failed. */
const LOST_GRACE_MS = 100;
/** Bound on messages queued towards one endpoint (a full queue blocks sends, then UNAVAILABLE). */
const SEND_QUEUE = 10_000;

/** The answer frames of one request. */
export interface Answer {
  readonly op: string;
  readonly body: Buffer;
}

/** One request in flight: settled once, by its answer, its deadline, an abort or a failure. */
class Request implements Expirable {
  bucket = 0;
  prev: Expirable | undefined = undefined;
  next: Expirable | undefined = undefined;
  stopAbort: (() => void) | undefined = undefined;
  connectTimer: NodeJS.Timeout | undefined = undefined;
  private done = false;

  constructor(
    private readonly conn: Connection,
    private readonly id: string,
    private readonly what: string,
    private readonly resolve: (a: Answer) => void,
    private readonly reject: (e: FanError) => void,
  ) {}

  expire(): void {
    const waiting = this.conn.stalled();
    this.fail(
      new FanError(Code.DEADLINE_EXCEEDED, `${this.what}: ${waiting?.message ?? "no answer within the deadline"}`),
    );
  }

  settle(a: Answer): void {
    if (this.finish()) this.resolve(a);
  }

  fail(err: FanError): void {
    if (this.finish()) this.reject(err);
  }

  private finish(): boolean {
    if (this.done) return false;
    this.done = true;
    deadlines.remove(this);
    this.stopAbort?.();
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    this.conn.forget(this.id);
    return true;
  }
}

/** A DEALER and its requests in flight. */
export class Connection {
  private readonly dealer: Dealer;
  private readonly writer: Writer;
  private readonly pending = new Map<string, Request>();
  /** Requests waiting for the first connection: not yet handed to the socket. */
  private held: Array<{ readonly id: string; readonly frames: string[]; readonly deadline: number }> = [];
  private up = false;
  /** TCP connected, ZMTP handshake not done yet (a peer that accepts but is no zmq endpoint stays here). */
  private greeting = false;
  private warnedHandshake = false;
  /** Known down: dropped, refused or a failed handshake, and not reconnected (TCP) since. */
  private down = false;
  private closed = false;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly endpoint: string,
    private readonly opts: ZmqClientOptions,
    private readonly log: Logger,
    private readonly maxBytes: number,
    private readonly onIdleClose: () => void,
  ) {
    const sendTimeout = opts.sendTimeoutMs ?? 2000;
    this.dealer = new Dealer({
      linger: 0,
      sendTimeout,
      sendHighWaterMark: SEND_QUEUE,
      receiveHighWaterMark: 0,
      maxMessageSize: maxBytes * 2 + 64 * 1024,
    });
    this.writer = new Writer(this.dealer, `zmq ${endpoint}`, maxBytes);
    // Up once the ZMTP handshake succeeds, not at the TCP connect: until then zeromq holds what
    // is sent, so a peer that accepts TCP and never greets would hold requests silently.
    this.dealer.events.on("connect", () => {
      // Reconnected (TCP): no longer known down; what is sent until the handshake is held, as on
      // a new connection, rather than failed as "connection is down".
      this.greeting = true;
      this.down = false;
    });
    this.dealer.events.on("handshake", () => this.connected());
    this.dealer.events.on("handshake:error:protocol", (e) => this.badHandshake(e.error.message));
    this.dealer.events.on("handshake:error:other", (e) => this.badHandshake(e.error.message));
    this.dealer.events.on("disconnect", () => this.lost());
    this.dealer.events.on("connect:retry", () => this.refused());
    this.dealer.connect(endpoint);
    this.armIdleClose();
    void this.receive();
  }

  /** Whether requests can go out now (false while the connection is known down). */
  get reachable(): boolean {
    return !this.down;
  }

  /** While the first connection is being made: the error of a request held until its deadline. */
  stalled(): FanError | undefined {
    if (this.up || this.down || this.closed) return undefined;
    return new FanError(Code.DEADLINE_EXCEEDED, `zmq ${this.endpoint} ${this.waitingFor()} before the deadline`);
  }

  /** What a held request waits for: the TCP connection, or the peer's ZMTP greeting. */
  private waitingFor(): string {
    return this.greeting
      ? "accepted the TCP connection but did not complete the ZMTP handshake (is it a zmq endpoint?)"
      : "not connected";
  }

  /** The peer answered the greeting with something that is not ZMTP: fail what waits on it now. */
  private badHandshake(detail: string): void {
    this.greeting = false;
    if (this.up) return;
    this.down = true;
    const why = `the ZMTP handshake failed (${detail}): the peer stopped mid-handshake, or is not a zmq endpoint`;
    // zeromq retries every ~100 ms: one warning until a handshake succeeds, not one per retry.
    if (!this.warnedHandshake) this.log.warn({ endpoint: this.endpoint }, `zmq ${this.endpoint}: ${why}`);
    this.warnedHandshake = true;
    this.failHeld(why);
  }

  private connected(): void {
    this.up = true;
    this.greeting = false;
    this.warnedHandshake = false;
    this.down = false;
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    const held = this.held;
    this.held = [];
    for (const h of held) {
      const req = this.pending.get(h.id);
      if (req === undefined) continue;
      if (req.connectTimer !== undefined) clearTimeout(req.connectTimer);
      req.connectTimer = undefined;
      this.writer.send(h.frames, h.deadline).catch((e: unknown) => req.fail(FanError.from(e, Code.UNAVAILABLE)));
    }
  }

  /** A connect attempt failed (refused, unreachable): the held requests fail now, not after `sendTimeoutMs`. */
  private refused(): void {
    if (this.up) return;
    this.down = true;
    this.failHeld("connection refused");
  }

  private failHeld(why: string): void {
    const held = this.held;
    this.held = [];
    for (const h of held) this.pending.get(h.id)?.fail(this.notConnected(why));
  }

  private notConnected(why: string): FanError {
    return notDelivered(new FanError(Code.UNAVAILABLE, `zmq ${this.endpoint}: ${why}`));
  }

  private lost(): void {
    const wasUp = this.up;
    this.up = false;
    this.greeting = false;
    this.down = true;
    // Down since now if it was up; a disconnect after a failed handshake (a peer that is no zmq
    // endpoint, every ~100 ms) keeps the timer running since the last time it was up, else the
    // connection would never be closed and zeromq would retry that peer for as long as the App runs.
    if (wasUp) this.armIdleClose();
    const ids = [...this.pending.keys()];
    if (ids.length === 0) return;
    setTimeout(() => {
      // One event for the retry budget however many calls it fails (call/lost.ts).
      const err = lostWith(
        new FanError(Code.UNAVAILABLE, `zmq ${this.endpoint}: connection lost`),
        `zmq ${this.endpoint}`,
      );
      for (const id of ids) this.pending.get(id)?.fail(err);
    }, LOST_GRACE_MS).unref();
  }

  private armIdleClose(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.up || this.closed) return;
      this.onIdleClose();
      this.close();
    }, this.opts.idleCloseMs ?? 30_000).unref();
  }

  private async receive(): Promise<void> {
    try {
      for await (const frames of this.dealer) {
        // One answer `[head, body]` or a batch of them (frames.ts).
        for (let i = 0; i < frames.length; i += 2) {
          const h = text(frames[i]);
          this.pending.get(h.slice(1))?.settle({ op: h.charAt(0), body: frames[i + 1] ?? Buffer.alloc(0) });
        }
      }
    } catch (e) {
      if (!this.closed) this.log.error({ err: e, endpoint: this.endpoint }, "zmq: client receive loop failed");
    }
  }

  /** Sends one request and waits for its answer frames. */
  request(op: string, env: Envelope, opts: SendOptions): Promise<Answer> {
    const what = `${env.service}/${env.method}`;
    if (opts.signal.aborted) return Promise.reject(new FanError(Code.CANCELLED, `${what}: cancelled`));
    if (opts.deadline <= Date.now())
      return Promise.reject(new FanError(Code.DEADLINE_EXCEEDED, `${what}: deadline passed before sending`));
    const body = envelopeJson(
      env,
      env.headers.deadline === undefined && Number.isFinite(opts.deadline)
        ? { ...env.headers, deadline: opts.deadline }
        : env.headers,
    );
    const size = oversize(body, this.maxBytes);
    if (size > 0)
      return Promise.reject(
        new FanError(Code.RESOURCE_EXHAUSTED, `request of ${size} bytes exceeds the limit of ${this.maxBytes}`),
      );
    if (this.down) return Promise.reject(this.notConnected("connection is down"));
    // A call's message id carries the compact mark: a server that reads it answers `=`/`!`
    // (replies.ts); an older one echoes the id and answers a whole envelope.
    const id = op === Op.CALL ? COMPACT_ID_MARK + env.id : env.id;
    return new Promise((resolve, reject) => {
      const req = new Request(this, id, what, resolve, reject);
      this.pending.set(id, req);
      if (Number.isFinite(opts.deadline)) deadlines.add(req, opts.deadline);
      req.stopAbort = onAbort(opts.signal, () => {
        if (op === Op.CALL && this.up)
          void this.writer.send([head(Op.CANCEL, id), ""], Date.now() + 1000).catch(() => undefined);
        req.fail(new FanError(Code.CANCELLED, `${what}: cancelled`));
      });
      const frames = [head(op, id), body];
      if (!this.up) {
        this.held.push({ id, frames, deadline: opts.deadline });
        req.connectTimer = setTimeout(() => {
          this.held = this.held.filter((h) => h.id !== id);
          req.fail(this.notConnected(this.waitingFor()));
        }, this.opts.sendTimeoutMs ?? 2000);
        return;
      }
      this.writer.send(frames, opts.deadline).catch((e: unknown) => req.fail(FanError.from(e, Code.UNAVAILABLE)));
    });
  }

  /** Forgets a settled request. */
  forget(id: string): void {
    this.pending.delete(id);
  }

  /** Closes the DEALER (linger 0) and fails everything pending. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    const err = new FanError(Code.UNAVAILABLE, `zmq ${this.endpoint}: transport closed`);
    this.writer.fail(err);
    for (const p of [...this.pending.values()]) p.fail(err);
    this.dealer.close();
  }
}
