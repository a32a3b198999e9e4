/**
 * The abort scope of one send: an abort source that fires when the caller's signal aborts or
 * the deadline passes, and the FanError that says which (CANCELLED or DEADLINE_EXCEEDED).
 * The source is an EventEmitter (undici accepts one as `signal`): creating an AbortController
 * per call costs several times more, and this is on every call's path.
 */
import { EventEmitter } from "node:events";
import { deadlines, type Expirable } from "../../deadlines.js";
import { Code, FanError } from "../../errors.js";
import type { SendOptions } from "../../transport.js";
import { onAbort } from "./abort.js";

/** A send's combined abort source; call `dispose()` when the send is over. */
export interface SendScope {
  /** Emits "abort" once; give it to undici as `signal`. */
  readonly signal: EventEmitter;
  /** Why the scope aborted, or undefined while it has not. */
  failure(): FanError | undefined;
  dispose(): void;
}

/** Opens a scope for `opts`; throws at once when already cancelled or past the deadline. */
export function sendScope(opts: SendOptions, what: string): SendScope {
  if (opts.signal.aborted) throw new FanError(Code.CANCELLED, `${what}: cancelled`);
  const remaining = opts.deadline - Date.now();
  if (remaining <= 0) throw new FanError(Code.DEADLINE_EXCEEDED, `${what}: deadline passed before sending`);
  const signal = new EventEmitter();
  let reason: FanError | undefined;
  const abort = (why: FanError): void => {
    if (reason !== undefined) return;
    reason = why;
    signal.emit("abort");
  };
  const stopListening = onAbort(opts.signal, () => abort(new FanError(Code.CANCELLED, `${what}: cancelled`)));
  const timer: Expirable = {
    bucket: 0,
    prev: undefined,
    next: undefined,
    expire: () => abort(new FanError(Code.DEADLINE_EXCEEDED, `${what}: no answer within the deadline`)),
  };
  if (Number.isFinite(opts.deadline)) deadlines.add(timer, opts.deadline);
  return {
    signal,
    failure: () => reason,
    dispose: () => {
      deadlines.remove(timer);
      stopListening();
    },
  };
}
