/**
 * The watcher's side: `client.states.x.watch()` returns a `StateView` driven by a `Replica`.
 * It subscribes first (its own broadcast subscription on the service's event path), then
 * fetches a snapshot over the service's rpc path, and fetches a new one whenever the replica
 * asks (gap, new epoch, heartbeat ahead). When heartbeats stop for three intervals, or the
 * owner's last heartbeat says it stopped, it says `owner-absent`, and resyncs (subscribing again
 * after a silence: a lost subscription is a reconnect). A snapshot older than the epoch that
 * asked for it is never followed by another at once: the next waits, backing off.
 */
import type { Logger } from "pino";
import { codec, type Codec } from "../codec/index.js";
import type {
  CallOptions,
  ServiceDescriptor,
  ShardedStateHandle,
  ShardedStateView,
  StateChange,
  StateHandle,
  StateStatus,
  StateView,
  Subscription,
} from "../descriptor.js";
import { outsideContext } from "../call/callctx.js";
import { shardOfKeyValue } from "../shard-key.js";
import { Code, FanError } from "../errors.js";
import { asMessage, asSnapshot, type StateSnapshot } from "./protocol.js";
import { Replica, type ReplicaChange } from "./replica.js";
import { changes } from "./changes.js";
import { ShardSet } from "./shard-set.js";

/** What a watcher needs from its App. */
export interface WatchHost {
  readonly log: Logger;
  readonly heartbeatMs: number;
  /** Throws when this App cannot receive the updates of `service`'s states. */
  check(service: ServiceDescriptor): void;
  /** A view opened (closed with the App); returns its removal. */
  opened(view: { close(): Promise<void> }): () => void;
  /** Subscribes to the updates of `service`'s state (of one shard of it, for a sharded state; a subscription of this watcher's own). */
  subscribe(
    service: ServiceDescriptor,
    state: string,
    shard: number | undefined,
    deliver: (payload: unknown) => void,
  ): Promise<{ close(): Promise<void> }>;
  /** Asks an instance of `service` (the shard's owner, for a sharded state) for the snapshot of `state`. */
  snapshot(service: ServiceDescriptor, state: string, shard: number | undefined, opts?: CallOptions): Promise<unknown>;
}

/** Heartbeats missed before the owner counts as absent. */
const MISSED_BEATS = 3;
/** The longest wait, in heartbeat periods, before another snapshot after ones older than the updates seen. */
const MAX_BACKOFF_BEATS = 16;
/** Owners remembered by epoch (for log lines). */
const OWNERS_KEPT = 16;

class View<T> implements StateView<T> {
  readonly replica: Replica;
  #status: StateStatus = "connecting";
  #reason: string | undefined;
  #sub: { close(): Promise<void> } | undefined;
  #subscribing: Promise<void> | undefined;
  #syncing: Promise<void> | undefined;
  #heard = Date.now();
  #lastTick = Date.now();
  /** Heartbeat windows missed in a row. */
  #missed = 0;
  #watchdog: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  /** No snapshot before this time (after one that was older than the updates that asked for it). */
  #notBefore = 0;
  #backoff = 0;
  /** The last `loud` absence reason warned about (`#setStatus`). */
  #warnedLoud: string | undefined;
  /** The last pair of epochs warned about (one warn line per pair). */
  #warnedBehind: string | undefined;
  /** Owners by epoch, from heartbeats and snapshots. */
  readonly #owners = new Map<number, string>();
  readonly #forget: () => void;
  #decoded: { epoch: number; seq: number; value: T } | undefined;
  readonly #fns = new Set<(c: StateChange<T>) => void>();
  readonly #statusFns = new Set<(s: StateStatus, r: string | undefined) => void>();
  readonly #codec: Codec<T>;
  readonly #name: string;
  /** Resolves once the first snapshot attempt finished (either way). */
  readonly first: Promise<void>;
  #firstDone!: () => void;

