/**
 * One request/response exchange of the client, driven through undici's `dispatch` handler
 * interface rather than `request()`: the response body arrives as chunks collected here, with
 * no Readable stream, body mixin or AsyncResource per call. The exchange is also the call's
 * abort scope: it fails when the caller's signal aborts (CANCELLED) or the deadline passes
 * (DEADLINE_EXCEEDED), at once, even while the request still waits for a connection, and
 * aborts the request in undici. One object per call: its own deadline-wheel entry, handler
 * and promise, not a set of closures.
 */
import type { Dispatcher } from "undici";
import { util } from "undici";
import { deadlines, type Expirable } from "../../call/deadlines.js";
import { Code, FanError } from "../../errors.js";
import type { SendOptions } from "../transport.js";
import { onAbort } from "../abort.js";

/** An answer from the server, before it becomes an envelope. */
export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

const EMPTY = Buffer.alloc(0);

/** A send's handler and abort scope; `answer` settles once. */
export class Exchange implements Expirable, Dispatcher.DispatchHandler {
  bucket = 0;
  prev: Expirable | undefined = undefined;
  next: Expirable | undefined = undefined;
  /** Resolves with the whole answer; rejects with the undici error or the abort reason. */
  readonly answer: Promise<Answer>;
  private resolve!: (a: Answer) => void;
  private reject!: (e: unknown) => void;
  private settled = false;
  private reason: FanError | undefined = undefined;
  private abortRequest: ((err?: Error) => void) | undefined = undefined;
  private stopListening: (() => void) | undefined;
  private status = 0;
  private headers: Record<string, string | string[] | undefined> = {};
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(
    opts: SendOptions,
    private readonly what: string,
  ) {
    this.answer = new Promise<Answer>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.stopListening = onAbort(opts.signal, this.cancel);
    if (Number.isFinite(opts.deadline)) deadlines.add(this, opts.deadline);
  }

  /** Why the exchange aborted, or undefined while it has not. */
  failure(): FanError | undefined {
    return this.reason;
  }

  /** The deadline passed. */
  expire(): void {
    this.abort(new FanError(Code.DEADLINE_EXCEEDED, `${this.what}: no answer within the deadline`));
  }

  private readonly cancel = (): void => this.abort(new FanError(Code.CANCELLED, `${this.what}: cancelled`));

  private abort(why: FanError): void {
    if (this.settled || this.reason !== undefined) return;
    this.reason = why;
    this.fail(why);
    this.abortRequest?.(why);
  }

  private fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.dispose();
    this.reject(err);
  }

  private dispose(): void {
    deadlines.remove(this);
    this.stopListening?.();
    this.stopListening = undefined;
  }

  // --- undici's handler interface ---

  onConnect(abort: (err?: Error) => void): void {
    if (this.reason !== undefined) abort(this.reason);
    else this.abortRequest = abort;
  }

  onHeaders(status: number, rawHeaders: Buffer[], _resume: () => void, _text: string): boolean {
    if (status < 200) return true;
    this.status = status;
    this.headers = util.parseHeaders(rawHeaders);
    return true;
  }

  onData(chunk: Buffer): boolean {
    // undici's maxResponseSize bounds the total (the request fails UND_ERR_RES_EXCEEDED_MAX_SIZE).
    this.chunks.push(chunk);
    this.size += chunk.length;
    return true;
  }

  onComplete(_trailers: string[] | null): void {
    if (this.settled) return;
    this.settled = true;
    this.dispose();
    const { chunks } = this;
    const body =
      chunks.length === 0 ? EMPTY : chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, this.size);
    this.resolve({ status: this.status, headers: this.headers, body });
  }

  onError(err: Error): void {
    this.fail(err);
  }
}

/** Opens an exchange for `opts`; throws at once when already cancelled or past the deadline. */
export function sendScope(opts: SendOptions, what: string): Exchange {
  if (opts.signal.aborted) throw new FanError(Code.CANCELLED, `${what}: cancelled`);
  if (opts.deadline - Date.now() <= 0)
    throw new FanError(Code.DEADLINE_EXCEEDED, `${what}: deadline passed before sending`);
  return new Exchange(opts, what);
}
