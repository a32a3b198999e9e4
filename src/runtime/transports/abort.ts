/**
 * Shared by the network transports (no dependency of its own).
 *
 * One abort listener per caller signal, however many calls share it (the App hands the same
 * signal to every call that has none of its own): calls register in a Set, so adding and
 * removing is O(1) and Node never warns about listener counts.
 */
const listeners = new WeakMap<AbortSignal, Set<(() => void) | AbortTarget>>();

/** An object told when a signal aborts (no closure per registration). */
export interface AbortTarget {
  aborted(): void;
}

/** Tells `t` once when `signal` aborts (soon, if it already has) unless `unwatchAbort` comes first. */
export function watchAbort(signal: AbortSignal, t: AbortTarget): void {
  if (signal.aborted) {
    queueMicrotask(() => {
      if (listeners.get(signal)?.delete(t) === true) t.aborted();
    });
  }
  listenersOf(signal).add(t);
}

/** Stops telling `t` about `signal`. */
export function unwatchAbort(signal: AbortSignal, t: AbortTarget): void {
  listeners.get(signal)?.delete(t);
}

function listenersOf(signal: AbortSignal): Set<(() => void) | AbortTarget> {
  let fns = listeners.get(signal);
  if (fns === undefined) {
    const created = new Set<(() => void) | AbortTarget>();
    fns = created;
    listeners.set(signal, created);
    signal.addEventListener(
      "abort",
      () => {
        const all = [...created];
        created.clear();
        for (const f of all) typeof f === "function" ? f() : f.aborted();
      },
      { once: true },
    );
  }
  return fns;
}

/** Runs `fn` once when `signal` aborts (soon, if it already has); returns the function that stops listening. */
export function onAbort(signal: AbortSignal, fn: () => void): () => void {
  if (signal.aborted) {
    let live = true;
    queueMicrotask(() => {
      if (live) fn();
    });
    return () => {
      live = false;
    };
  }
  const fns = listenersOf(signal);
  const entry = (): void => fn();
  fns.add(entry);
  const set = fns;
  return () => {
    set.delete(entry);
  };
}
