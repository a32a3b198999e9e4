/**
 * Metrics of one App in Prometheus form, on a prom-client `Registry` of its own (several Apps
 * in one process never collide). Owns the per-call series (calls by code, latency histogram,
 * in-flight; client and server side, per service, method and transport), the delivery
 * counters (push redeliveries, dead letters, expired pushes), the App's `counters` mirrored,
 * and the slots the policy layer reports to (retries, hedges, breaker state, shed load).
 *
 * The per-call series are plain numbers bumped on the hot path (a call costs two
 * `performance.now()` reads and a few increments, ~60 ns); prom-client reads them only when
 * scraped, through metric objects whose `get()` builds the samples.
 */
// The module binding: the global `performance` is a getter, run on every read (per call).
import { performance } from "node:perf_hooks";
import { Counter, Gauge, Registry, type MetricObjectWithValues, type MetricValue } from "prom-client";
import type { Counters } from "./stats.js";

/** Latency buckets, seconds: 250 µs (an in-process call) to 10 s (the default timeout). */
export const LATENCY_BUCKETS: readonly number[] = [
  0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Which side of a call a series counts. */
export type Side = "client" | "server";

/** Labels of one per-call series. */
export interface CallLabels {
  readonly service: string;
  readonly method: string;
  readonly transport: string;
}

/** Calls of one (side, service, method, transport): counts by code, latency, in flight. */
export class CallSeries {
  inFlight = 0;
  /** Completed successful calls (kept apart from `codes`: the common case is one increment). */
  ok = 0;
  /** Completed failed calls by code. */
  readonly codes = new Map<string, number>();
  /** Per-bucket (not cumulative) counts; the last slot is +Inf. */
  readonly buckets = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  constructor(readonly labels: CallLabels) {}

  /** A call starts: returns its start time for `end` (`at`: a `performance.now()` reading of this instant, if taken). */
  begin(at?: number): number {
    this.inFlight++;
    return at ?? performance.now();
  }

  /**
   * A call begun at `t0` ended with `code`; returns its end time (`at`: a `performance.now()`
   * reading of this instant, if taken), so the other side of an in-process call can share it.
   */
  end(t0: number, code: string, at?: number): number {
    this.inFlight--;
    const t = at ?? performance.now();
    this.observe((t - t0) / 1000, code);
    return t;
  }

  /** Counts a call of `seconds` that ended with `code` (without in-flight accounting). */
  observe(seconds: number, code: string): void {
    if (code === "OK") this.ok++;
    else this.codes.set(code, (this.codes.get(code) ?? 0) + 1);
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > (LATENCY_BUCKETS[i] as number)) i++;
    this.buckets[i] = (this.buckets[i] as number) + 1;
    this.sum += seconds;
    this.count++;
  }
}

type Sample = MetricValue<string>;

/** A prom-client metric whose samples are computed at scrape time. */
class Computed {
  readonly aggregator = "sum";
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge" | "histogram",
    private readonly samples: () => Sample[],
  ) {}

  get(): MetricObjectWithValues<Sample> {
    return {
      name: this.name,
      help: this.help,
      type: this.type as never,
      values: this.samples(),
      aggregator: "sum",
    } as unknown as MetricObjectWithValues<Sample>;
  }

  reset(): void {}
}

/** Breaker states as the `fan_breaker_state` gauge reports them. */
export const BREAKER_STATES = { closed: 0, "half-open": 1, open: 2 } as const;

/** Every metric of one App. */
export class AppMetrics {
  /** The App's own registry (not prom-client's global one). */
  readonly registry = new Registry();
  readonly #series = { client: new Map<string, CallSeries>(), server: new Map<string, CallSeries>() };
  readonly #redeliveries: Counter<"service" | "method" | "transport">;
  readonly #deadLetters: Counter<"service" | "method" | "transport">;
  readonly #expired: Counter<"service" | "method" | "transport">;
  readonly #retries: Counter<"service" | "method">;
  readonly #hedges: Counter<"service" | "method">;
  readonly #breaker: Gauge<"service" | "instance">;
  readonly #breakerTransitions: Counter<"service" | "instance" | "to">;
  readonly #shed: Counter<"service" | "method" | "transport">;
  readonly #bulkhead: Counter<"service">;

