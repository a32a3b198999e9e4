/**
 * The tcp transport's client side: one persistent connection per endpoint, many requests in
 * flight on it, matched to their answers by a correlation number. No timer per request:
 * deadlines go on the shared deadline wheel, aborts on the shared abort registry.
 *
 * Every send is bounded:
 * - a request written while the first connection is still being made waits for it (in the
 *   socket's buffer) at most `sendTimeoutMs`; when the connection fails, nothing was
 *   delivered: the requests fail UNAVAILABLE marked not delivered (`not-delivered.ts`), so
 *   the client may send them to another instance;
 * - once a connection dropped or was refused, the endpoint is known down: requests fail the
 *   same way at once and `reachable` is false, while the connection is retried in the
 *   background (50 ms, doubling to 1 s) until it is back, or closed after `idleCloseMs`;
 * - requests in flight when a connection drops fail UNAVAILABLE (they may have arrived);
 * - a request waits for its answer until its deadline (DEADLINE_EXCEEDED); an abort rejects
 *   CANCELLED at once and sends a cancel so the handler's signal fires.
 * Pushes wait for an ack, and are sent again after a nack (attempt + 1).
 */
import { connect, type Socket } from "node:net";
import type { Logger } from "pino";
import { deadlines, type Expirable } from "../../call/deadlines.js";
import { lostWith } from "../../call/lost.js";
import { utf8SizeOver } from "../../codec/wire.js";
import { Code, FanError } from "../../errors.js";
import { type AbortTarget, unwatchAbort, watchAbort } from "../abort.js";
import { decodeReply, malformedReply, nackError, pushUntilAcked } from "../acked-push.js";
import { notDelivered } from "../not-delivered.js";
import { decodeCompact } from "../replies.js";
import type { Envelope, SendOptions } from "../transport.js";
import { envelopeText, FrameReader, type FrameSink, FrameWriter, Op, PREAMBLE, parseEndpoint } from "./frames.js";

/** Client-side options of the tcp transport. */
export interface TcpClientOptions {
  /** How long a request waits for a new connection before UNAVAILABLE; default 2 s. */
  readonly sendTimeoutMs?: number;
  /** A connection that stays down this long is closed (and reopened on next use); default 30 s. */
  readonly idleCloseMs?: number;
  /** Attempts of a push the server did not acknowledge; default 5. */
  readonly pushAttempts?: number;
  /** First delay between push attempts (doubling, at most 1 s); default 50 ms. */
  readonly pushBackoffMs?: number;
}

/** The answer to one request: its operation and body (a view, decode before the next turn). */
interface Answer {
  readonly op: number;
  readonly body: Buffer;
}

const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 1000;

/** One request in flight: settled once, by its answer, its deadline, an abort or a failure. */
class Request implements Expirable, AbortTarget {
  bucket = 0;
  prev: Expirable | undefined = undefined;
  next: Expirable | undefined = undefined;
  resolve: (a: Answer) => void = noop;
  reject: (e: FanError) => void = noop;
  private done = false;

  constructor(
    private readonly conn: Connection,
    readonly corr: number,
    readonly op: number,
    readonly what: string,
    private readonly signal: AbortSignal,
    private readonly timed: boolean,
  ) {}

  expire(): void {
    const waiting = this.conn.stalled();
    this.fail(
      new FanError(Code.DEADLINE_EXCEEDED, `${this.what}: ${waiting?.message ?? "no answer within the deadline"}`),
    );
  }

  aborted(): void {
    if (this.done) return;
    this.conn.cancel(this);
    this.fail(new FanError(Code.CANCELLED, `${this.what}: cancelled`));
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
    if (this.timed) deadlines.remove(this);
    unwatchAbort(this.signal, this);
    this.conn.forget(this.corr);
    return true;
  }
}

function noop(): void {}

/** One endpoint's connection and its requests in flight. */
class Connection implements FrameSink {
  private socket: Socket | undefined;
  private out: FrameWriter | undefined;
  private readonly pending = new Map<number, Request>();
  private seq = 0;
  /** Connected now. */
  private up = false;
  /** Known down: dropped or refused, not reconnected since. */
  private down = false;
  /** Ever connected on the current socket. */
  private connectedOnce = false;
  private closed = false;
  private retryMs = RETRY_FIRST_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private downSince = 0;
  private readonly host: string;
  private readonly port: number;

