/**
 * The retry budget: gRPC's retry throttling (gRFC A6), with a floor of retries per second
 * (Finagle's `minRetriesPerSec`) and instance deaths counted once. A bucket starts full at
 * `maxTokens`; every attempt that fails with a retryable code takes one token, every success
 * puts back `tokenRatio`; a retry or hedge is allowed while the bucket holds more than half. So
 * while a dependency keeps failing, retries stop after a few failures, and they come back once
 * successes refill the bucket; in steady state retries add at most about `tokenRatio` (10%) to
 * the load. Past that, `minRetriesPerSec` retries a second are still allowed (a second bucket
 * of that many, refilled at that rate): a caller making a few calls a second, whose bucket
 * successes refill slowly, still retries a dependency failing some of its calls, and one
 * failing all of them gets at most that many retries a second from it.
 *
 * A failure the runtime attributes to an instance lost with the call (call/lost.ts: its lease
 * ended, it took the call and died) takes one token per lost instance in `LOST_WINDOW_MS`, not
 * one per call: killing one instance of two with many calls in flight is one event, and the
 * retries go to the instances still alive. One budget per (App, service).
 */

/** Options of the retry budget. */
export interface BudgetOptions {
  /** Bucket size (default 10). */
  readonly maxTokens?: number;
  /** Tokens a success puts back (default 0.1). */
  readonly tokenRatio?: number;
  /** Retries (and hedges) a second allowed when the bucket holds half or less (default 10; 0: none). */
  readonly minRetriesPerSec?: number;
}

/** A lost instance's failures within this of its first take no further token. */
export const LOST_WINDOW_MS = 10_000;

/** One service's retry budget. */
export class RetryBudget {
  readonly #max: number;
  readonly #ratio: number;
  readonly #floor: number;
  readonly #now: () => number;
  #tokens: number;
  /** The floor's bucket (`minRetriesPerSec` at most), and when it was last refilled. */
  #floorTokens: number;
  #floorAt: number;
  /** Lost instances counted, and when (pruned as they age out of `LOST_WINDOW_MS`). */
  readonly #lost = new Map<string, number>();

  constructor(opts: BudgetOptions = {}, now: () => number = Date.now) {
    this.#max = opts.maxTokens ?? 10;
    this.#ratio = opts.tokenRatio ?? 0.1;
    this.#floor = Math.max(0, opts.minRetriesPerSec ?? 10);
    this.#now = now;
    this.#tokens = this.#max;
    this.#floorTokens = this.#floor;
    this.#floorAt = now();
  }

  /** Tokens left. */
  get tokens(): number {
    return this.#tokens;
  }

  /** An attempt succeeded (or got an answer that is not a failure). */
  success(): void {
    this.#tokens = Math.min(this.#max, this.#tokens + this.#ratio);
  }

  /**
   * An attempt failed with a retryable code. `lost`: the instance it was lost with
   * (`lostInstanceOf`): only its first failure in `LOST_WINDOW_MS` takes a token.
   */
  failure(lost?: string): void {
    if (lost !== undefined) {
      const now = this.#now();
      const seen = this.#lost.get(lost);
      if (seen !== undefined && now - seen < LOST_WINDOW_MS) return;
      for (const [key, at] of this.#lost) if (now - at >= LOST_WINDOW_MS) this.#lost.delete(key);
      this.#lost.set(lost, now);
    }
    this.#tokens = Math.max(0, this.#tokens - 1);
  }

  /**
   * May one more retry or hedge be sent now? Asked only when one would be sent: a yes from the
   * floor (the bucket half empty) counts as one of its retries this second.
   */
  allows(): boolean {
    if (this.#tokens > this.#max / 2) return true;
    if (this.#floor === 0) return false;
    const now = this.#now();
    this.#floorTokens = Math.min(this.#floor, this.#floorTokens + ((now - this.#floorAt) / 1000) * this.#floor);
    this.#floorAt = now;
    if (this.#floorTokens < 1) return false;
    this.#floorTokens -= 1;
    return true;
  }
}

/** Options of exponential backoff. */
export interface BackoffOptions {
  /** The first retry waits up to this, ms (default 25). */
  readonly baseMs?: number;
  /** No wait exceeds this, ms (default 1 000). */
  readonly maxMs?: number;
}

/**
 * The wait before retry number `n` (1-based): "full jitter" — uniform in
 * [0, min(maxMs, baseMs · 2^(n−1))] — so the retries of many callers spread out.
 */
export function backoffMs(n: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const cap = Math.min(opts.maxMs ?? 1000, (opts.baseMs ?? 25) * 2 ** (n - 1));
  return Math.floor(random() * cap);
}

/**
 * Recent latencies of one method's successful attempts (the last 128), for the hedging delay:
 * the 95th percentile, recomputed every 16 samples.
 */
export class LatencyWindow {
  readonly #samples: number[] = [];
  #next = 0;
  #seen = 0;
  #p95: number | undefined;

  /** Adds one latency, ms. */
  add(ms: number): void {
    if (this.#samples.length < 128) this.#samples.push(ms);
    else this.#samples[this.#next] = ms;
    this.#next = (this.#next + 1) % 128;
    if (++this.#seen % 16 === 0) this.#p95 = undefined;
  }

  /** The 95th percentile, or undefined before 16 samples. */
  p95(): number | undefined {
    if (this.#samples.length < 16) return undefined;
    if (this.#p95 === undefined) {
      const sorted = [...this.#samples].sort((a, b) => a - b);
      this.#p95 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] as number;
    }
    return this.#p95;
  }
}
