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

/**
 * Makes `ac` abort when any of `sources` does (now, with that source's reason, if one already
 * has): `AbortSignal.any` with listeners its caller removes, by calling the function returned,
 * when the call it serves settles. `AbortSignal.any` keeps every composite on its sources until
 * they abort (Node 20), so one per call on a long-lived source (the App's hard stop, a keep-alive
 * connection's signal) grew with every call for the source's lifetime.
 */
export function follow(ac: AbortController, sources: readonly AbortSignal[]): () => void {
  for (const s of sources) {
    if (s.aborted) {
      ac.abort(s.reason);
      return noop;
    }
  }
  if (sources.length === 1) {
    const s = sources[0] as AbortSignal;
    return onAbort(s, () => ac.abort(s.reason));
  }
  const stops = sources.map((s) => onAbort(s, () => ac.abort(s.reason)));
  return () => {
    for (const stop of stops) stop();
  };
}

function noop(): void {}

/**
 * The cancellation of one call a transport serves, made a real `AbortSignal` only when the
 * handler reads `ctx.signal`: an AbortController (an EventTarget) per served call cost more
 * than the handler itself in the broker transports' profiles, and most handlers never look.
 * Used like an AbortController by the server (`abort()`), like a signal by the dispatcher.
 */
export class LazyAbort {
  /**
   * Where the nats server's taken notices are with this call (nats/taken-notices.ts): 0 not seen
   * at a tick yet, 1 seen (announced at the next tick if still running), 2 announced or never to be.
   */
  notice = 0;
  #ac: AbortController | undefined = undefined;
  #aborted = false;
  #reason: unknown = undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  /** The signal (made now, aborted already if the call was). */
  get signal(): AbortSignal {
    if (this.#ac === undefined) {
      this.#ac = new AbortController();
      if (this.#aborted) this.#ac.abort(this.#reason);
    }
    return this.#ac.signal;
  }

  /** Aborts the call; `reason` becomes the signal's reason (an AbortError when absent). */
  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#ac?.abort(reason);
  }
}

/** What a served call's cancellation comes as: a signal, or a `LazyAbort` that makes one on demand. */
export type CallSignal = AbortSignal | LazyAbort;

/** The `AbortSignal` of a call's cancellation. */
export function signalOf(s: CallSignal): AbortSignal {
  return s instanceof LazyAbort ? s.signal : s;
}

/**
 * `p`, or a rejection with the signal's reason once it aborts; `p` is then left to settle by
 * itself (its rejection handled), the caller having undone what it was waiting on.
 */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const off = onAbort(signal, () => {
      p.catch(() => undefined);
      reject(signal.reason);
    });
    p.then(
      (v) => {
        off();
        resolve(v);
      },
      (e: unknown) => {
        off();
        reject(e);
      },
    );
  });
}
