/**
 * The abort scope of one send: an abort source that fires when the caller's signal aborts or
 * the deadline passes, and the FanError that says which (CANCELLED or DEADLINE_EXCEEDED).
 * The source is an EventEmitter (undici accepts one as `signal`): creating an AbortController
 * per call costs several times more, and this is on every call's path. The scope is one
 * object (its own deadline-wheel entry and abort callback), not a set of closures per call.
 */
import { EventEmitter } from "node:events";
import { deadlines, type Expirable } from "../../deadlines.js";
import { Code, FanError } from "../../errors.js";
import type { SendOptions } from "../../transport.js";
import { onAbort } from "./abort.js";

/** A send's combined abort source; call `dispose()` when the send is over. */
export class SendScope extends EventEmitter implements Expirable {
  bucket = 0;
  prev: Expirable | undefined = undefined;
  next: Expirable | undefined = undefined;
  private reason: FanError | undefined = undefined;
  private stopListening: (() => void) | undefined = undefined;

  constructor(
    opts: SendOptions,
    private readonly what: string,
  ) {
    super();
    this.stopListening = onAbort(opts.signal, this.cancel);
    if (Number.isFinite(opts.deadline)) deadlines.add(this, opts.deadline);
  }

  /** The emitter to give undici as `signal` (emits "abort" once). */
  get signal(): EventEmitter {
    return this;
  }

  /** The deadline passed. */
  expire(): void {
    this.abort(new FanError(Code.DEADLINE_EXCEEDED, `${this.what}: no answer within the deadline`));
  }

  private readonly cancel = (): void => this.abort(new FanError(Code.CANCELLED, `${this.what}: cancelled`));

  private abort(why: FanError): void {
    if (this.reason !== undefined) return;
    this.reason = why;
    this.emit("abort");
  }

  /** Why the scope aborted, or undefined while it has not. */
  failure(): FanError | undefined {
    return this.reason;
  }

  dispose(): void {
    deadlines.remove(this);
    this.stopListening?.();
    this.stopListening = undefined;
  }
}

/** Opens a scope for `opts`; throws at once when already cancelled or past the deadline. */
export function sendScope(opts: SendOptions, what: string): SendScope {
  if (opts.signal.aborted) throw new FanError(Code.CANCELLED, `${what}: cancelled`);
  if (opts.deadline - Date.now() <= 0) throw new FanError(Code.DEADLINE_EXCEEDED, `${what}: deadline passed before sending`);
  return new SendScope(opts, what);
}
