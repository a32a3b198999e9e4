/**
 * A timer for a deadline given in epoch ms (`Date.now()`), shared by the network transports'
 * waits for their connection.
 *
 * Node's timers run on the monotonic clock in whole milliseconds, and `Date.now()` truncates the
 * wall clock: a timer set for `deadline - Date.now()` ms can fire up to a millisecond before
 * `Date.now()` reaches `deadline`. An error given then ("unreachable until the deadline") counts
 * as one before the deadline (outcome.ts `sendFailure` keeps it UNAVAILABLE instead of
 * DEADLINE_EXCEEDED), so the timer sets itself again for what is left.
 */

/** Longest delay `setTimeout` takes without overflowing to 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;

/** Milliseconds until `deadline`, clamped to what `setTimeout` accepts (`undefined` = never). */
export function msUntil(deadline: number): number | undefined {
  if (!Number.isFinite(deadline)) return undefined;
  return Math.min(MAX_TIMER_MS, Math.max(0, deadline - Date.now()));
}

/** A pending deadline timer. */
export interface DeadlineTimer {
  clear(): void;
}

/** Calls `f` once `Date.now()` has reached `deadline`; undefined (never) for an infinite one. */
export function atDeadline(deadline: number, f: () => void): DeadlineTimer | undefined {
  if (!Number.isFinite(deadline)) return undefined;
  let timer: NodeJS.Timeout;
  const arm = (): void => {
    timer = setTimeout(fire, msUntil(deadline) as number);
  };
  const fire = (): void => {
    if (Date.now() < deadline) arm();
    else f();
  };
  arm();
  return { clear: () => clearTimeout(timer) };
}
