/**
 * The etcd registry (the `etcd3` package, gRPC). Scale-out is etcd's own clustering: pass
 * every endpoint of the cluster and the client spreads calls and fails over between them.
 *
 * Behaviour beyond a thin wrapper, each for a known failure mode:
 * - a watch that etcd cancels (its start revision was compacted, or any other cancel) becomes
 *   a `reset` event so the caller re-lists; a revision going backwards (a wiped etcd) too;
 * - watches reconnect with a short capped backoff (200 ms to 2 s), not etcd3's default of up
 *   to 30 s, so an etcd restart is invisible once it is back;
 * - unary calls have a deadline (default 5 s) so a dead cluster fails calls instead of hanging;
 * - a put that etcd rejects because the lease is gone fires the lease's `onLost`;
 * - an error about reaching etcd (gRPC UNAVAILABLE or DEADLINE_EXCEEDED: down, or a TLS
 *   handshake refused) names the endpoints: gRPC's own message does not.
 */
import {
  Etcd3,
  EtcdLeaseInvalidError,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  type IOptions,
  type Lease as EtcdLease,
} from "etcd3";
import type { Logger } from "pino";
import { pino } from "pino";
import type { KeyValue, Lease, PutOptions, Registry, RegistryWrite, Watch, WatchEvent } from "./registry.js";

/** Options of an etcd registry. */
export interface EtcdRegistryOptions {
  /** Deadline of each unary call, ms (default 5000). */
  readonly callTimeoutMs?: number;
  /** Connect timeout, ms (default 3000). */
  readonly dialTimeoutMs?: number;
  readonly log?: Logger;
  /** TLS to etcd (use `https://` hosts in the spec: `etcd://https://10.0.0.5:2379`): PEM contents. */
  readonly tls?: EtcdTlsOptions;
  /** etcd's own authentication (user and password). */
  readonly auth?: { readonly username: string; readonly password: string };
}

/** TLS material for etcd, PEM contents (not paths). */
export interface EtcdTlsOptions {
  /** The CA that signed etcd's certificate (default: the system's roots). */
  readonly ca?: string | Buffer;
  /** Client certificate and key, for etcd's `--client-cert-auth`. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
}

/**
 * Parses `etcd://host:port[,host:port...]` (or a bare `host:port,...`) into host list.
 * Throws a clear error on anything else.
 */
export function parseEtcdSpec(spec: string): string[] {
  const body = spec.startsWith("etcd://") ? spec.slice("etcd://".length) : spec;
  const hosts = body.split(",").map((h) => h.trim().replace(/\/+$/, ""));
  for (const h of hosts) {
    const m = /^(?:https?:\/\/)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(h);
    if (m === null || Number(m[2]) === 0 || Number(m[2]) > 65535) {
      throw new TypeError(
        `bad etcd endpoint ${JSON.stringify(h)} in ${JSON.stringify(spec)}: expected etcd://host:port[,host:port...]`,
      );
    }
  }
  return hosts;
}

/** A `Registry` on an etcd cluster. */
/** etcd's default limit of operations in one transaction (`--max-txn-ops`). */
const MAX_TXN_OPS = 128;

export class EtcdRegistry implements Registry {
  /** The underlying etcd3 client (for tools that need more than the Registry interface). */
  readonly client: Etcd3;
  private readonly leases = new Map<string, EtcdLeaseHandle>();
  private readonly log: Logger;
  /** The endpoints, for error messages. */
  private readonly where: string;
  private closed = false;

