/**
 * The breakers an App holds open or half-open, published in the registry so `fanc ls` can show,
 * per instance, which callers have given up on it. Breakers are client state: each App writes
 * `/fan/{cluster}/breakers/{service}/{appId}` (a `BreakerReport`) with a lease of its own, so
 * the key vanishes with the App; it is deleted when every breaker of the service closed again.
 * Writes follow breaker transitions (rare), coalesced: at most one write per service in flight.
 */
import type { Logger } from "pino";
import { breakersPrefix } from "../discovery/keys.js";
import type { Lease, Registry } from "../discovery/registry.js";
import type { BreakerState, PolicyEvent } from "./events.js";

/** One breaker as published. */
export interface PublishedBreaker {
  readonly instanceId: string;
  readonly state: Exclude<BreakerState, "closed">;
  /** Epoch ms of the transition into this state. */
  readonly since: number;
}

/** The value of a breakers key. */
export interface BreakerReport {
  readonly appId: string;
  readonly service: string;
  readonly breakers: readonly PublishedBreaker[];
}

/** Publishes one App's open and half-open breakers. */
export class BreakerBoard {
  readonly #registry: () => Registry | undefined;
  readonly #cluster: string;
  readonly #appId: string;
  readonly #ttlMs: number;
  readonly #log: Logger;
  /** service → instanceId → breaker not closed. */
  readonly #open = new Map<string, Map<string, PublishedBreaker>>();
  readonly #writing = new Set<string>();
  readonly #dirty = new Set<string>();
  #lease: Promise<Lease> | undefined;
  #closed = false;

  /** `registry` returns undefined while the App's discovery is not open (nothing is written then). */
  constructor(registry: () => Registry | undefined, cluster: string, appId: string, ttlMs: number, log: Logger) {
    this.#registry = registry;
    this.#cluster = cluster;
    this.#appId = appId;
    this.#ttlMs = ttlMs;
    this.#log = log;
  }

  /** A policy listener: follows breaker transitions. */
  readonly listener = (e: PolicyEvent): void => {
    if (e.type !== "breaker" || this.#closed) return;
    let byInstance = this.#open.get(e.service);
    if (byInstance === undefined) {
      byInstance = new Map();
      this.#open.set(e.service, byInstance);
    }
    if (e.to === "closed") byInstance.delete(e.instanceId);
    else byInstance.set(e.instanceId, { instanceId: e.instanceId, state: e.to, since: Date.now() });
    this.#schedule(e.service);
  };

  /** Revokes the lease (every key of this App goes at once) and stops publishing. */
  async close(): Promise<void> {
    this.#closed = true;
    const lease = this.#lease;
    this.#lease = undefined;
    if (lease === undefined) return;
    try {
      await (await lease).revoke();
    } catch (e) {
      this.#log.warn({ err: e }, "breakers: revoking the lease failed; the keys go when it expires");
    }
  }

  #schedule(service: string): void {
    if (this.#writing.has(service)) {
      this.#dirty.add(service);
      return;
    }
    this.#writing.add(service);
    void this.#write(service)
      .catch((e: unknown) => this.#log.warn({ err: e, service }, "breakers: publishing the breaker states failed"))
      .finally(() => {
        this.#writing.delete(service);
        if (this.#dirty.delete(service) && !this.#closed) this.#schedule(service);
      });
  }

  async #write(service: string): Promise<void> {
    const registry = this.#registry();
    if (registry === undefined || this.#closed) return;
    const key = `${breakersPrefix(this.#cluster, service)}${this.#appId}`;
    const breakers = [...(this.#open.get(service)?.values() ?? [])];
    if (breakers.length === 0) {
      await registry.delete(key);
      return;
    }
    const report: BreakerReport = { appId: this.#appId, service, breakers };
    await registry.put(key, JSON.stringify(report), { lease: await this.#currentLease(registry) });
  }

  #currentLease(registry: Registry): Promise<Lease> {
    if (this.#lease === undefined) {
      const p = registry.grantLease(this.#ttlMs);
      this.#lease = p;
      p.then(
        (l) =>
          l.onLost(() => {
            if (this.#lease !== p || this.#closed) return;
            this.#lease = undefined;
            for (const service of this.#open.keys()) this.#schedule(service);
          }),
        () => {
          if (this.#lease === p) this.#lease = undefined;
        },
      );
    }
    return this.#lease;
  }
}

/** The published breakers of `service` by instance id: `[{ appId, state, since }]`. */
export async function publishedBreakers(
  registry: Registry,
  cluster: string,
  service: string,
): Promise<Map<string, { appId: string; state: string; since: number }[]>> {
  const out = new Map<string, { appId: string; state: string; since: number }[]>();
  for (const kv of (await registry.list(breakersPrefix(cluster, service))).items) {
    let report: BreakerReport;
    try {
      report = JSON.parse(kv.value) as BreakerReport;
    } catch {
      continue;
    }
    if (!Array.isArray(report.breakers)) continue;
    for (const b of report.breakers)
      out.set(b.instanceId, [
        ...(out.get(b.instanceId) ?? []),
        { appId: report.appId, state: b.state, since: b.since },
      ]);
  }
  return out;
}