  constructor(
    readonly endpoint: string,
    private readonly opts: TcpClientOptions,
    private readonly log: Logger,
    private readonly maxBytes: number,
    private readonly onIdleClose: () => void,
  ) {
    const { host, port } = parseEndpoint(endpoint);
    this.host = host;
    this.port = port;
    this.open();
  }

  get reachable(): boolean {
    return !this.down;
  }

  /** While the connection is being made: the error of a request waiting in its buffer at its deadline. */
  stalled(): FanError | undefined {
    if (this.connectedOnce || this.down || this.closed) return undefined;
    return new FanError(Code.DEADLINE_EXCEEDED, `tcp ${this.endpoint} not connected before the deadline`);
  }

  private open(): void {
    const socket = connect({ host: this.host, port: this.port, noDelay: true });
    socket.setKeepAlive(true, 10_000);
    this.socket = socket;
    this.out = new FrameWriter(socket);
    this.connectedOnce = false;
    socket.write(PREAMBLE);
    const reader = new FrameReader(this.maxBytes, this, false);
    this.connectTimer = setTimeout(() => {
      if (this.socket === socket && !this.connectedOnce) socket.destroy(new Error("not connected in time"));
    }, this.opts.sendTimeoutMs ?? 2000);
    this.connectTimer.unref();
    socket.on("connect", () => {
      if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
      this.connectedOnce = true;
      this.up = true;
      this.down = false;
      this.retryMs = RETRY_FIRST_MS;
    });
    socket.on("data", (chunk: Buffer) => reader.push(chunk));
    let cause: Error | undefined;
    socket.on("error", (e) => {
      cause = e;
    });
    socket.on("close", () => {
      if (this.socket !== socket) return;
      this.lost(cause);
    });
  }

  /** The socket closed: fail what was on it, mark the endpoint down, retry in the background. */
  private lost(cause: Error | undefined): void {
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    const wasUp = this.connectedOnce;
    this.up = false;
    this.socket = undefined;
    this.out = undefined;
    if (!this.down) this.downSince = Date.now();
    this.down = true;
    const why = cause?.message ?? (wasUp ? "closed by the server" : "closed");
    // Every call on the connection fails with it: one event for the retry budget (call/lost.ts).
    const err = wasUp
      ? lostWith(
          new FanError(Code.UNAVAILABLE, `tcp ${this.endpoint}: connection lost (${why})`),
          `tcp ${this.endpoint}`,
        )
      : notDelivered(new FanError(Code.UNAVAILABLE, `tcp ${this.endpoint}: not connected (${why})`));
    if (this.pending.size > 0) for (const r of [...this.pending.values()]) r.fail(err);
    if (this.closed) return;
    if (Date.now() - this.downSince >= (this.opts.idleCloseMs ?? 30_000)) {
      this.onIdleClose();
      this.close();
      return;
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closed) this.open();
    }, this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  frame(op: number, corr: number, body: Buffer): void {
    // The server can answer calls compactly (frames.ts): ask it to, on this connection.
    if (op === Op.HELLO && corr === 0) this.out?.queue(Op.COMPACT, 0, "");
    else this.pending.get(corr)?.settle({ op, body });
  }

  oversize(op: number, corr: number, bytes: number): void {
    this.log.warn({ endpoint: this.endpoint, op, bytes }, "tcp: skipped an answer over the size limit");
    this.pending
      .get(corr)
      ?.fail(new FanError(Code.RESOURCE_EXHAUSTED, `answer of ${bytes} bytes exceeds the limit of ${this.maxBytes}`));
  }

  garbage(why: string): void {
    this.log.warn({ endpoint: this.endpoint, why }, "tcp: dropped a connection whose answers are not frames");
    this.socket?.destroy(new Error(why));
  }

