/**
 * The in-memory registry: the embedded default, with etcd's semantics (one store revision
 * that every write bumps, create/mod revisions per key, leases with a TTL, watches that replay
 * history from a revision, compaction that turns an old watch into a `reset`).
 *
 * Leases are kept alive implicitly (the owner is this process); `pauseKeepAlive` and
 * `expireLease` simulate a frozen or wiped owner so tests can run the same suite as on etcd.
 */
import type { KeyValue, Lease, PutOptions, Registry, RegistryWrite, Watch, WatchEvent } from "./registry.js";

interface Entry {
  value: string;
  createRevision: number;
  modRevision: number;
  lease?: string;
}

interface HistoryEvent {
  readonly revision: number;
  readonly key: string;
  /** Undefined for a delete. */
  readonly kv?: KeyValue;
}

interface MemWatch {
  readonly prefix: string;
  readonly onEvent: (ev: WatchEvent) => void;
  closed: boolean;
}

/** Options of a memory registry. */
export interface MemoryRegistryOptions {
  /** Events kept for watches from a past revision before automatic compaction (default 10 000). */
  readonly historyLimit?: number;
}

/** An in-memory `Registry` with revisions, leases, watches and compaction. */
export class MemoryRegistry implements Registry {
  private readonly data = new Map<string, Entry>();
  private readonly leases = new Map<string, MemLease>();
  private readonly watches = new Set<MemWatch>();
  private history: HistoryEvent[] = [];
  private readonly historyLimit: number;
  private rev = 1;
  private compacted = 0;
  private nextLeaseId = 1;
  private closed = false;

  constructor(opts: MemoryRegistryOptions = {}) {
    this.historyLimit = opts.historyLimit ?? 10_000;
  }

  /** The current store revision. */
  get revision(): number {
    return this.rev;
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.check();
    const e = this.data.get(key);
    return e === undefined ? undefined : toKv(key, e);
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<number | undefined> {
    this.check();
    checkKey(key);
    if (typeof value !== "string") throw new TypeError(`registry put ${key}: value must be a string`);
    const leaseId = opts.lease?.id;
    if (leaseId !== undefined && !this.leases.has(leaseId)) {
      throw new Error(`registry put ${key}: lease ${leaseId} not found (expired or revoked)`);
    }
    const old = this.data.get(key);
    if (opts.ifAbsent && old !== undefined) return undefined;
    const revision = ++this.rev;
    if (old?.lease !== undefined && old.lease !== leaseId) this.leases.get(old.lease)?.keys.delete(key);
    const entry: Entry = { value, createRevision: old?.createRevision ?? revision, modRevision: revision };
    if (leaseId !== undefined) {
      entry.lease = leaseId;
      this.leases.get(leaseId)?.keys.add(key);
    }
    this.data.set(key, entry);
    this.record({ revision, key, kv: toKv(key, entry) });
    return revision;
  }

  async delete(key: string): Promise<void> {
    this.check();
    this.remove(key);
  }

  async writeAll(writes: readonly RegistryWrite[]): Promise<void> {
    this.check();
    for (const w of writes) {
      checkKey(w.key);
      if (w.value !== null && typeof w.value !== "string")
        throw new TypeError(`registry put ${w.key}: value must be a string`);
    }
    // All in one synchronous run: watchers get every event before anything else runs.
    for (const w of writes) {
      if (w.value === null) this.remove(w.key);
      else void this.put(w.key, w.value);
    }
  }

  async list(prefix: string): Promise<{ readonly items: readonly KeyValue[]; readonly revision: number }> {
    this.check();
    const items: KeyValue[] = [];
    for (const [key, e] of this.data) if (key.startsWith(prefix)) items.push(toKv(key, e));
    items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { items, revision: this.rev };
  }

  async watch(prefix: string, fromRevision: number, onEvent: (ev: WatchEvent) => void): Promise<Watch> {
    this.check();
    const w: MemWatch = { prefix, onEvent, closed: false };
    if (fromRevision < this.compacted) {
      const revision = this.rev;
      queueMicrotask(() => {
        if (!w.closed) onEvent({ type: "reset", revision });
        w.closed = true;
      });
      return {
        close: async () => {
          w.closed = true;
        },
      };
    }
    for (const h of this.history) if (h.revision > fromRevision && h.key.startsWith(prefix)) deliver(w, h);
    this.watches.add(w);
    return {
      close: async () => {
        w.closed = true;
        this.watches.delete(w);
      },
    };
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    this.check();
    if (!Number.isFinite(ttlMs) || ttlMs <= 0)
      throw new RangeError(`lease TTL must be a positive number of ms, got ${ttlMs}`);
    const lease = new MemLease(String(this.nextLeaseId++), ttlMs, this);
    this.leases.set(lease.id, lease);
    return lease;
  }

  /** Drops history up to `revision` (default: now); watches from before it get a `reset`. */
  compact(revision = this.rev): void {
    this.compacted = Math.max(this.compacted, Math.min(revision, this.rev));
    this.history = this.history.filter((h) => h.revision > this.compacted);
  }

  /** Test hook: stop renewing a lease, as if its owner froze or died; it expires after its TTL. */
  pauseKeepAlive(leaseId: string): void {
    this.leases.get(leaseId)?.pause();
  }

  /** Test hook: expire a lease now, as if the registry was wiped or the owner was gone too long. */
  expireLease(leaseId: string): void {
    this.leases.get(leaseId)?.expire();
  }

  /** Same as `expireLease`, named as on `EtcdRegistry`. */
  async revokeLeaseById(leaseId: string): Promise<void> {
    this.expireLease(leaseId);
  }

  async leaseAlive(id: string): Promise<boolean> {
    this.check();
    return this.leases.has(id);
  }

  /** Ids of the live leases. */
  leaseIds(): string[] {
    return [...this.leases.keys()];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watches) w.closed = true;
    this.watches.clear();
    for (const l of this.leases.values()) l.stop();
  }

