/**
 * The zmq transport's client side: one DEALER per endpoint, many calls in flight on it,
 * matched to replies by id. A DEALER never waits for a reply before sending the next request,
 * so a lost reply costs one call its deadline, never the socket.
 *
 * Every send is bounded: a call waits for its reply until its deadline (DEADLINE_EXCEEDED), a
 * send with no connected peer gives up after `sendTimeoutMs` (UNAVAILABLE), a lost connection
 * fails what is in flight on it (UNAVAILABLE), an abort sends a cancel to the server and
 * rejects at once (CANCELLED). Pushes wait for an ack and are sent again after a nack.
 */
import type { Logger } from "pino";
import { Dealer } from "zeromq";
import { Code, FanError } from "../../errors.js";
import type { Envelope, SendOptions } from "../../transport.js";
import { decodeEnvelope, encodeEnvelope, parseJson } from "../../wire.js";
import { Op, text } from "./frames.js";
import { Writer } from "./writer.js";

/** Client-side options of the zmq transport. */
export interface ZmqClientOptions {
  /** How long a send waits for a connected peer before UNAVAILABLE; default 2 s. */
  readonly sendTimeoutMs?: number;
  /** Attempts of a push the server did not acknowledge; default 5. */
  readonly pushAttempts?: number;
  /** First delay between push attempts (doubling, at most 1 s); default 50 ms. */
  readonly pushBackoffMs?: number;
}

/** A request waiting for its answer. */
interface Pending {
  readonly id: string;
  readonly settle: (frames: { op: string; body: Buffer }) => void;
  readonly fail: (err: FanError) => void;
}

/** One DEALER connected to one endpoint. */
class Connection {
  readonly dealer: Dealer;
  readonly writer: Writer;
  readonly pending = new Map<string, Pending>();
  private closed = false;

  constructor(
    readonly endpoint: string,
    opts: ZmqClientOptions,
    private readonly log: Logger,
    private readonly maxBytes: number,
  ) {
    this.dealer = new Dealer({ linger: 0, immediate: true, sendTimeout: opts.sendTimeoutMs ?? 2000, sendHighWaterMark: 0, receiveHighWaterMark: 0, maxMessageSize: maxBytes * 2 + 64 * 1024 });
    this.writer = new Writer(this.dealer, `zmq ${endpoint}`);
    this.dealer.events.on("disconnect", () => this.failAll(new FanError(Code.UNAVAILABLE, `zmq ${endpoint}: connection lost`)));
    this.dealer.connect(endpoint);
    void this.receive();
  }

  private async receive(): Promise<void> {
    try {
      for await (const [opFrame, idFrame, body] of this.dealer) {
        const pending = this.pending.get(text(idFrame));
        if (pending === undefined) continue;
        this.pending.delete(pending.id);
        pending.settle({ op: text(opFrame), body: body ?? Buffer.alloc(0) });
      }
    } catch (e) {
      if (!this.closed) this.log.error({ err: e, endpoint: this.endpoint }, "zmq: client receive loop failed");
    }
  }

  /** Sends one request and waits for its answer frames. */
  request(op: string, env: Envelope, opts: SendOptions): Promise<{ op: string; body: Buffer }> {
    const what = `${env.service}/${env.method}`;
    if (opts.signal.aborted) return Promise.reject(new FanError(Code.CANCELLED, `${what}: cancelled`));
    const remaining = opts.deadline - Date.now();
    if (remaining <= 0) return Promise.reject(new FanError(Code.DEADLINE_EXCEEDED, `${what}: deadline passed before sending`));
    const body = encodeEnvelope(env.headers.deadline === undefined && Number.isFinite(opts.deadline) ? { ...env, headers: { ...env.headers, deadline: opts.deadline } } : env);
    if (body.length > this.maxBytes) return Promise.reject(new FanError(Code.RESOURCE_EXHAUSTED, `request of ${body.length} bytes exceeds the limit of ${this.maxBytes}`));
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        opts.signal.removeEventListener("abort", onAbort);
        this.pending.delete(env.id);
      };
      const onAbort = (): void => {
        done();
        if (op === Op.CALL) void this.writer.send([Op.CANCEL, env.id, ""], Date.now() + 1000).catch(() => undefined);
        reject(new FanError(Code.CANCELLED, `${what}: cancelled`));
      };
      if (Number.isFinite(remaining) && remaining < 2 ** 31 - 1) {
        timer = setTimeout(() => {
          done();
          reject(new FanError(Code.DEADLINE_EXCEEDED, `${what}: no answer within the deadline`));
        }, remaining);
      }
      opts.signal.addEventListener("abort", onAbort, { once: true });
      this.pending.set(env.id, { id: env.id, settle: (a) => (done(), resolve(a)), fail: (e) => (done(), reject(e)) });
      this.writer.send([op, env.id, body], opts.deadline).catch((e: unknown) => this.pending.get(env.id)?.fail(FanError.from(e, Code.UNAVAILABLE)));
    });
  }

  private failAll(err: FanError): void {
    for (const p of [...this.pending.values()]) p.fail(err);
  }

  close(): void {
    this.closed = true;
    const err = new FanError(Code.UNAVAILABLE, `zmq ${this.endpoint}: transport closed`);
    this.writer.fail(err);
    this.failAll(err);
    this.dealer.close();
  }
}

