/**
 * The Directory over any Registry: registration with a lease and keep-alive, one watched
 * cache per service, and resolution by strategy from the cache (no I/O on a call).
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { pino } from "pino";
import { Code, FanError } from "../errors.js";
import { servicePrefix } from "./keys.js";
import { Registrar, type RegisterInfo } from "./registrar.js";
import type { Registry } from "./registry.js";
import { WatchedSet, checkRange } from "./instance-set.js";
import { builtinStrategies, rendezvous, type PickContext, type Strategy } from "./strategies.js";
import type { Directory, InstanceInfo, InstanceSet, Registration, ResolveOptions } from "./types.js";

/** Options of a Directory. */
export interface DirectoryOptions {
  readonly cluster: string;
  /** Lease TTL of registrations, ms (default 5000; etcd rounds up to whole seconds). */
  readonly leaseTtlMs?: number;
  readonly log?: Logger;
  /** This process's app id, for prefer-local (default: a random id). */
  readonly appId?: string;
}

/** Default registration lease TTL, ms. */
export const DEFAULT_LEASE_TTL_MS = 5000;

/** A `Directory` over a `Registry`, with a synchronous `pick` and in-flight tracking for p2c. */
export class RegistryDirectory implements Directory {
  /** This process's app id: instances registered with it are "local" to prefer-local. */
  readonly appId: string;
  private readonly registrar: Registrar;
  private readonly sets = new Map<string, Promise<WatchedSet>>();
  private readonly ready = new Map<string, WatchedSet>();
  private readonly inFlightCounts = new Map<string, number>();
  private shardStrategy: Strategy = rendezvous;
  private readonly log: Logger;
  private closed = false;

  constructor(
    private readonly registry: Registry,
    private readonly opts: DirectoryOptions,
  ) {
    this.log = opts.log ?? pino({ level: "silent" });
    this.appId = opts.appId ?? randomUUID();
    servicePrefix(opts.cluster, "x"); // validates the cluster name now
    const ttl = opts.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
    if (!Number.isFinite(ttl) || ttl <= 0) throw new RangeError(`leaseTtlMs must be a positive number, got ${ttl}`);
    this.registrar = new Registrar(registry, opts.cluster, ttl, this.log);
  }

  register(info: RegisterInfo): Promise<Registration> {
    return this.registrar.register(info);
  }

  /** The shared cache of a service's instances; the first call lists and starts the watch. */
  watch(service: string): Promise<InstanceSet> {
    return this.watched(service);
  }

  async resolve(service: string, opts: ResolveOptions = {}): Promise<InstanceInfo> {
    const set = this.ready.get(service) ?? (await this.watched(service));
    return this.pickFrom(set, opts);
  }

  /**
   * Synchronous resolve from the cache of a service already watched (`watch` or `resolve`
   * called before). Throws `UNAVAILABLE` as `resolve` does, or when the service is not watched yet.
   */
  pick(service: string, opts: ResolveOptions = {}): InstanceInfo {
    const set = this.ready.get(service);
    if (set === undefined) {
      throw new FanError(Code.UNAVAILABLE, `${service} is not watched yet (call directory.watch first)`, {
        details: { service },
      });
    }
    return this.pickFrom(set, opts);
  }

  /** Counts an in-flight call on an instance (for p2c); call the returned function when it ends. */
  acquire(instanceId: string): () => void {
    this.inFlightCounts.set(instanceId, (this.inFlightCounts.get(instanceId) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.inFlightCounts.get(instanceId) ?? 1) - 1;
      if (n <= 0) this.inFlightCounts.delete(instanceId);
      else this.inFlightCounts.set(instanceId, n);
    };
  }

  /** In-flight calls this client has on an instance. */
  inFlight(instanceId: string): number {
    return this.inFlightCounts.get(instanceId) ?? 0;
  }

  /** Replaces the `shard` strategy (the sharding issue's hook). */
  setShardStrategy(fn: Strategy): void {
    this.shardStrategy = fn;
  }

  async waitFor(service: string, range: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const set = await this.watched(service);
    if (set.candidates(range, undefined).list.length > 0) return;
    await new Promise<void>((resolve, reject) => {
      const finish = (err?: FanError): void => {
        off();
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const off = set.onChange(() => {
        if (set.candidates(range, undefined).list.length > 0) finish();
      });
      const timer = setTimeout(() => finish(unavailable(set, range, ` within ${timeoutMs} ms`)), timeoutMs);
      const onAbort = (): void => finish(new FanError(Code.CANCELLED, `waiting for ${service} ${range} was cancelled`));
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Deregisters every instance registered here and stops every watch. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.registrar.close();
    const sets = [...this.sets.values()];
    this.sets.clear();
    this.ready.clear();
    await Promise.allSettled(sets.map(async (p) => (await p).close()));
  }

  private watched(service: string): Promise<WatchedSet> {
    if (this.closed)
      return Promise.reject(
        new FanError(Code.UNAVAILABLE, `cannot look up ${service}: the App is stopped (its discovery is closed)`),
      );
    let p = this.sets.get(service);
    if (p === undefined) {
      const set = new WatchedSet(this.registry, servicePrefix(this.opts.cluster, service), service, this.log);
      p = set.start().then(() => {
        this.ready.set(service, set);
        return set;
      });
      p.catch(() => this.sets.delete(service));
      this.sets.set(service, p);
    }
    return p;
  }

  private pickFrom(set: WatchedSet, opts: ResolveOptions): InstanceInfo {
    const c = set.candidates(opts.range, opts.transport);
    if (c.list.length === 0) throw unavailable(set, opts.range, "", opts.transport);
    const strategy = opts.strategy === "shard" ? this.shardStrategy : builtinStrategies[opts.strategy ?? "round-robin"];
    if (strategy === undefined)
      throw new FanError(Code.INVALID_ARGUMENT, `unknown resolution strategy ${JSON.stringify(opts.strategy)}`);
    const ctx: PickContext = {
      appId: this.appId,
      inFlight: (id) => this.inFlightCounts.get(id) ?? 0,
      cursor: c.cursor,
      ...(opts.shardKey === undefined ? {} : { shardKey: opts.shardKey }),
    };
    return strategy(c.list, ctx);
  }
}

/** `UNAVAILABLE` naming the range asked for and the versions available. */
function unavailable(set: WatchedSet, range: string | undefined, suffix: string, transport?: string): FanError {
  if (range !== undefined && range !== "") checkRange(range);
  const versions = set.versions();
  const wanted = `${set.service}${range === undefined || range === "" ? "" : ` ${range}`}${transport === undefined ? "" : ` over ${transport}`}`;
  const have = versions.length === 0 ? "no instance is registered" : `versions available: ${versions.join(", ")}`;
  return new FanError(Code.UNAVAILABLE, `no instance of ${wanted}${suffix} (${have})`, {
    details: {
      service: set.service,
      range: range ?? "*",
      available: versions,
      ...(transport === undefined ? {} : { transport }),
    },
  });
}
