/**
 * The registry: a hierarchical key/value store with leases and watches. Two implementations
 * with identical behaviour: `memory.ts` (the embedded default) and `etcd.ts` (etcd3).
 * Discovery (`directory.ts`), config (`config.ts`), leader election and id generation are
 * built on this interface only. Keys are `/`-separated strings; values are strings (JSON).
 */

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  /** Revision of the last change to this key. */
  readonly modRevision: number;
  /** Revision at which this key was created. */
  readonly createRevision: number;
  readonly lease?: string;
}

export type WatchEvent =
  | { readonly type: "put"; readonly kv: KeyValue; readonly revision: number }
  | { readonly type: "delete"; readonly key: string; readonly revision: number }
  /** History was compacted past the watch's revision: re-list, then watch again. */
  | { readonly type: "reset"; readonly revision: number };

export interface Watch {
  close(): Promise<void>;
}

/** A lease kept alive by the registry client until revoked or lost. */
export interface Lease {
  readonly id: string;
  readonly ttlMs: number;
  /** Called once if the lease expires or keep-alive fails past the TTL (etcd down, wiped). */
  onLost(fn: () => void): void;
  revoke(): Promise<void>;
}

export interface PutOptions {
  readonly lease?: Lease;
  /** Only write when the key does not exist (compare createRevision = 0). Returns false otherwise. */
  readonly ifAbsent?: boolean;
}

/** One write of `writeAll`: `value` null deletes the key. */
export interface RegistryWrite {
  readonly key: string;
  readonly value: string | null;
}

export interface Registry {
  get(key: string): Promise<KeyValue | undefined>;
  /** Resolves with the revision of the write, or `undefined` when `ifAbsent` found the key. */
  put(key: string, value: string, opts?: PutOptions): Promise<number | undefined>;
  delete(key: string): Promise<void>;
  /**
   * Writes and deletes several keys at once: a watcher sees all of them or none (one etcd
   * transaction per 128 keys, etcd's limit). Optional: a registry without it is written key by key.
   */
  writeAll?(writes: readonly RegistryWrite[]): Promise<void>;
  /** All keys under `prefix`, with the store revision the list was read at. */
  list(prefix: string): Promise<{ readonly items: readonly KeyValue[]; readonly revision: number }>;
  /** Watch `prefix` for changes after `fromRevision` (exclusive). */
  watch(prefix: string, fromRevision: number, onEvent: (ev: WatchEvent) => void): Promise<Watch>;
  grantLease(ttlMs: number): Promise<Lease>;
  /**
   * Whether the lease `id` (a `KeyValue.lease`, anyone's) still lives: false once it expired or
   * was revoked. Optional: a registry without it cannot tell a graceful deregister (the key
   * deleted, the lease kept while the instance drains) from a death.
   */
  leaseAlive?(id: string): Promise<boolean>;
  close(): Promise<void>;
}