  constructor(hosts: string | readonly string[], opts: EtcdRegistryOptions = {}) {
    const list = typeof hosts === "string" ? parseEtcdSpec(hosts) : hosts.flatMap((h) => parseEtcdSpec(h));
    this.where = list.join(",");
    const callTimeout = opts.callTimeoutMs ?? 5000;
    this.log = opts.log ?? pino({ level: "silent" });
    const options: IOptions = {
      hosts: list,
      dialTimeout: opts.dialTimeoutMs ?? 3000,
      // gRPC's own reconnect backoff grows to 120 s: after an etcd outage of a few seconds the
      // channel could wait 10 s and more before trying again, so registrations came back late.
      // Capped like the watches' backoff below.
      grpcOptions: { "grpc.initial_reconnect_backoff_ms": 200, "grpc.max_reconnect_backoff_ms": 2000 },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeout }),
      faultHandling: {
        host: () => passThroughPolicy,
        watchBackoff: new CappedBackoff(200, 2000) as unknown as WatchBackoff,
      },
    };
    const tls = opts.tls;
    if (tls !== undefined) {
      const buf = (v: string | Buffer | undefined): Buffer | undefined =>
        v === undefined ? undefined : Buffer.isBuffer(v) ? v : Buffer.from(v);
      options.credentials = {
        rootCertificate: buf(tls.ca) ?? Buffer.alloc(0),
        ...(tls.key === undefined ? {} : { privateKey: buf(tls.key) }),
        ...(tls.cert === undefined ? {} : { certChain: buf(tls.cert) }),
      } as NonNullable<IOptions["credentials"]>;
    }
    if (opts.auth !== undefined) options.auth = { username: opts.auth.username, password: opts.auth.password };
    this.client = new Etcd3(options);
  }

  /** `e`, its message naming the endpoints when it is about reaching etcd. */
  private named(e: unknown): unknown {
    if ((e instanceof GRPCUnavailableError || e instanceof GRPCDeadlineExceededError) && !e.message.startsWith("etcd "))
      e.message = `etcd ${this.where}: ${e.message}`;
    return e;
  }

  /** `p`, its rejection naming the endpoints (see `named`). */
  private reaching<T>(p: Promise<T>): Promise<T> {
    return p.catch((e: unknown) => {
      throw this.named(e);
    });
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.reaching(this.client.get(key).exec());
    const kv = res.kvs[0];
    return kv === undefined ? undefined : toKv(kv);
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<number | undefined> {
    if (typeof key !== "string" || key === "") throw new TypeError("registry key must be a non-empty string");
    if (typeof value !== "string") throw new TypeError(`registry put ${key}: value must be a string`);
    const put = this.client.put(key).value(value);
    if (opts.lease !== undefined) put.lease(opts.lease.id);
    try {
      if (!opts.ifAbsent) return Number((await this.reaching(put.exec())).header.revision);
      const res = await this.client.if(key, "Create", "==", 0).then(put).commit();
      return res.succeeded ? Number(res.header.revision) : undefined;
    } catch (e) {
      if (e instanceof EtcdLeaseInvalidError && opts.lease !== undefined) this.leases.get(opts.lease.id)?.markLost(e);
      throw this.named(e);
    }
  }

  async delete(key: string): Promise<void> {
    await this.reaching(this.client.delete().key(key).exec());
  }

  async writeAll(writes: readonly RegistryWrite[]): Promise<void> {
    for (const w of writes)
      if (typeof w.key !== "string" || w.key === "") throw new TypeError("registry key must be a non-empty string");
    // etcd takes at most 128 operations per transaction (--max-txn-ops): more are written in
    // runs of 128, each atomic.
    for (let i = 0; i < writes.length; i += MAX_TXN_OPS) {
      const run = writes.slice(i, i + MAX_TXN_OPS);
      const ops = run.map((w) =>
        w.value === null ? this.client.delete().key(w.key) : this.client.put(w.key).value(w.value),
      );
      // A transaction needs a comparison: a key's mod revision is never below 0 (0 when absent).
      await this.reaching(
        this.client
          .if((run[0] as RegistryWrite).key, "Mod", ">", -1)
          .then(...ops)
          .commit(),
      );
    }
  }

  async list(prefix: string): Promise<{ readonly items: readonly KeyValue[]; readonly revision: number }> {
    const res = await this.reaching(this.client.getAll().prefix(prefix).exec());
    return { items: res.kvs.map(toKv), revision: Number(res.header.revision) };
  }

  async watch(prefix: string, fromRevision: number, onEvent: (ev: WatchEvent) => void): Promise<Watch> {
    const watcher = await this.reaching(
      this.client
        .watch()
        .prefix(prefix)
        .startRevision(String(fromRevision + 1))
        .create(),
    );
    let last = fromRevision;
    let open = true;
    const reset = (why: string, err?: unknown): void => {
      if (!open) return;
      open = false;
      this.log.warn({ prefix, why, err }, "etcd watch reset");
      void watcher.cancel().catch(() => undefined);
      this.currentRevision().then(
        (revision) => onEvent({ type: "reset", revision }),
        () => onEvent({ type: "reset", revision: last }),
      );
    };
    watcher.on("data", (res) => {
      for (const ev of res.events) {
        if (!open) return;
        const revision = Number(ev.kv.mod_revision);
        if (revision < last) return reset("revision went backwards (etcd wiped?)");
        last = revision;
        if (ev.type === "Put") onEvent({ type: "put", kv: toKv(ev.kv), revision });
        else onEvent({ type: "delete", key: ev.kv.key.toString(), revision });
      }
    });
    watcher.on("error", (err) => reset("watch cancelled by etcd (compacted?)", err));
    watcher.on("disconnected", (err) => this.log.debug({ prefix, err }, "etcd watch disconnected; reconnecting"));
    return {
      close: async () => {
        open = false;
        await watcher.cancel().catch(() => undefined);
      },
    };
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    if (!Number.isFinite(ttlMs) || ttlMs <= 0)
      throw new RangeError(`lease TTL must be a positive number of ms, got ${ttlMs}`);
    const ttlS = Math.max(1, Math.ceil(ttlMs / 1000));
    const lease = this.client.lease(ttlS);
    const handle = new EtcdLeaseHandle(lease, ttlS * 1000, this.log, (id) => this.leases.delete(id));
    lease.on("lost", (err) => handle.markLost(err));
    handle.setId(await this.reaching(lease.grant()));
    lease.on("keepaliveSucceeded", () => handle.acked());
    handle.startWatchdog();
    this.leases.set(handle.id, handle);
    return handle;
  }

  /** Compacts etcd's history up to `revision` (default: now); older watches get a `reset`. */
  async compact(revision?: number): Promise<void> {
    const rev = revision ?? (await this.currentRevision());
    await this.client.kv.compact({ revision: String(rev), physical: true });
  }

  async leaseAlive(id: string): Promise<boolean> {
    const res = await this.reaching(this.client.leaseClient.leaseTimeToLive({ ID: id }));
    // etcd answers TTL -1 for a lease that expired or was revoked.
    return Number(res.TTL) >= 0;
  }

  /** Revokes a lease by id, as an operator or a wiped cluster would (its keys go; the owner sees it lost). */
  async revokeLeaseById(id: string): Promise<void> {
    await this.client.leaseClient.leaseRevoke({ ID: id });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.leases.values()) l.release();
    this.leases.clear();
    this.client.close();
  }

  private async currentRevision(): Promise<number> {
    const res = await this.client.get("\u0000").exec();
    return Number(res.header.revision);
  }
}

