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
import { type AbortTarget, unwatchAbort, watchAbort } from "../abort.js";

/** An answer from the server, before it becomes an envelope. */
export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

const EMPTY = Buffer.alloc(0);

/** A send's handler and abort scope; `answer` settles once. */
export class Exchange implements Expirable, AbortTarget, Dispatcher.DispatchHandler {
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
  /** The caller's signal, watched until the exchange settles. */
  private readonly signal: AbortSignal;
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
    this.signal = opts.signal;
    watchAbort(opts.signal, this);
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

  /** The caller's signal aborted. */
  aborted(): void {
    this.abort(new FanError(Code.CANCELLED, `${this.what}: cancelled`));
  }

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
    unwatchAbort(this.signal, this);
  }

  // --- undici's handler interface ---

  onConnect(abort: (err?: Error) => void): void {
    if (this.reason !== undefined) abort(this.reason);
    else this.abortRequest = abort;
  }

  onHeaders(status: number, rawHeaders: Buffer[], _resume: () => void, _text: string): boolean {
    if (status < 200) return true;
    this.status = status;
    this.headers = fanHeaders(rawHeaders);
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

/**
 * The answer's headers the client reads: `fan-*`, `traceparent`, `tracestate` (a repeated one
 * as an array, as undici's `parseHeaders` gives it). A fan server's `date`, `connection`,
 * `keep-alive` and `content-*` are skipped by their first byte, never decoded: undici's
 * `parseHeaders` of all of them was the client's costliest function on Node 24 (2.4% of samples).
 */
function fanHeaders(raw: Buffer[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const nameBytes = raw[i] as Buffer;
    const first = (nameBytes[0] ?? 0) | 0x20; // ASCII lowercase
    if (first !== 0x66 && first !== 0x74) continue; // neither "f…" nor "t…"
    const name = util.headerNameToString(nameBytes);
    if (!name.startsWith("fan-") && name !== "traceparent" && name !== "tracestate") continue;
    const value = (raw[i + 1] as Buffer).toString("latin1");
    const had = out[name];
    out[name] = had === undefined ? value : typeof had === "string" ? [had, value] : [...had, value];
  }
  return out;
}

/** Opens an exchange for `opts`; throws at once when already cancelled or past the deadline. */
export function sendScope(opts: SendOptions, what: string): Exchange {
  if (opts.signal.aborted) throw new FanError(Code.CANCELLED, `${what}: cancelled`);
  if (opts.deadline - Date.now() <= 0)
    throw new FanError(Code.DEADLINE_EXCEEDED, `${what}: deadline passed before sending`);
  return new Exchange(opts, what);
}
