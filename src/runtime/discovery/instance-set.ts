/**
 * The client-side cache of one service's instances: list the prefix, then watch it from the
 * list's revision. A `reset` (history compacted) or a broken watch re-lists. Each key keeps
 * the revision it was last seen at, so an event older than the cache (a late event from a
 * replaced watch) is ignored and the cache converges on the registry's state.
 */
import type { Logger } from "pino";
import semver from "semver";
import { Code, FanError } from "../errors.js";
import type { TransportName } from "../descriptor.js";
import type { KeyValue, Registry, Watch, WatchEvent } from "./registry.js";
import type { InstanceInfo, InstanceSet } from "./types.js";

/** The candidates for one (range, transport) filter, recomputed only when the set changes. */
export interface Candidates {
  readonly list: readonly InstanceInfo[];
  /** Round-robin cursor for this filter. */
  readonly cursor: { n: number };
}

interface Cached {
  readonly info: InstanceInfo;
  readonly revision: number;
  /** The registry lease the record was written with (its App's: `Registrar`). */
  readonly lease: string | undefined;
}

/** How many removed instances' leases a set remembers (`gone`), the oldest forgotten first. */
const LEFT_LEASES = 1024;

/** A live, watched cache of one service's instances. */
export class WatchedSet implements InstanceSet {
  private readonly byKey = new Map<string, Cached>();
  /** Revisions of deletes, so a late put older than its delete stays deleted. */
  private readonly tombstones = new Map<string, number>();
  /** Per instance id no longer in the set: the lease its last record was written with. */
  private readonly leftLeases = new Map<string, string | undefined>();
  private snapshot: readonly InstanceInfo[] | undefined = [];
  private everyRecord: readonly InstanceInfo[] | undefined = [];
  private readonly filters = new Map<string, Candidates>();
  private readonly listeners = new Set<() => void>();
  private watch: Watch | undefined;
  private generation = 0;
  private relisting: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly registry: Registry,
    private readonly prefix: string,
    readonly service: string,
    private readonly log: Logger,
  ) {}

  /** Lists and starts watching; resolves when the cache holds the listed state. */
  async start(): Promise<void> {
    await this.relist();
  }

  /** Without the instances that are stopping: calls, pushes and dependencies count them as gone. */
  instances(): readonly InstanceInfo[] {
    this.snapshot ??= this.records().filter((i) => i.stopping !== true);
    return this.snapshot;
  }

  records(): readonly InstanceInfo[] {
    this.everyRecord ??= [...this.byKey.values()].map((c) => c.info);
    return this.everyRecord;
  }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * True once `instanceId`, not in the set, is known to be gone with its process: the lease its
   * record was written with expired or was revoked (a process killed, or its App closed after
   * draining). False while its record is there (a graceful stop keeps it, marked `stopping`, until
   * its calls drained), or while that lease lives: the App keeps it until it closed. A registry that cannot tell
   * (no `leaseAlive`), or a record seen without a lease: true once the record is gone.
   */
  async gone(instanceId: string): Promise<boolean> {
    if (this.records().some((i) => i.instanceId === instanceId)) return false;
    const lease = this.leftLeases.get(instanceId);
    if (lease === undefined || this.registry.leaseAlive === undefined) return true;
    return !(await this.registry.leaseAlive(lease));
  }

  /** The instances that satisfy `range` and advertise `transport` (cached per filter). */
  candidates(range: string | undefined, transport: TransportName | undefined): Candidates {
    const id = `${range ?? ""}|${transport ?? ""}`;
    let c = this.filters.get(id);
    if (c === undefined) {
      c = { list: this.filter(range, transport), cursor: { n: 0 } };
      this.filters.set(id, c);
    }
    return c;
  }

  /** The distinct versions currently registered, sorted. */
  versions(): string[] {
    return [...new Set(this.instances().map((i) => i.version))].sort(semver.compare);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.generation++;
    this.listeners.clear();
    await this.watch?.close().catch(() => undefined);
  }

  private filter(range: string | undefined, transport: TransportName | undefined): InstanceInfo[] {
    const r = range === undefined || range === "" || range === "*" ? undefined : checkRange(range);
    return this.instances().filter(
      (i) =>
        (transport === undefined || i.endpoints[transport] !== undefined) &&
        (r === undefined || semver.satisfies(i.version, r)),
    );
  }

  private relist(): Promise<void> {
    this.relisting ??= this.doRelist().finally(() => (this.relisting = undefined));
    return this.relisting;
  }

  private async doRelist(): Promise<void> {
    const gen = ++this.generation;
    await this.watch?.close().catch(() => undefined);
    this.watch = undefined;
    const { items, revision } = await this.registry.list(this.prefix);
    if (gen !== this.generation || this.closed) return;
    this.replace(items);
    const watch = await this.registry.watch(this.prefix, revision, (ev) => {
      if (gen === this.generation) this.onEvent(ev);
    });
    if (gen !== this.generation || this.closed) await watch.close();
    else this.watch = watch;
  }

  private replace(items: readonly KeyValue[]): void {
    const kept = new Set(items.map((kv) => kv.key));
    for (const [key, c] of this.byKey) if (!kept.has(key)) this.left(c);
    this.byKey.clear();
    this.tombstones.clear();
    for (const kv of items) this.store(kv, kv.modRevision);
    this.changed();
  }

  private onEvent(ev: WatchEvent): void {
    if (ev.type === "reset") {
      this.log.warn(
        { targetService: this.service, revision: ev.revision },
        "discovery watch reset (history compacted); re-listing",
      );
      this.relist().catch((e: unknown) => this.relistFailed(e));
      return;
    }
    if (ev.type === "put") {
      if (this.store(ev.kv, ev.revision)) this.changed();
      return;
    }
    const cached = this.byKey.get(ev.key);
    if (cached !== undefined && cached.revision > ev.revision) return;
    this.tombstones.set(ev.key, ev.revision);
    if (cached !== undefined) this.left(cached);
    if (this.byKey.delete(ev.key)) this.changed();
  }

  private relistFailed(e: unknown): void {
    if (this.closed) return;
    this.log.error({ err: e, targetService: this.service }, "discovery re-list failed; retrying in 1 s");
    setTimeout(() => void this.relist().catch((err: unknown) => this.relistFailed(err)), 1000).unref();
  }

  /** Stores one put; false when it is older than what the cache holds or does not parse. */
  private store(kv: KeyValue, revision: number): boolean {
    const cached = this.byKey.get(kv.key);
    if (cached !== undefined && cached.revision >= revision) return false;
    if ((this.tombstones.get(kv.key) ?? 0) > revision) return false;
    const info = parseInstance(this.service, kv, this.log);
    if (info === undefined) return false;
    this.byKey.set(kv.key, { info, revision, lease: kv.lease });
    this.leftLeases.delete(info.instanceId);
    return true;
  }

  /** Remembers the lease of an instance whose record went (`gone`). */
  private left(c: Cached): void {
    const id = c.info.instanceId;
    this.leftLeases.delete(id);
    this.leftLeases.set(id, c.lease);
    if (this.leftLeases.size > LEFT_LEASES) this.leftLeases.delete(this.leftLeases.keys().next().value as string);
  }

  private changed(): void {
    this.snapshot = undefined;
    this.everyRecord = undefined;
    this.filters.clear();
    for (const fn of this.listeners) {
      try {
        fn();
      } catch (e) {
        this.log.error({ err: e, targetService: this.service }, "discovery change listener threw");
      }
    }
  }
}