/** Our Lease over an etcd3 Lease (which keeps itself alive at TTL/3). */
class EtcdLeaseHandle implements Lease {
  private leaseId = "";
  private readonly lostFns: (() => void)[] = [];
  private lost = false;
  private lastAck = Date.now();
  private watchdog: NodeJS.Timeout | undefined;

  constructor(
    private readonly lease: EtcdLease,
    readonly ttlMs: number,
    private readonly log: Logger,
    private readonly forget: (id: string) => void,
  ) {}

  get id(): string {
    return this.leaseId;
  }

  setId(id: string): void {
    this.leaseId = id;
    this.lastAck = Date.now();
  }

  /** A keep-alive was acknowledged. */
  acked(): void {
    this.lastAck = Date.now();
  }

  /**
   * Declares the lease lost when no keep-alive was acknowledged for a whole TTL: etcd expires
   * it then, while etcd3 itself only gives up after 2 × TTL. A leader cut off from etcd thus
   * stops leading before a standby can be elected, not a TTL after.
   */
  startWatchdog(): void {
    this.watchdog = setInterval(
      () => {
        if (Date.now() - this.lastAck > this.ttlMs)
          this.markLost(new Error(`no keep-alive acknowledged for ${this.ttlMs} ms`));
      },
      Math.max(100, this.ttlMs / 4),
    );
    this.watchdog.unref();
  }

  onLost(fn: () => void): void {
    if (this.lost) queueMicrotask(fn);
    else this.lostFns.push(fn);
  }

  markLost(err: unknown): void {
    if (this.lost) return;
    this.lost = true;
    this.log.warn({ lease: this.leaseId, err }, "etcd lease lost");
    clearInterval(this.watchdog);
    this.lease.release();
    this.forget(this.leaseId);
    for (const fn of this.lostFns.splice(0)) queueMicrotask(fn);
  }

  async revoke(): Promise<void> {
    clearInterval(this.watchdog);
    this.lost = true;
    this.lostFns.length = 0;
    this.forget(this.leaseId);
    await this.lease.revoke();
  }

  /** Stops keep-alive without revoking (the lease expires on its own). */
  release(): void {
    clearInterval(this.watchdog);
    this.lost = true;
    this.lostFns.length = 0;
    this.lease.release();
  }
}

type WatchBackoff = NonNullable<NonNullable<IOptions["faultHandling"]>["watchBackoff"]>;

/** A host policy that lets every call through (etcd3's default breaker blocks a host for 5 s after 3 failures). */
const passThroughPolicy = {
  execute: async <T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => T) =>
    fn({ signal: new AbortController().signal, attempt: 1 }),
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
} as unknown as ReturnType<NonNullable<NonNullable<IOptions["faultHandling"]>["host"]>>;

/** Exponential backoff for watch reconnects, capped (cockatiel's IBackoff shape). */
class CappedBackoff {
  constructor(
    readonly duration: number,
    private readonly max: number,
  ) {}

  next(): CappedBackoff {
    return new CappedBackoff(Math.min(this.duration * 2, this.max), this.max);
  }
}

function toKv(kv: {
  key: Buffer;
  value: Buffer;
  mod_revision: string;
  create_revision: string;
  lease: string;
}): KeyValue {
  const out = {
    key: kv.key.toString(),
    value: kv.value.toString(),
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
  };
  return kv.lease === "0" || kv.lease === "" ? out : { ...out, lease: kv.lease };
}
