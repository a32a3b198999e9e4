/**
 * The benchmark harness. A benchmark is a module `bench/NAME.ts` whose default export is
 * `async () => BenchRow[]`; `npm run bench -- NAME` runs it, prints a table and writes
 * `bench/results/NAME.json` as `{ name, date, rows: [{ case, opsPerSec, p50Ms, p99Ms, ratio }] }`.
 *
 * Machines here are noisy, so every figure that matters is a ratio between cases measured
 * side by side in one run, and each case runs several rounds (interleaved with the other
 * cases by `compare`, in an order that rotates each round) reporting the median round.
 * In-process cases time batches of operations (`LoopOptions.batch`), not single ones.
 */
import { writeFileSync, mkdirSync } from "node:fs";
import { performance } from "node:perf_hooks";

/** One line of a benchmark's table. */
export interface BenchRow {
  readonly case: string;
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Relative to the row named as the baseline (opsPerSec / baseline, or time ratio as noted in the case name). */
  readonly ratio: number;
  /** Free-form note printed after the row (targets, units). */
  readonly note?: string;
}

/** Options of a closed-loop measurement. */
export interface LoopOptions {
  /** Concurrent workers, each awaiting one operation at a time. */
  readonly concurrency?: number;
  /** How long one round runs. */
  readonly durationMs?: number;
  /** Operations before timing starts (JIT warm-up). */
  readonly warmupOps?: number;
  /**
   * Operations per timed batch (default 1). Two `performance.now()` calls, an `await` and a
   * push cost ~200 ns, as much as an in-process call itself: with `batch` > 1 each worker
   * times `batch` sequential operations at once, ops/s and p50 (the median batch's mean)
   * carry no per-operation harness cost, and p99 comes from a separate, shorter pass that
   * times single operations (the tail cannot be seen in a batch mean).
   */
  readonly batch?: number;
}

/** The result of one measured round. */
export interface Round {
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.floor(q * sorted.length));
  return sorted[i] as number;
}

/** Runs `op` in a closed loop for one round and returns throughput and latency quantiles. */
export async function loop(op: () => Promise<unknown> | unknown, opts: LoopOptions = {}): Promise<Round> {
  const concurrency = opts.concurrency ?? 1;
  const durationMs = opts.durationMs ?? 1000;
  const batch = Math.max(1, opts.batch ?? 1);
  for (let i = 0; i < (opts.warmupOps ?? 200); i++) await op();
  const samples: number[] = [];
  let ops = 0;
  const end = performance.now() + durationMs;
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const t0 = performance.now();
      for (let i = 0; i < batch; i++) await op();
      samples.push((performance.now() - t0) / batch);
      ops += batch;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = performance.now() - start;
  const sorted = Float64Array.from(samples).sort();
  const p99Ms =
    batch === 1
      ? quantile(sorted, 0.99)
      : (await loop(op, { concurrency, durationMs: durationMs / 3, warmupOps: 0, batch: 1 })).p99Ms;
  return { opsPerSec: (ops / elapsed) * 1000, p50Ms: quantile(sorted, 0.5), p99Ms };
}

function median(rounds: readonly Round[]): Round {
  const sorted = [...rounds].sort((a, b) => a.opsPerSec - b.opsPerSec);
  return sorted[Math.floor(sorted.length / 2)] as Round;
}

/** A case of `compare`: a name and the operation to time. */
export interface Case {
  readonly name: string;
  readonly op: () => Promise<unknown> | unknown;
  readonly note?: string;
  /** Overrides the options' `batch` for this case (in-process cases batch, remote ones need not). */
  readonly batch?: number;
}

/**
 * The order of round `r` over `n` cases: rotated by `r` and reversed every other round, so no
 * case always runs first, or always right after the same other case.
 */
export function roundOrder(n: number, r: number): number[] {
  const k = n === 0 ? 0 : r % n;
  const idx = Array.from({ length: n }, (_, i) => (i + k) % n);
  return r % 2 === 1 ? idx.reverse() : idx;
}

/**
 * Measures several cases side by side: `rounds` rounds each, interleaved (A B C, then C A B
 * reversed, ...: `roundOrder`) so drift in machine load hits every case alike; reports each
 * case's median round, with `ratio` = its ops/s divided by the first case's.
 */
export async function compare(cases: readonly Case[], opts: LoopOptions & { rounds?: number } = {}): Promise<BenchRow[]> {
  const rounds = opts.rounds ?? 5;
  const results = cases.map(() => [] as Round[]);
  for (let r = 0; r < rounds; r++) {
    for (const i of roundOrder(cases.length, r)) {
      const c = cases[i] as Case;
      results[i]?.push(await loop(c.op, c.batch !== undefined ? { ...opts, batch: c.batch } : opts));
    }
  }
  const medians = results.map(median);
  const base = medians[0]?.opsPerSec ?? 1;
  return cases.map((c, i) => {
    const m = medians[i] as Round;
    return { case: c.name, ...m, ratio: m.opsPerSec / base, ...(c.note ? { note: c.note } : {}) };
  });
}

/** Times a one-shot async action `rounds` times and returns the median in ms. */
export async function timeMedian(action: () => Promise<unknown> | unknown, rounds = 5): Promise<{ medianMs: number; allMs: number[] }> {
  const all: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await action();
    all.push(performance.now() - t0);
  }
  const sorted = [...all].sort((a, b) => a - b);
  return { medianMs: sorted[Math.floor(sorted.length / 2)] as number, allMs: all };
}

function fmt(n: number, digits = 2): string {
  if (!Number.isFinite(n)) return "-";
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString("en-US");
  return n.toFixed(digits);
}

/** Prints rows as an aligned table. */
export function printTable(name: string, rows: readonly BenchRow[]): void {
  const header = ["case", "ops/s", "p50 ms", "p99 ms", "ratio", ""];
  const lines = rows.map((r) => [r.case, fmt(r.opsPerSec, 1), fmt(r.p50Ms, 3), fmt(r.p99Ms, 3), fmt(r.ratio, 3), r.note ?? ""]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  const row = (cells: string[]) => cells.map((c, i) => (i === 0 || i === 5 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join("  ");
  console.log(`\n${name}`);
  console.log(row(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const l of lines) console.log(row(l));
}

/** Writes `bench/results/NAME.json`. */
export function writeResults(
  name: string,
  rows: readonly BenchRow[],
  dir = new URL("./results/", import.meta.url),
  meta?: Record<string, unknown>,
): string {
  mkdirSync(dir, { recursive: true });
  const file = new URL(`${name}.json`, dir);
  const out = {
    name,
    date: new Date().toISOString(),
    ...(meta !== undefined ? { meta } : {}),
    rows: rows.map((r) => ({ case: r.case, opsPerSec: r.opsPerSec, p50Ms: r.p50Ms, p99Ms: r.p99Ms, ratio: r.ratio, ...(r.note ? { note: r.note } : {}) })),
  };
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  return file.pathname;
}