  /** @internal Removes a lease and deletes its keys. */
  dropLease(lease: MemLease): void {
    if (this.leases.get(lease.id) !== lease) return;
    this.leases.delete(lease.id);
    for (const key of [...lease.keys]) this.remove(key);
  }

  private remove(key: string): void {
    const e = this.data.get(key);
    if (e === undefined) return;
    if (e.lease !== undefined) this.leases.get(e.lease)?.keys.delete(key);
    this.data.delete(key);
    this.record({ revision: ++this.rev, key });
  }

  private record(h: HistoryEvent): void {
    this.history.push(h);
    if (this.history.length > this.historyLimit)
      this.compact(this.history[this.history.length - this.historyLimit]!.revision - 1);
    for (const w of this.watches) if (h.key.startsWith(w.prefix)) deliver(w, h);
  }

  private check(): void {
    if (this.closed) throw new Error("registry is closed");
  }
}

/** A memory lease: renewed implicitly until paused, revoked or expired. */
class MemLease implements Lease {
  readonly keys = new Set<string>();
  private readonly lost: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private done = false;

  constructor(
    readonly id: string,
    readonly ttlMs: number,
    private readonly owner: MemoryRegistry,
  ) {}

  onLost(fn: () => void): void {
    this.lost.push(fn);
  }

  async revoke(): Promise<void> {
    if (this.done) return;
    this.stop();
    this.owner.dropLease(this);
  }

  pause(): void {
    if (this.done || this.timer !== undefined) return;
    this.timer = setTimeout(() => this.expire(), this.ttlMs);
    this.timer.unref();
  }

  expire(): void {
    if (this.done) return;
    this.stop();
    this.owner.dropLease(this);
    for (const fn of this.lost) queueMicrotask(fn);
  }

  stop(): void {
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }
}

function deliver(w: MemWatch, h: HistoryEvent): void {
  const ev: WatchEvent =
    h.kv === undefined
      ? { type: "delete", key: h.key, revision: h.revision }
      : { type: "put", kv: h.kv, revision: h.revision };
  queueMicrotask(() => {
    if (!w.closed) w.onEvent(ev);
  });
}

function toKv(key: string, e: Entry): KeyValue {
  const kv = { key, value: e.value, modRevision: e.modRevision, createRevision: e.createRevision };
  return e.lease === undefined ? kv : { ...kv, lease: e.lease };
}

function checkKey(key: string): void {
  if (typeof key !== "string" || key.length === 0) throw new TypeError("registry key must be a non-empty string");
}

let shared: MemoryRegistry | undefined;

/** The process-wide memory registry that `createDiscovery("memory")` uses, so apps in one process see each other. */
export function sharedMemoryRegistry(): MemoryRegistry {
  shared ??= new MemoryRegistry();
  return shared;
}
