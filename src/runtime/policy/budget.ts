/**
 * The retry budget: gRPC's retry throttling (gRFC A6). A bucket starts full at `maxTokens`;
 * every attempt that fails with a retryable code takes one token, every success puts back
 * `tokenRatio`; a retry or hedge is allowed only while the bucket holds more than half. So
 * while a dependency keeps failing, retries stop after a few failures, and they come back
 * once successes refill the bucket; in steady state retries add at most about `tokenRatio`
 * (10%) to the load. One budget per (App, service).
 */

/** Options of the retry budget. */
export interface BudgetOptions {
  /** Bucket size (default 10). */
  readonly maxTokens?: number;
  /** Tokens a success puts back (default 0.1). */
  readonly tokenRatio?: number;
}

/** One service's retry budget. */
export class RetryBudget {
  readonly #max: number;
  readonly #ratio: number;
  #tokens: number;

  constructor(opts: BudgetOptions = {}) {
    this.#max = opts.maxTokens ?? 10;
    this.#ratio = opts.tokenRatio ?? 0.1;
    this.#tokens = this.#max;
  }

  /** Tokens left. */
  get tokens(): number {
    return this.#tokens;
  }

  /** An attempt succeeded (or got an answer that is not a failure). */
  success(): void {
    this.#tokens = Math.min(this.#max, this.#tokens + this.#ratio);
  }

  /** An attempt failed with a retryable code. */
  failure(): void {
    this.#tokens = Math.max(0, this.#tokens - 1);
  }

  /** May one more retry or hedge be sent now? */
  allows(): boolean {
    return this.#tokens > this.#max / 2;
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