  constructor(
    private readonly service: ServiceDescriptor,
    private readonly state: string,
    private readonly host: WatchHost,
    /** The shard of a sharded state this view replicates. */
    readonly shard?: number,
  ) {
    const st = service.states[state] as NonNullable<ServiceDescriptor["states"][string]>;
    this.replica = new Replica(st.mode === "delta");
    this.#codec = codec<T>(st.schema);
    this.#name = shard === undefined ? `${service.name}.${state}` : `${service.name}.${state} shard ${shard}`;
    this.first = new Promise((r) => (this.#firstDone = r));
    this.#forget = host.opened(this);
    // A view outlives the call that opened it: its snapshots must not inherit that call's deadline.
    outsideContext(() => {
      void this.#connect();
      this.#watchdog = setInterval(() => this.#checkHeartbeat(), host.heartbeatMs).unref();
    });
  }

  get current(): T | undefined {
    const r = this.replica;
    if (!r.hasValue) return undefined;
    const d = this.#decoded;
    if (d !== undefined && d.epoch === r.epoch && d.seq === r.seq) return d.value;
    const value = this.#codec.decode(r.wire, this.#name);
    this.#decoded = { epoch: r.epoch, seq: r.seq, value };
    return value;
  }
  get epoch(): number {
    return this.replica.epoch;
  }
  get seq(): number {
    return this.replica.seq;
  }
  get status(): StateStatus {
    return this.#status;
  }
  get reason(): string | undefined {
    return this.#reason;
  }

  subscribe(fn: (c: StateChange<T>) => void): () => void {
    this.#fns.add(fn);
    return () => void this.#fns.delete(fn);
  }

  onStatus(fn: (s: StateStatus, r: string | undefined) => void): () => void {
    this.#statusFns.add(fn);
    return () => void this.#statusFns.delete(fn);
  }

  ready(timeoutMs = 10_000): Promise<T> {
    if (this.#status === "live" && this.replica.hasValue) return Promise.resolve(this.current as T);
    return new Promise<T>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(t);
        offC();
        offS();
      };
      const check = (): void => {
        if (this.#status === "live" && this.replica.hasValue) {
          done();
          resolve(this.current as T);
        } else if ((this.#status as StateStatus) === "closed") {
          done();
          reject(new FanError(Code.CANCELLED, `the watch of ${this.#name} was closed`));
        }
      };
      const t = setTimeout(() => {
        done();
        reject(
          new FanError(
            Code.UNAVAILABLE,
            `${this.#name} has no live value after ${timeoutMs} ms (${this.#status}${this.#reason === undefined ? "" : `: ${this.#reason}`})`,
          ),
        );
      }, timeoutMs);
      const offC = this.subscribe(check);
      const offS = this.onStatus(check);
    });
  }

  async close(): Promise<void> {
    if (this.#status === "closed") return;
    this.#forget();
    clearInterval(this.#watchdog);
    clearTimeout(this.#retry);
    this.#setStatus("closed", undefined);
    this.#fns.clear();
    await this.#subscribing?.catch(() => undefined);
    await this.#sub?.close().catch(() => undefined);
    this.#sub = undefined;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StateChange<T>> {
    // Values are decoded per change here (the replica moves on while the consumer is away).
    yield* changes<StateChange<T>>(
      (push, wake) => {
        const off = this.subscribe((c) => push({ ...c, value: c.value }));
        const offS = this.onStatus(wake);
        return () => {
          off();
          offS();
        };
      },
      () => {
        const r = this.replica;
        if (!(r.hasValue && r.synced)) return [];
        return [{ value: this.current as T, patch: undefined, epoch: r.epoch, seq: r.seq, cause: "snapshot" }];
      },
      () => this.#status === "closed",
    );
  }

  // -------------------------------------------------------------------------------------------

  async #connect(): Promise<void> {
    this.#subscribing ??= (async () => {
      const old = this.#sub;
      this.#sub = undefined;
      await old?.close().catch(() => undefined);
      while (this.#status !== "closed") {
        try {
          const sub = await this.host.subscribe(this.service, this.state, this.shard, (p) => this.#receive(p));
          if ((this.#status as StateStatus) === "closed") await sub.close();
          else this.#sub = sub;
          return;
        } catch (e) {
          this.#setStatus(
            this.#status === "connecting" ? "connecting" : "resyncing",
            `subscribing failed: ${(e as Error).message}`,
          );
          await new Promise((r) => setTimeout(r, Math.min(1000, this.host.heartbeatMs)));
        }
      }
    })().finally(() => (this.#subscribing = undefined));
    await this.#subscribing;
    this.replica.resync();
    this.#sync();
  }

  #receive(payload: unknown): void {
    if (this.#status === "closed") return;
    const m = asMessage(payload);
    if (m === undefined) {
      this.host.log.warn({ state: this.#name }, "malformed state update dropped");
      return;
    }
    this.#heard = Date.now();
    if (m.k === "h") {
      if (m.o !== undefined) this.#ownerIs(m.e, m.o);
      if (m.last === true) {
        this.#ownerLeft(m.e, m.s, m.o);
        return;
      }
    }
    const changes = this.replica.receive(m);
    this.#emit(changes);
    if (this.replica.wantsSnapshot) {
      if (this.#status === "live") this.#setStatus("resyncing", `gap or new epoch at ${m.e}/${m.s}`);
      this.#sync();
    } else if (this.#status === "owner-absent") this.#setStatus("live", undefined);
  }

  /**
   * The owner this view follows sent its last heartbeat (it stopped gracefully or lost its
   * leadership): owner-absent now, and a snapshot from whoever owns the state next. A last
   * heartbeat of another epoch is another owner's, not this view's.
   */
  #ownerLeft(epoch: number, seq: number, owner: string | undefined): void {
    if (epoch !== this.replica.epoch) return;
    this.#setStatus(
      "owner-absent",
      `the owner${owner === undefined ? "" : ` ${owner}`} stopped publishing at ${epoch}/${seq}`,
    );
    this.replica.resync();
    this.#sync();
  }

  #ownerIs(epoch: number, owner: string): void {
    if (this.#owners.get(epoch) === owner) return;
    if (this.#owners.size >= OWNERS_KEPT) this.#owners.clear();
    this.#owners.set(epoch, owner);
  }

  /**
   * The snapshot is older than an epoch seen in the updates meanwhile: two owners publish on
   * this stream and the newer one is not among those that answer snapshots (or a snapshot
   * crossed an owner's restart). Asking again at once would loop; wait, longer each time.
   */
  #behind(snap: StateSnapshot, newer: number): void {
    const beat = this.host.heartbeatMs;
    this.#backoff = Math.min(MAX_BACKOFF_BEATS * beat, Math.max(beat, 2 * this.#backoff));
    this.#notBefore = Date.now() + this.#backoff;
    const pair = `${snap.e}<${newer}`;
    const fields = {
      state: this.#name,
      snapshotEpoch: snap.e,
      snapshotOwner: snap.o ?? this.#owners.get(snap.e) ?? "unknown",
      newerEpoch: newer,
      newerOwner: this.#owners.get(newer) ?? "unknown",
      nextSnapshotInMs: this.#backoff,
    };
    if (pair === this.#warnedBehind) {
      this.host.log.debug(fields, "state snapshot still older than the updates seen");
      return;
    }
    this.#warnedBehind = pair;
    this.host.log.warn(
      {
        ...fields,
        hint:
          "two owners publish this state and snapshots reach only the older one (or a snapshot crossed a restart): " +
          "serve the state from one instance, make the service @unique, or shard the state",
      },
      "state snapshot older than the updates seen; following it and backing off",
    );
  }

  /** Fetches snapshots until the replica is in sequence (one loop at a time). */
  #sync(): void {
    if (this.#syncing !== undefined || this.#subscribing !== undefined || this.#status === "closed") return;
    this.#syncing = (async () => {
      while (this.replica.wantsSnapshot && this.#status !== "closed") {
        const wait = this.#notBefore - Date.now();
        if (wait > 0) {
          await new Promise((r) => (this.#retry = setTimeout(r, wait)));
          continue;
        }
        let snap: StateSnapshot | undefined;
        try {
          snap = asSnapshot(await this.host.snapshot(this.service, this.state, this.shard));
          if (snap === undefined) throw new FanError(Code.INTERNAL, "malformed snapshot reply");
        } catch (e) {
          // No snapshot: whatever the cause (no instance, a dead one, an error), the replica cannot be trusted.
          const err = FanError.from(e);
          this.#setStatus("owner-absent", err.message, notAdmitted(err));
          this.#firstDone();
          await new Promise((r) => (this.#retry = setTimeout(r, Math.min(1000, this.host.heartbeatMs))));
          continue;
        }
        this.#heard = Date.now();
        if (snap.o !== undefined) this.#ownerIs(snap.e, snap.o);
        this.#emit(this.replica.restore(snap));
        const newer = this.replica.behind;
        if (newer !== undefined) this.#behind(snap, newer);
        else this.#backoff = 0;
      }
      if (this.#status !== "closed") this.#setStatus("live", undefined);
      this.#firstDone();
    })().finally(() => {
      this.#syncing = undefined;
      if (this.replica.wantsSnapshot) this.#sync();
    });
  }

  #checkHeartbeat(): void {
    const now = Date.now();
    const tick = now - this.#lastTick;
    this.#lastTick = now;
    if (this.#status === "closed" || this.#subscribing !== undefined) return;
    // This process was stalled (GC, a starved CPU): updates may be waiting unread; not the owner's silence.
    if (tick > 2 * this.host.heartbeatMs) {
      this.#heard = now;
      return;
    }
    const silent = now - this.#heard;
    if (silent <= MISSED_BEATS * this.host.heartbeatMs) {
      this.#missed = 0;
      return;
    }
    this.#heard = now;
    this.#missed++;
    // Already absent: keep the reason the last snapshot attempt gave (`no instance is registered`
    // says more than the silence, which is counted from the last check only).
    if (this.#status !== "owner-absent")
      this.#setStatus("owner-absent", `no heartbeat from the owner for ${silent} ms`);
    // First ask the owner for a snapshot; if heartbeats still do not come, the subscription is
    // what is lost (a broker restart): subscribe again.
    this.replica.resync();
    if (this.#missed === 1) this.#sync();
    else void this.#connect();
  }

  #emit(changes: readonly ReplicaChange[]): void {
    if (changes.length === 0 || this.#fns.size === 0) return;
    for (const c of changes) {
      let decoded: { v: T } | undefined;
      const self = this;
      const change: StateChange<T> = {
        epoch: c.epoch,
        seq: c.seq,
        patch: c.patch,
        cause: c.cause,
        get value(): T {
          // Decoded on first read: a subscriber that only follows patches pays nothing.
          // Read it in the callback: later, the replica has moved on (the iterator copies it at once).
          decoded ??= { v: self.current as T };
          return decoded.v;
        },
      };
      for (const fn of this.#fns) {
        try {
          fn(change);
        } catch (e) {
          this.host.log.error({ err: e, state: this.#name }, "state watcher failed");
        }
      }
    }
  }

  /**
   * `loud`: a reason the user must act on (the owner runs a version the client's range does not
   * admit), warned when it is new even while already absent: it may come after `no instance is
   * registered`, once the owner registers, and the watch would otherwise wait with no word.
   */
  #setStatus(s: StateStatus, reason: string | undefined, loud = false): void {
    if (this.#status === s && this.#reason === reason) return;
    if (this.#status === "closed") return;
    const was = this.#status;
    this.#status = s;
    this.#reason = reason;
    const r = this.replica;
    // One warning per absence; a new reason while absent (the owner's lease ran out, a breaker
    // opened) is a debug line, else a watcher logs twice a second until the owner returns.
    if (s === "owner-absent" && (was !== "owner-absent" || (loud && reason !== this.#warnedLoud))) {
      if (loud) this.#warnedLoud = reason;
      this.host.log.warn({ state: this.#name, reason }, "state owner absent");
    } else if (s === "owner-absent") this.host.log.debug({ state: this.#name, reason }, "state owner still absent");
    else if (s === "resyncing")
      this.host.log.info({ state: this.#name, reason, epoch: r.epoch, seq: r.seq }, "state resyncing");
    else if (s === "live" && (was === "resyncing" || was === "owner-absent"))
      this.host.log.info({ state: this.#name, epoch: r.epoch, seq: r.seq, snapshots: r.snapshots }, "state live again");
    for (const fn of [...this.#statusFns]) fn(s, reason);
  }
}

/** True for a snapshot refused because the major runs only versions the client's range does not admit (app-states.ts). */
function notAdmitted(e: FanError): boolean {
  const d = e.details as { notAdmitted?: unknown } | undefined;
  return Array.isArray(d?.notAdmitted);
}

/** The client's handle of a state (`client.states.x`; a `ShardedStateHandle` for a `@shard` state). */
export function stateHandle(
  service: ServiceDescriptor,
  name: string,
  host: WatchHost,
): StateHandle<unknown> | ShardedStateHandle<unknown> {
  const st = Object.hasOwn(service.states, name) ? service.states[name] : undefined;
  const missing = (): FanError => new FanError(Code.UNIMPLEMENTED, `${service.name} has no state ${name}`);
  const label = `${service.name}.${name}`;
  /** The shard a watch or get names: undefined for a state that is not sharded (and must name none). */
  const shardFor = (where: unknown): number | undefined => {
    if (st === undefined) throw missing();
    if (st.sharded !== true) {
      if (where === undefined || typeof where === "function") return undefined;
      throw new FanError(Code.INVALID_ARGUMENT, `${label} is not sharded: watch() and get() name no shard`);
    }
    if (typeof where !== "object" || where === null)
      throw new FanError(
        Code.INVALID_ARGUMENT,
        `${label} is sharded (@shard): name the shard, watch({ shard }) or watch({ key })`,
      );
    const w = where as { shard?: unknown; key?: unknown };
    if (w.shard !== undefined) {
      const n = w.shard;
      if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n >= service.shards)
        throw new FanError(Code.INVALID_ARGUMENT, `${label} has shards 0..${service.shards - 1}, not ${String(n)}`);
      return n;
    }
    if (w.key !== undefined) return shardOfKeyValue(w.key, service.shards);
    throw new FanError(
      Code.INVALID_ARGUMENT,
      `${label} is sharded (@shard): name the shard, watch({ shard }) or watch({ key })`,
    );
  };
  function watch(a?: unknown, b?: unknown): StateView<unknown> | Promise<Subscription> {
    const fn = (typeof a === "function" ? a : b) as ((value: unknown) => void) | undefined;
    let shard: number | undefined;
    try {
      shard = shardFor(typeof a === "function" ? undefined : a);
      host.check(service);
    } catch (e) {
      if (fn === undefined) throw e;
      return Promise.reject(e);
    }
    const view = new View<unknown>(service, name, host, shard);
    if (fn === undefined) return view;
    view.subscribe((c) => {
      if (view.replica.hasValue) fn(c.value);
    });
    return view.first.then(() => ({ unsubscribe: () => view.close() }));
  }
  const get = async (a?: unknown, b?: CallOptions): Promise<unknown> => {
    const sharded = st?.sharded === true;
    const shard = shardFor(sharded ? a : undefined);
    const opts = (sharded ? b : a) as CallOptions | undefined;
    const snap = asSnapshot(await host.snapshot(service, name, shard, opts));
    if (snap === undefined || snap.v === undefined)
      throw new FanError(Code.UNAVAILABLE, `${label}${shard === undefined ? "" : ` shard ${shard}`} has no value yet`);
    return codec((st as NonNullable<typeof st>).schema).decode(snap.v, label);
  };
  const watchAll = (): ShardSet<unknown> => {
    if (st === undefined) throw missing();
    host.check(service);
    return new ShardSet(
      label,
      Array.from(
        { length: service.shards },
        (_, shard) => new View<unknown>(service, name, host, shard) as ShardedStateView<unknown>,
      ),
    );
  };
  if (st?.sharded === true)
    return {
      shards: service.shards,
      watchAll,
      shardOf: (key: unknown) => shardOfKeyValue(key, service.shards),
      get,
      watch,
    } as unknown as ShardedStateHandle<unknown>;
  return { get, watch } as StateHandle<unknown>;
}