/** DEALERs per endpoint and the call/push protocol over them. */
export class ZmqClient {
  private readonly connections = new Map<string, Connection>();
  private closed = false;

  constructor(
    private readonly opts: ZmqClientOptions,
    private readonly log: Logger,
    private readonly maxBytes: number,
  ) {}

  private connection(endpoint: string): Connection {
    if (this.closed) throw new FanError(Code.UNAVAILABLE, "zmq transport is closed");
    let c = this.connections.get(endpoint);
    if (c === undefined) {
      if (!endpoint.startsWith("tcp://") && !endpoint.startsWith("ipc://") && !endpoint.startsWith("inproc://")) {
        throw new FanError(Code.INVALID_ARGUMENT, `not a zmq endpoint: ${JSON.stringify(endpoint)}`);
      }
      c = new Connection(endpoint, this.opts, this.log, this.maxBytes);
      this.connections.set(endpoint, c);
    }
    return c;
  }

  /** Sends a call; resolves with the reply or error envelope. */
  async call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope> {
    const answer = await this.connection(endpoint).request(Op.CALL, env, opts);
    try {
      return decodeEnvelope(answer.body, { maxBytes: this.maxBytes });
    } catch (e) {
      const err = FanError.from(e);
      throw new FanError(err.code === Code.RESOURCE_EXHAUSTED ? err.code : Code.INTERNAL, `malformed reply from ${endpoint}: ${err.message}`, { cause: e });
    }
  }

  /** Sends a push; resolves on ack, sends again after a nack (attempt + 1) until the attempts run out. */
  async push(endpoint: string, env: Envelope, opts: SendOptions): Promise<void> {
    const attempts = Math.max(1, this.opts.pushAttempts ?? 5);
    let delay = this.opts.pushBackoffMs ?? 50;
    let attempt = typeof env.headers.attempt === "number" ? env.headers.attempt : 1;
    for (let i = 1; ; i++) {
      const sent: Envelope = { ...env, headers: { ...env.headers, attempt } };
      const answer = await this.connection(endpoint).request(Op.PUSH, sent, opts);
      if (answer.op === Op.ACK) return;
      const err = this.nackError(answer.body);
      if (err.code !== Code.UNAVAILABLE || i >= attempts || Date.now() + delay >= opts.deadline) throw err;
      this.log.debug({ id: env.id, attempt, err: err.message }, "zmq: push not acknowledged, sending again");
      await sleep(delay, opts.signal);
      delay = Math.min(delay * 2, 1000);
      attempt++;
    }
  }

  private nackError(body: Buffer): FanError {
    try {
      const w = parseJson(body, { maxBytes: 64 * 1024 }) as { code?: unknown; message?: unknown };
      const code = typeof w.code === "string" && w.code in Code ? (w.code as Code) : Code.UNKNOWN;
      return new FanError(code, typeof w.message === "string" ? w.message : "push refused");
    } catch {
      return new FanError(Code.UNKNOWN, "push refused with a malformed answer");
    }
  }

  /** Closes every DEALER (linger 0) and fails what is pending. */
  close(): void {
    this.closed = true;
    for (const c of this.connections.values()) c.close();
    this.connections.clear();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new FanError(Code.CANCELLED, "cancelled"));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
}