  constructor(counters: Counters, labels: Readonly<Record<string, string>> = {}) {
    const r = this.registry;
    r.setDefaultLabels(labels);
    for (const side of ["client", "server"] as const) {
      const all = (): CallSeries[] => [...this.#series[side].values()];
      r.registerMetric(
        new Computed(
          `fan_${side}_calls_total`,
          `Calls ${side === "client" ? "made" : "handled"}, pushes and events included, by result code`,
          "counter",
          () =>
            all().flatMap((s) =>
              [...(s.ok > 0 ? [["OK", s.ok] as const] : []), ...s.codes].map(([code, value]) => ({
                labels: { ...s.labels, code },
                value,
              })),
            ),
        ) as never,
      );
      r.registerMetric(
        new Computed(
          `fan_${side}_in_flight`,
          `Calls ${side === "client" ? "made" : "handled"} now in flight`,
          "gauge",
          () => all().map((s) => ({ labels: { ...s.labels }, value: s.inFlight })),
        ) as never,
      );
      r.registerMetric(
        new Computed(
          `fan_${side}_call_duration_seconds`,
          `Time from ${side === "client" ? "the call to its reply, as the caller saw it" : "arrival to reply"}`,
          "histogram",
          () => all().flatMap(histogramSamples(`fan_${side}_call_duration_seconds`)),
        ) as never,
      );
    }
    const labelled = <L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> =>
      new Counter({ name, help, labelNames, registers: [r] });
    this.#redeliveries = labelled(
      "fan_push_redeliveries_total",
      "Pushes and events delivered again after a failed or unacknowledged delivery",
      ["service", "method", "transport"],
    );
    this.#deadLetters = labelled("fan_dead_letters_total", "Pushes and events moved to a dead-letter queue or stream", [
      "service",
      "method",
      "transport",
    ]);
    this.#expired = labelled("fan_pushes_expired_total", "Pushes dropped unprocessed because their @ttl had passed", [
      "service",
      "method",
      "transport",
    ]);
    this.#retries = labelled("fan_client_retries_total", "Extra attempts made by the retry policy", [
      "service",
      "method",
    ]);
    this.#hedges = labelled("fan_client_hedges_total", "Hedged (second) attempts sent", ["service", "method"]);
    this.#breakerTransitions = labelled("fan_breaker_transitions_total", "Circuit breaker state changes", [
      "service",
      "instance",
      "to",
    ]);
    this.#shed = labelled("fan_server_shed_total", "Calls refused with RESOURCE_EXHAUSTED by load shedding", [
      "service",
      "method",
      "transport",
    ]);
    this.#bulkhead = labelled(
      "fan_client_bulkhead_rejected_total",
      "Calls refused with RESOURCE_EXHAUSTED by a client bulkhead",
      ["service"],
    );
    this.#breaker = new Gauge({
      name: "fan_breaker_state",
      help: "Circuit breaker state per instance: 0 closed, 1 half-open, 2 open",
      labelNames: ["service", "instance"],
      registers: [r],
    });
    r.registerMetric(
      new Computed(
        "fan_dropped_total",
        "Messages the App dropped or refused, by reason (app.counters)",
        "counter",
        () => Object.entries(counters).map(([reason, value]) => ({ labels: { reason }, value })),
      ) as never,
    );
  }

  /** The series of (side, service, method, transport), made on first use. */
  series(side: Side, service: string, method: string, transport: string): CallSeries {
    const key = `${service}\u0000${method}\u0000${transport}`;
    const map = this.#series[side];
    let s = map.get(key);
    if (s === undefined) {
      s = new CallSeries({ service, method, transport });
      map.set(key, s);
    }
    return s;
  }

  /** A push or event is being delivered again (attempt > 1). */
  redelivery(service: string, method: string, transport: string): void {
    this.#redeliveries.inc({ service, method, transport });
  }

  /** A push or event went to a dead-letter queue or stream. */
  deadLetter(service: string, method: string, transport: string): void {
    this.#deadLetters.inc({ service, method, transport });
  }

  /** A push was dropped because its `@ttl` had passed. */
  pushExpired(service: string, method: string, transport: string): void {
    this.#expired.inc({ service, method, transport });
  }

  // Slots of the policy layer (retries, hedging, breakers, bulkheads, load shedding) --------

  /** The retry policy sent another attempt of `service.method`. */
  retry(service: string, method: string): void {
    this.#retries.inc({ service, method });
  }

  /** Hedging sent a second attempt of `service.method`. */
  hedge(service: string, method: string): void {
    this.#hedges.inc({ service, method });
  }

  /** The circuit breaker of (service, instance) is now in `state`. */
  breakerState(service: string, instance: string, state: keyof typeof BREAKER_STATES): void {
    this.#breaker.set({ service, instance }, BREAKER_STATES[state]);
    this.#breakerTransitions.inc({ service, instance, to: state });
  }

  /** Load shedding refused a call of `service.method` that came over `transport`. */
  shed(service: string, method: string, transport: string): void {
    this.#shed.inc({ service, method, transport });
  }

  /** A client bulkhead of `service` refused a call. */
  bulkheadRejected(service: string): void {
    this.#bulkhead.inc({ service });
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The exposition's content type. */
  get contentType(): string {
    return this.registry.contentType;
  }
}

function histogramSamples(name: string): (s: CallSeries) => Sample[] {
  return (s) => {
    const out: Sample[] = [];
    let cumulative = 0;
    for (let i = 0; i <= LATENCY_BUCKETS.length; i++) {
      cumulative += s.buckets[i] as number;
      const le = i < LATENCY_BUCKETS.length ? String(LATENCY_BUCKETS[i]) : "+Inf";
      out.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le }, value: cumulative } as Sample);
    }
    out.push({ metricName: `${name}_sum`, labels: { ...s.labels }, value: s.sum } as Sample);
    out.push({ metricName: `${name}_count`, labels: { ...s.labels }, value: s.count } as Sample);
    return out;
  };
}
