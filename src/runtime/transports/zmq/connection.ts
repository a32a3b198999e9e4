/**
 * One DEALER connected to one endpoint, with many requests in flight on it, matched to their
 * answers by id. A DEALER never waits for a reply before sending the next request (no stuck
 * REQ socket), so a lost reply costs one request its deadline, never the socket.
 *
 * Pipes survive disconnects (`immediate` off), so a reply read just before the peer went away
 * is not discarded with its pipe. Reachability comes from the socket monitor instead: a
 * request sent while the connection is down fails UNAVAILABLE unless it comes up within
 * `sendTimeoutMs`, and requests in flight when it drops fail UNAVAILABLE (after a moment, for
 * replies that arrived just before the drop to be read).
 */
import type { Logger } from "pino";
import { Dealer } from "zeromq";
import { deadlines, type Expirable } from "../../call/deadlines.js";
import { Code, FanError } from "../../errors.js";
import type { Envelope, SendOptions } from "../transport.js";
import type { ZmqClientOptions } from "./client.js";
import { onAbort } from "../abort.js";
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
    this.fail(new FanError(Code.DEADLINE_EXCEEDED, `${this.what}: no answer within the deadline`));
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
  private readonly connectWaiters = new Set<() => void>();
  private up = false;
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
    this.dealer.events.on("connect", () => this.connected());
    this.dealer.events.on("disconnect", () => this.lost());
    this.dealer.connect(endpoint);
    this.armIdleClose();
    void this.receive();
  }

  private connected(): void {
    this.up = true;
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    for (const w of this.connectWaiters) w();
    this.connectWaiters.clear();
  }

  private lost(): void {
    this.up = false;
    this.armIdleClose();
    const ids = [...this.pending.keys()];
    if (ids.length === 0) return;
    setTimeout(() => {
      const err = new FanError(Code.UNAVAILABLE, `zmq ${this.endpoint}: connection lost`);
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
    return new Promise((resolve, reject) => {
      const req = new Request(this, env.id, what, resolve, reject);
      this.pending.set(env.id, req);
      if (Number.isFinite(opts.deadline)) deadlines.add(req, opts.deadline);
      req.stopAbort = onAbort(opts.signal, () => {
        if (op === Op.CALL)
          void this.writer.send([head(Op.CANCEL, env.id), ""], Date.now() + 1000).catch(() => undefined);
        req.fail(new FanError(Code.CANCELLED, `${what}: cancelled`));
      });
      if (!this.up)
        req.connectTimer = this.connectTimer(() =>
          req.fail(new FanError(Code.UNAVAILABLE, `zmq ${this.endpoint}: not connected`)),
        );
      this.writer
        .send([head(op, env.id), body], opts.deadline)
        .catch((e: unknown) => req.fail(FanError.from(e, Code.UNAVAILABLE)));
    });
  }

  /** Forgets a settled request. */
  forget(id: string): void {
    this.pending.delete(id);
  }

  /** Fires `onTimeout` unless the connection comes up within `sendTimeoutMs`. */
  private connectTimer(onTimeout: () => void): NodeJS.Timeout {
    let timer: NodeJS.Timeout | undefined;
    const cancel = (): void => clearTimeout(timer);
    this.connectWaiters.add(cancel);
    timer = setTimeout(() => {
      this.connectWaiters.delete(cancel);
      onTimeout();
    }, this.opts.sendTimeoutMs ?? 2000);
    return timer;
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
