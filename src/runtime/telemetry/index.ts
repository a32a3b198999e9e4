/**
 * The telemetry of one App: its metrics (`AppMetrics`, its own prom-client registry), whether
 * calls make spans, its health, and the admin endpoints (`GET /metrics`, `/health`, `/ready`)
 * that the http transport and the admin port both answer through `adminReply`.
 */
import semver from "semver";
import type { ServiceDescriptor } from "../descriptor.js";
import type { InstanceInfo, InstanceSet } from "../discovery/types.js";
import type { CallTelemetry } from "./calls.js";
import { Health } from "./health.js";
import { AppMetrics } from "./metrics.js";
import type { Counters } from "./stats.js";

/** `createApp({ telemetry })`; `telemetry: false` turns metrics and spans off. */
export interface TelemetryOptions {
  /** Count calls and deliveries (default true). */
  readonly metrics?: boolean;
  /** Make OpenTelemetry spans when an SDK is registered (default true). */
  readonly tracing?: boolean;
  /** Serve the built-in `fan.Health` service on every transport (default true). */
  readonly healthService?: boolean;
  /** Labels added to every metric of this App (e.g. `{ app: "billing" }`). */
  readonly labels?: Readonly<Record<string, string>>;
}

/** `createApp({ admin: { port } })`: a small http server with /metrics, /health, /ready. */
export interface AdminOptions {
  readonly port: number;
  /** Interface to listen on; default 127.0.0.1. */
  readonly host?: string;
}

/** An answer to an admin request. */
export interface AdminReply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

/** Answers an admin path (`/metrics`, `/health`, `/ready`), or undefined for any other path. */
export type AdminHook = (path: string) => Promise<AdminReply> | undefined;

/** What the App gives its telemetry. */
export interface TelemetryHost {
  readonly counters: Counters;
  /** Services served by this App. */
  served(): readonly ServiceDescriptor[];
  watch(service: string): Promise<InstanceSet>;
  /** Whether this App can call `info` (a transport both have); default: any registered instance counts. */
  reaches?(info: InstanceInfo): boolean;
}

/** Telemetry of one App. */
export class Telemetry implements CallTelemetry {
  readonly metrics: AppMetrics | undefined;
  readonly tracing: boolean;
  readonly health: Health;
  readonly healthService: boolean;

  constructor(host: TelemetryHost, opts: TelemetryOptions | false | undefined) {
    const o = opts === false ? { metrics: false, tracing: false } : (opts ?? {});
    this.metrics = o.metrics === false ? undefined : new AppMetrics(host.counters, o.labels);
    this.tracing = o.tracing !== false;
    this.healthService = o.healthService !== false;
    this.health = new Health(
      () => host.served().map((d) => d.name),
      () => missingDependencies(host),
    );
  }

  /** The admin endpoints, shared by the http transport and the admin port. */
  readonly admin: AdminHook = (path) => {
    switch (path) {
      case "/metrics":
        return this.#metricsReply();
      case "/health": {
        const status = this.health.status();
        return Promise.resolve(json(status === "SERVING" ? 200 : 503, { status }));
      }
      case "/ready":
        return this.health.readiness().then((r) => json(r.ready ? 200 : 503, r));
      default:
        return undefined;
    }
  };

  async #metricsReply(): Promise<AdminReply> {
    if (this.metrics === undefined)
      return { status: 404, contentType: "text/plain", body: "metrics are off (createApp({ telemetry }))\n" };
    return { status: 200, contentType: this.metrics.contentType, body: await this.metrics.text() };
  }
}

function json(status: number, value: unknown): AdminReply {
  return { status, contentType: "application/json", body: `${JSON.stringify(value)}\n` };
}

/**
 * Hard dependencies of the served services, not served here, with no fitting instance now that
 * this App can reach: one registered on transports this App lacks is named as such.
 */
async function missingDependencies(host: TelemetryHost): Promise<string[]> {
  const served = host.served();
  const missing: string[] = [];
  for (const s of served) {
    for (const d of s.depends) {
      if (d.soft || served.some((o) => o.name === d.service && semver.satisfies(o.version, d.range))) continue;
      const set = await host.watch(d.service);
      const fitting = set.instances().filter((i) => semver.satisfies(i.version, d.range));
      if (fitting.length === 0) missing.push(`${d.service} ${d.range}`);
      else if (host.reaches !== undefined && !fitting.some((i) => host.reaches?.(i)))
        missing.push(`${d.service} ${d.range} that this app can reach (registered ones share no transport with it)`);
    }
  }
  return [...new Set(missing)];
}
