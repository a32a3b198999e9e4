/**
 * The abort scope of one send: a signal that fires when the caller's signal aborts or the
 * deadline passes, and the FanError that says which (CANCELLED or DEADLINE_EXCEEDED).
 */
import { Code, FanError } from "../../errors.js";
import type { SendOptions } from "../../transport.js";

/** A send's combined signal; call `dispose()` when the send is over. */
export interface SendScope {
  readonly signal: AbortSignal;
  /** Why the scope aborted, or undefined while it has not. */
  failure(): FanError | undefined;
  dispose(): void;
}

/** Opens a scope for `opts`; throws at once when already cancelled or past the deadline. */
export function sendScope(opts: SendOptions, what: string): SendScope {
  if (opts.signal.aborted) throw new FanError(Code.CANCELLED, `${what}: cancelled`);
  const remaining = opts.deadline - Date.now();
  if (remaining <= 0) throw new FanError(Code.DEADLINE_EXCEEDED, `${what}: deadline passed before sending`);
  const ac = new AbortController();
  let reason: FanError | undefined;
  const onAbort = (): void => {
    reason ??= new FanError(Code.CANCELLED, `${what}: cancelled`);
    ac.abort(reason);
  };
  opts.signal.addEventListener("abort", onAbort, { once: true });
  const timer =
    Number.isFinite(remaining) && remaining < 2 ** 31 - 1
      ? setTimeout(() => {
          reason ??= new FanError(Code.DEADLINE_EXCEEDED, `${what}: no answer within the deadline`);
          ac.abort(reason);
        }, remaining)
      : undefined;
  return {
    signal: ac.signal,
    failure: () => reason,
    dispose: () => {
      if (timer !== undefined) clearTimeout(timer);
      opts.signal.removeEventListener("abort", onAbort);
    },
  };
}
