/**
 * Abort listening that scales: many calls share one caller signal (the App passes one
 * never-aborting signal to every call without its own), so each signal gets a single
 * listener and calls register in a Set, O(1) to add and remove, no listener-count warnings.
 */
const registry = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Calls `fn` once when `signal` aborts; returns the function that stops listening. Each call
 * must pass its own function object (registrations are keyed by it).
 */
export function onAbort(signal: AbortSignal, fn: () => void): () => void {
  let set = registry.get(signal);
  if (set === undefined) {
    const fns = new Set<() => void>();
    set = fns;
    registry.set(signal, fns);
    signal.addEventListener(
      "abort",
      () => {
        for (const f of [...fns]) f();
        fns.clear();
      },
      { once: true },
    );
  }
  set.add(fn);
  const fns = set;
  return () => void fns.delete(fn);
}
