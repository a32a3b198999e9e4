/**
 * Waiting for a state change (a connection or channel coming up) bounded by a deadline and an
 * abort signal, without a timer per waiter when nothing is waiting.
 */
import { Code, FanError } from "../../errors.js";
import { onAbort } from "../abort.js";
import { atDeadline } from "../deadline-timer.js";

/** A set of callers waiting for the next `wake()`. */
export class Waiters {
  readonly #waiting = new Set<(err?: FanError) => void>();

  /**
   * Resolves at the next `wake()`; rejects at the deadline with `late()` (UNAVAILABLE when the
   * broker is known to be down, DEADLINE_EXCEEDED while it is merely slow to answer), or with
   * CANCELLED when the signal aborts.
   */
  wait(deadline: number, signal: AbortSignal | undefined, late: () => FanError): Promise<void> {
    if (signal?.aborted === true) return Promise.reject(new FanError(Code.CANCELLED, "cancelled"));
    if (deadline <= Date.now()) return Promise.reject(late());
    return new Promise<void>((resolve, reject) => {
      const timer = atDeadline(deadline, () => done(late()));
      const done = (err?: FanError): void => {
        this.#waiting.delete(done);
        timer?.clear();
        stopListening();
        if (err === undefined) resolve();
        else reject(err);
      };
      const stopListening =
        signal === undefined ? () => undefined : onAbort(signal, () => done(new FanError(Code.CANCELLED, "cancelled")));
      this.#waiting.add(done);
    });
  }

  /** Wakes every waiter (they re-check their condition). */
  wake(): void {
    for (const w of [...this.#waiting]) w();
  }

  /** Fails every waiter with `err`. */
  fail(err: FanError): void {
    for (const w of [...this.#waiting]) w(err);
  }
}

/** Resolves when `p` settles or after `ms`, whichever is first; never rejects. */
export function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    p.then(
      () => {
        clearTimeout(t);
        resolve();
      },
      () => {
        clearTimeout(t);
        resolve();
      },
    );
  });
}
