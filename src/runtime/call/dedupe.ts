/**
 * The push dedupe window of one served instance: a push whose id (the caller's idempotency
 * key, or the id the runtime gave it, kept by every re-send) was handled successfully within
 * the window is acknowledged without running the handler again; one that arrives while the
 * same id is being handled shares that delivery's outcome. Only successes are remembered: a
 * failed delivery is delivered again and runs again, and a refused one (auth refused,
 * undecodable, not implemented: dropped without running the handler) is forgotten, so a
 * corrected re-send with the same id is handled. The window is per instance and in memory
 * (docs/runtime.md, "Pushes and broker outages" says what that covers).
 */

/** How long a handled push id is remembered. */
export const DEDUPE_WINDOW_MS = 10 * 60_000;
/** At most this many ids are remembered per instance; the oldest go first. */
export const DEDUPE_MAX_IDS = 100_000;

/** Handled and in-flight push ids of one instance. */
export class PushDedupe {
  /** id → when it stops counting as handled (insertion order = age order). */
  readonly #handled = new Map<string, number>();
  readonly #inflight = new Map<string, Promise<void>>();
  /** In-flight ids whose delivery was refused (acknowledged, but not handled). */
  readonly #refused = new Set<string>();

  constructor(
    private readonly windowMs = DEDUPE_WINDOW_MS,
    private readonly maxIds = DEDUPE_MAX_IDS,
  ) {}

  /** "handled" (drop it), the in-flight delivery's promise (share it), or undefined (run it). */
  check(key: string, now: number): "handled" | Promise<void> | undefined {
    const until = this.#handled.get(key);
    if (until !== undefined) {
      if (until > now) return "handled";
      this.#handled.delete(key);
    }
    return this.#inflight.get(key);
  }

  /** Runs `run` as the delivery of `key`, remembering the key when it succeeds. */
  track(key: string, run: Promise<void>): Promise<void> {
    this.#inflight.set(key, run);
    return run.then(
      () => {
        this.#inflight.delete(key);
        if (!this.#refused.delete(key)) this.#remember(key, Date.now());
      },
      (e: unknown) => {
        this.#inflight.delete(key);
        this.#refused.delete(key);
        throw e;
      },
    );
  }

  /**
   * The delivery of `key` was refused without running its handler: `track` does not remember
   * it. Called only by the run `track` is given (possibly before `track` itself, synchronously).
   */
  refuse(key: string): void {
    this.#refused.add(key);
  }

  #remember(key: string, now: number): void {
    this.#handled.delete(key);
    this.#handled.set(key, now + this.windowMs);
    for (const [k, until] of this.#handled) {
      if (this.#handled.size <= this.maxIds && until > now) break;
      this.#handled.delete(k);
    }
  }
}