  /** Sends one request and waits for its answer. */
  request(op: number, env: Envelope, opts: SendOptions): Promise<Answer> {
    const what = `${env.service}/${env.method}`;
    if (opts.signal.aborted) return Promise.reject(new FanError(Code.CANCELLED, `${what}: cancelled`));
    const timed = Number.isFinite(opts.deadline);
    if (timed && opts.deadline <= Date.now())
      return Promise.reject(new FanError(Code.DEADLINE_EXCEEDED, `${what}: deadline passed before sending`));
    const body = envelopeText(
      env,
      env.headers.deadline === undefined && timed ? { ...env.headers, deadline: opts.deadline } : env.headers,
    );
    const size = utf8SizeOver(body, this.maxBytes);
    if (size >= 0)
      return Promise.reject(
        new FanError(Code.RESOURCE_EXHAUSTED, `request of ${size} bytes exceeds the limit of ${this.maxBytes}`),
      );
    if (this.closed) return Promise.reject(new FanError(Code.UNAVAILABLE, `tcp ${this.endpoint}: transport closed`));
    const out = this.out;
    if (this.down || out === undefined)
      return Promise.reject(notDelivered(new FanError(Code.UNAVAILABLE, `tcp ${this.endpoint}: connection is down`)));
    // Correlation 0 is the server's greeting's (frames.ts): skipped when the counter wraps.
    this.seq = (this.seq + 1) >>> 0 || 1;
    const corr = this.seq;
    const req = new Request(this, corr, op, what, opts.signal, timed);
    const promise = new Promise<Answer>((resolve, reject) => {
      req.resolve = resolve;
      req.reject = reject;
    });
    this.pending.set(corr, req);
    if (timed) deadlines.add(req, opts.deadline);
    watchAbort(opts.signal, req);
    out.queue(op, corr, body);
    return promise;
  }

  /** Tells the server a call was cancelled (its handler's signal fires). */
  cancel(req: Request): void {
    if (req.op === Op.CALL && this.up) this.out?.queue(Op.CANCEL, req.corr, "");
  }

  forget(corr: number): void {
    this.pending.delete(corr);
  }

  /** Closes the connection and fails everything pending. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    const err = new FanError(Code.UNAVAILABLE, `tcp ${this.endpoint}: transport closed`);
    for (const p of [...this.pending.values()]) p.fail(err);
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
  }
}

/** Connections per endpoint and the call/push protocol over them. */
export class TcpClient {
  private readonly connections = new Map<string, Connection>();
  private closed = false;

  constructor(
    private readonly opts: TcpClientOptions,
    private readonly log: Logger,
    private readonly maxBytes: number,
  ) {}

  private connection(endpoint: string): Connection {
    let c = this.connections.get(endpoint);
    if (c !== undefined) return c;
    if (this.closed) throw new FanError(Code.UNAVAILABLE, "tcp transport is closed");
    try {
      const conn: Connection = new Connection(endpoint, this.opts, this.log, this.maxBytes, () => {
        if (this.connections.get(endpoint) === conn) this.connections.delete(endpoint);
      });
      c = conn;
    } catch (e) {
      throw new FanError(Code.INVALID_ARGUMENT, (e as Error).message);
    }
    this.connections.set(endpoint, c);
    return c;
  }

  /** False while the connection to `endpoint` is known down (dropped or refused, not yet back). */
  reachable(endpoint: string): boolean {
    return this.connections.get(endpoint)?.reachable ?? true;
  }

  /** While the first connection to `endpoint` is being made: the error of a request waiting for it at its deadline. */
  stalled(endpoint: string): FanError | undefined {
    return this.connections.get(endpoint)?.stalled();
  }

  /** Sends a call; resolves with the reply or error envelope. */
  async call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope> {
    const answer = await this.connection(endpoint).request(Op.CALL, env, opts);
    if (answer.op === Op.REPLY) return decodeReply(answer.body, endpoint, this.maxBytes);
    if (answer.op !== Op.OK && answer.op !== Op.FAIL)
      throw new FanError(Code.INTERNAL, `unexpected answer ${answer.op} from ${endpoint}`);
    const reply = decodeCompact(answer.op === Op.FAIL, answer.body, this.maxBytes, env.service);
    if (FanError.is(reply)) throw malformedReply(reply, endpoint);
    return reply;
  }

  /** Sends a push; resolves on ack, sends again after a nack (attempt + 1) until the attempts run out. */
  push(endpoint: string, env: Envelope, opts: SendOptions): Promise<void> {
    return pushUntilAcked(
      env,
      opts,
      this.opts,
      async (sent) => {
        const answer = await this.connection(endpoint).request(Op.PUSH, sent, opts);
        if (answer.op === Op.ACK) return undefined;
        return answer.op === Op.NACK
          ? nackError(answer.body)
          : new FanError(Code.INTERNAL, "unexpected answer to a push");
      },
      this.log,
      "tcp",
    );
  }

  /** Closes every connection and fails what is pending. */
  close(): void {
    this.closed = true;
    for (const c of this.connections.values()) c.close();
    this.connections.clear();
  }
}
