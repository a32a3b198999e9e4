/**
 * What `fanc bench` measures: every latency of a run (ms), the errors by code, and the
 * summary printed at the end (throughput, p50/p90/p99/max) or as `--json`.
 */

/** The outcome of a bench run. */
export interface BenchReport {
  readonly service: string;
  readonly method: string;
  readonly transport: string;
  readonly instance: string;
  readonly concurrency: number;
  /** The target rate, calls/s (`--rate`), when the run was open-loop. */
  readonly rate: number | undefined;
  readonly durationMs: number;
  readonly calls: number;
  readonly ok: number;
  readonly errors: Readonly<Record<string, number>>;
  /** A message of the first error, so a run that only fails says why. */
  readonly firstError: string | undefined;
  /** Completed calls (ok or not) per second. */
  readonly throughput: number;
  /** Calls `--rate` could not start because `--concurrency` were already in flight. */
  readonly shed: number;
  readonly latencyMs: { readonly min: number; readonly mean: number; readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number };
}

/** The latencies and errors of a run as it goes. */
export class BenchStats {
  #lat = new Float64Array(1 << 16);
  #n = 0;
  ok = 0;
  shed = 0;
  readonly errors = new Map<string, number>();
  firstError: string | undefined;

  get calls(): number {
    return this.#n;
  }

  /** Records one completed call: its latency, and its error code if it failed. */
  record(ms: number, error?: { code: string; message: string }): void {
    if (this.#n === this.#lat.length) {
      const bigger = new Float64Array(this.#lat.length * 2);
      bigger.set(this.#lat);
      this.#lat = bigger;
    }
    this.#lat[this.#n++] = ms;
    if (error === undefined) this.ok++;
    else {
      this.errors.set(error.code, (this.errors.get(error.code) ?? 0) + 1);
      this.firstError ??= `${error.code}: ${error.message}`;
    }
  }

  /** The latency at quantile `q` (0..1) of the calls so far (nearest rank), 0 when none. */
  quantile(q: number): number {
    if (this.#n === 0) return 0;
    const sorted = this.#lat.slice(0, this.#n).sort();
    return sorted[Math.min(this.#n - 1, Math.max(0, Math.ceil(q * this.#n) - 1))] as number;
  }

  summary(base: Pick<BenchReport, "service" | "method" | "transport" | "instance" | "concurrency" | "rate">, durationMs: number): BenchReport {
    const sorted = this.#lat.slice(0, this.#n).sort();
    const at = (q: number): number =>
      this.#n === 0 ? 0 : round(sorted[Math.min(this.#n - 1, Math.max(0, Math.ceil(q * this.#n) - 1))] as number);
    let sum = 0;
    for (const v of sorted) sum += v;
    return {
      ...base,
      durationMs: Math.round(durationMs),
      calls: this.#n,
      ok: this.ok,
      errors: Object.fromEntries(this.errors),
      firstError: this.firstError,
      throughput: round((this.#n * 1000) / Math.max(1, durationMs)),
      shed: this.shed,
      latencyMs: {
        min: this.#n === 0 ? 0 : round(sorted[0] as number),
        mean: this.#n === 0 ? 0 : round(sum / this.#n),
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: this.#n === 0 ? 0 : round(sorted[this.#n - 1] as number),
      },
    };
  }
}

const round = (v: number): number => Math.round(v * 1000) / 1000;

const ms = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

/** The text summary. */
export function formatReport(r: BenchReport): string {
  const mode = r.rate === undefined ? `${r.concurrency} concurrent` : `${r.rate}/s target, at most ${r.concurrency} in flight`;
  const lines = [
    `fanc bench: ${r.service}.${r.method} over ${r.transport} (${r.instance}) · ${mode} · ${(r.durationMs / 1000).toFixed(1)} s`,
    `  calls     ${r.calls} (${r.ok} ok, ${r.calls - r.ok} failed) · ${r.throughput.toFixed(1)} calls/s`,
    `  latency   p50 ${ms(r.latencyMs.p50)} ms · p90 ${ms(r.latencyMs.p90)} ms · p99 ${ms(r.latencyMs.p99)} ms · max ${ms(r.latencyMs.max)} ms (mean ${ms(r.latencyMs.mean)})`,
  ];
  const errs = Object.entries(r.errors);
  if (errs.length > 0) lines.push(`  errors    ${errs.map(([c, n]) => `${c} ${n}`).join(", ")} (first: ${r.firstError})`);
  if (r.shed > 0) lines.push(`  shed      ${r.shed} calls not started: --concurrency ${r.concurrency} were in flight`);
  return lines.join("\n");
}