/** Validates a semver range, throwing `INVALID_ARGUMENT` naming it when it is not one. */
export function checkRange(range: string): string {
  const r = semver.validRange(range);
  if (r === null)
    throw new FanError(Code.INVALID_ARGUMENT, `invalid version range ${JSON.stringify(range)}`, { details: { range } });
  return r;
}

/** Parses an instance record; logs and returns undefined when it is not one. */
export function parseInstance(service: string, kv: KeyValue, log: Logger): InstanceInfo | undefined {
  let v: unknown;
  try {
    v = JSON.parse(kv.value);
  } catch {
    log.warn({ key: kv.key }, "discovery: ignoring an instance record that is not JSON");
    return undefined;
  }
  const problem = instanceProblem(v);
  if (problem !== undefined) {
    log.warn({ key: kv.key, problem }, "discovery: ignoring a malformed instance record");
    return undefined;
  }
  const o = v as Record<string, unknown>;
  const instanceId = kv.key.slice(kv.key.lastIndexOf("/") + 1);
  return {
    ...(o as unknown as InstanceInfo),
    service,
    instanceId,
    shards: (o.shards as number[] | undefined) ?? [],
    load: (o.load as number | undefined) ?? 0,
  };
}

function instanceProblem(v: unknown): string | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "not an object";
  const o = v as Record<string, unknown>;
  if (typeof o.version !== "string" || semver.valid(o.version) === null) return "version is not a semver version";
  const ep = o.endpoints;
  if (typeof ep !== "object" || ep === null || Array.isArray(ep)) return "endpoints is not an object";
  if (Object.values(ep).some((e) => typeof e !== "string")) return "an endpoint is not a string";
  if (o.shards !== undefined && !(Array.isArray(o.shards) && o.shards.every(Number.isInteger)))
    return "shards is not a list of integers";
  if (typeof o.appId !== "string") return "appId is not a string";
  if (typeof o.startedAt !== "number") return "startedAt is not a number";
  if (o.load !== undefined && typeof o.load !== "number") return "load is not a number";
  if (o.events !== undefined && typeof o.events !== "string") return "events is not a transport name";
  return undefined;
}
