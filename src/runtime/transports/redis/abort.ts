/**
 * One abort listener per caller signal, however many calls share it (the App hands the same
 * signal to every call that has none of its own): calls register in a Set, so adding and
 * removing is O(1) and Node never warns about listener counts.
 */
const listeners = new WeakMap<AbortSignal, Set<() => void>>();

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
  let fns = listeners.get(signal);
  if (fns === undefined) {
    const created = new Set<() => void>();
    fns = created;
    listeners.set(signal, created);
    signal.addEventListener(
      "abort",
      () => {
        const all = [...created];
        created.clear();
        for (const f of all) f();
      },
      { once: true },
    );
  }
  const entry = (): void => fn();
  fns.add(entry);
  const set = fns;
  return () => {
    set.delete(entry);
  };
}
