/**
 * The owner's side of replicated states: one `StateOwner` per (service, state) in the App that
 * serves the service. It keeps the wire value, numbers every update within an epoch, publishes
 * updates and periodic heartbeats on the service's event path, answers snapshots, and (when
 * configured) saves the latest snapshot so a restarted owner resumes value and sequence.
 * An owner publishes only while an instance of its service is bound in this App (for a
 * `@unique` service: while it leads); each activation starts a new epoch, and when the last
 * instance unbinds (a graceful stop, a lost leadership) it sends a last heartbeat so that its
 * watchers say `owner-absent` at once.
 */
import type { Logger } from "pino";
import semver from "semver";
import { codec, type Codec } from "../codec/index.js";
import type { ShardOwnership } from "../call/ownership.js";
import { keyPart, shardOfKey } from "../call/shards.js";
import type { ServiceDescriptor, StateDescriptor } from "../descriptor.js";
import { Code, FanError } from "../errors.js";
import { nextEnvelopeId } from "../ids.js";
import type { Envelope, EnvelopeHeaders } from "../transports/transport.js";
import { traceProduced } from "../telemetry/calls.js";
import { applyMergePatchInPlace, diffMergePatch, type MergePatch } from "./merge-patch.js";
import { type StateMessage, type StateSnapshot, stateEvent } from "./protocol.js";
import { wirePatch } from "./typed-patch.js";

/** What the publisher of a state offers its owner (`app.publisher(Def).state(name)`, `ctx.state(name)`). */
export interface StatePublisher<T> {
  /** The current value (undefined before the first `set`). Decoded on demand; do not mutate it. */
  value(): T | undefined;
  /** Replaces the value (`@delta` states publish the difference as a merge patch). Throws INVALID_ARGUMENT when it does not fit the IDL. */
  set(value: T): void;
  /**
   * `@delta` states: applies an RFC 7396 merge patch (typed values as leaves, `null` removes;
   * typed by `MergePatch<T>`). The result is checked against the IDL first; an invalid patch
   * throws INVALID_ARGUMENT and is neither applied nor published.
   */
  patch(patch: MergePatch<T>): void;
  /** The epoch and sequence number of the last update. */
  readonly epoch: number;
  readonly seq: number;
}

/** The state (and shard) a store key holds, for the store's log lines. */
export interface SnapshotOf {
  readonly state: string;
  readonly shard?: number;
}

/** Where owners keep the latest snapshot between runs (`states.persist`). */
export interface SnapshotStore {
  load(key: string): Promise<StateSnapshot | undefined>;
  /**
   * Saves (throttled by the store); the latest call wins, and a snapshot older (epoch, then
   * sequence) than the one stored is not written: another owner took the state over since.
   */
  save(key: string, snap: () => StateSnapshot, of?: SnapshotOf): void;
  /** Writes what `save` holds for `key` now, if anything (a shard handed over: its new owner loads it next). */
  flush?(key: string): Promise<void>;
  close(): Promise<void>;
}

/** What owners need from their App. */
export interface OwnerHost {
  readonly cluster: string;
  readonly log: Logger;
  readonly heartbeatMs: number;
  readonly store: SnapshotStore | undefined;
  /** Publishes on the event transport of `service`. */
  publish(service: ServiceDescriptor, env: Envelope): Promise<void>;
  /** True when this App serves `service` (the only place its snapshots can be asked for). */
  serves(service: string): boolean;
  /**
   * The event a state's updates travel under. Default `stateEvent(state, shard)` (the
   * in-memory mock's); an App's is one stream per major version (`stateStream`).
   */
  readonly eventOf?: (service: ServiceDescriptor, state: string, shard: number | undefined) => string;
  /** Who owns, for watchers' log lines (an App's id). */
  readonly ownerId?: string;
}

/** How long a stopping App waits for its owners' last heartbeats to be published. */
const LAST_HEARTBEAT_WAIT_MS = 2000;

/** Epoch for a new owner or leader: the clock, but always past the previous one. */
function nextEpoch(previous: number): number {
  return Math.max(Date.now(), previous + 1);
}

/** One owned state. */
export class StateOwner<T = unknown> implements StatePublisher<T> {
  epoch: number = nextEpoch(0);
  seq = 0;
  /** Updates that could not be published (watchers catch up at the next heartbeat). */
  unpublished = 0;
  #wire: unknown = undefined;
  #has = false;
  /**
   * The epoch of the value held: the saved snapshot's when it was taken from the store, this
   * owner's own once it published; -1 for none. A saved snapshot of a later epoch (another
   * owner published and saved since) replaces the value at `activate`.
   */
  #held = -1;
  /** The sequence number of the value held at `#held` (a snapshot of the same epoch further on is newer). */
  #heldSeq = 0;
  #active = false;
  /** `leave` and `release` calls so far: an activation one of them overtook publishes nothing. */
  #stops = 0;
  /** The activation under way, and the `#stops` it started at (one after a stop is another). */
  #activating: { readonly stops: number; readonly done: Promise<void> } | undefined;
  /** Stopped publishing after being active (sent its last heartbeat): snapshots are refused until it publishes again. */
  #left = false;
  /** Stopped publishing after being active (left, or its shard released): writes are lost, and said (`#lost`). */
  #ended = false;
  #lostWrites = 0;
  #value: { seq: number; value: T } | undefined;
  readonly #codec: Codec<T>;
  readonly #name: string;
  readonly #log: Logger;
  readonly #event: string;
  /** `o` of heartbeats and snapshots: the App and version that publish. */
  readonly #owner: string | undefined;
  /** The owner of another major whose legacy save was not resumed (logged once). */
  #otherMajorSaw: string | undefined;

  constructor(
    readonly service: ServiceDescriptor,
    readonly state: StateDescriptor,
    private readonly host: OwnerHost,
    /** A sharded state's shard (its own value, epoch, sequence and event name). */
    readonly shard?: number,
    /** Throws when this instance may not update the value (a shard it does not own). */
    private readonly guard?: () => void,
  ) {
    this.#codec = codec<T>(state.schema);
    this.#name = `${service.name}.${state.name}`;
    this.#log = host.log.child({ state: this.#name, ...(shard === undefined ? {} : { shard }) });
    this.#event = host.eventOf?.(service, state.name, shard) ?? stateEvent(state.name, shard);
    this.#owner = host.ownerId === undefined ? undefined : `${host.ownerId} (${service.version})`;
  }

  get active(): boolean {
    return this.#active;
  }

  value(): T | undefined {
    if (!this.#has) return undefined;
    if (this.#value?.seq !== this.seq) this.#value = { seq: this.seq, value: this.#codec.decode(this.#wire) };
    return this.#value.value;
  }

  set(value: T): void {
    this.guard?.();
    const wire = this.#codec.encode(value, this.#name);
    if (this.state.mode === "delta" && this.#has) {
      const patch = diffMergePatch(this.#wire, wire);
      this.#wire = wire;
      if (patch !== undefined) this.#update("p", patch);
      return;
    }
    this.#wire = wire;
    this.#has = true;
    // A @delta owner patches its value in place: what it publishes in full must not be that object.
    this.#update("f", this.state.mode === "delta" ? structuredClone(wire) : wire);
  }

  patch(patch: unknown): void {
    if (this.state.mode !== "delta")
      throw new FanError(Code.FAILED_PRECONDITION, `${this.#name} is a @full state: use set()`);
    this.guard?.();
    if (!this.#has) {
      this.set(patch as T);
      return;
    }
    const wp = wirePatch(this.state.schema, this.#wire, patch, this.#name);
    this.#wire = applyMergePatchInPlace(this.#wire, wp);
    this.#update("p", wp);
  }

  /** The snapshot watchers start from (a copy for `@delta` states, whose value changes in place). */
  snapshot(): StateSnapshot {
    const o = this.#owner === undefined ? {} : { o: this.#owner };
    if (!this.#has) return { e: this.epoch, s: this.seq, ...o };
    return {
      e: this.epoch,
      s: this.seq,
      v: this.state.mode === "delta" ? structuredClone(this.#wire) : this.#wire,
      ...o,
    };
  }

  /** True once this owner stopped publishing its epoch (its last heartbeat sent): a snapshot of it would be of an epoch nobody continues. */
  get left(): boolean {
    return this.#left;
  }

  /**
   * Takes the saved snapshot (with `persist`): before the service's `start` hook, so the hook
   * sees it in `value()` and sets a first value only when there is none, and again at
   * `activate`, where a snapshot another owner saved after the one held replaces the value (a
   * `@unique` instance elected later, a shard gained back). A value the hook set over the
   * resumed one is kept. The sequence continues the saved one either way.
   */
  async resume(): Promise<void> {
    const store = this.host.store;
    if (store === undefined) return;
    const load = (key: string) =>
      store.load(key).catch((e: unknown) => {
        this.#log.warn({ err: e, key }, "loading the saved snapshot failed; starting from the current value");
        return undefined;
      });
    // Saved before each major had a key of its own: read once, when the new key has nothing,
    // and only when of this major (every major saved there: a 2.0 owner must not resume 1.x's value).
    const stops = this.#stops;
    const saved = (await load(this.#key())) ?? this.#sameMajor(await load(this.#key(false)));
    // Released or left meanwhile: what it loaded is not for this owner to hold now.
    if (saved === undefined || this.#stops !== stops) return;
    this.epoch = Math.max(this.epoch, saved.e);
    this.seq = Math.max(this.seq, saved.s);
    const newer = saved.e > this.#held || (saved.e === this.#held && saved.s > this.#heldSeq);
    if (saved.v === undefined || (this.#has && !newer)) return;
    const first = this.#held < 0;
    this.#wire = saved.v;
    this.#has = true;
    this.#held = saved.e;
    this.#heldSeq = saved.s;
    this.#value = undefined;
    this.#log.info(
      { seq: saved.s, savedEpoch: saved.e },
      first ? "resumed the saved snapshot" : "took the snapshot the owner before this one saved",
    );
  }

  /**
   * Starts publishing under a new epoch (after resuming a saved snapshot, when there is one).
   * Calls while one is under way share it; a `leave` or `release` while its snapshot loads
   * cancels it (the shard moved on, the leadership was lost): it publishes nothing.
   */
  activate(): Promise<void> {
    if (this.#active) return Promise.resolve();
    if (this.#activating?.stops === this.#stops) return this.#activating.done;
    const stops = this.#stops;
    const done: Promise<void> = this.#activate(stops).finally(() => {
      if (this.#activating?.done === done) this.#activating = undefined;
    });
    this.#activating = { stops, done };
    return done;
  }

  async #activate(stops: number): Promise<void> {
    await this.resume();
    if (this.#active) return;
    if (this.#stops !== stops) {
      this.#log.info(
        "not publishing: the state was released or left while its saved snapshot loaded (the shard moved on, or the leadership was lost)",
      );
      return;
    }
    this.epoch = nextEpoch(this.epoch);
    this.#held = this.epoch;
    this.#heldSeq = this.seq;
    this.#active = true;
    this.#left = false;
    this.#ended = false;
    this.#lostWrites = 0;
    // Only a publishing owner saves (a standby's updates must not replace the leader's save):
    // what it held until now is saved under its epoch.
    if (this.host.store !== undefined && this.#has)
      this.host.store.save(this.#key(), () => this.snapshot(), this.#of());
    this.heartbeat();
  }

  /**
   * Stops publishing with a last heartbeat (the instance unbound: a graceful stop or a lost
   * leadership), so watchers say `owner-absent` now rather than after three silent periods.
   * Resolves once the heartbeat is published (or failed: then the silence tells them).
   */
  leave(): Promise<void> {
    this.#stops++;
    if (!this.#active) return Promise.resolve();
    // The snapshot saved with the epoch's last writes is written now, not on the save delay:
    // the next owner (a new instance, another leader) resumes from it.
    const store = this.host.store;
    const saved = store !== undefined && this.#has ? store.flush?.(this.#key()).catch(() => undefined) : undefined;
    const last = this.#publish({
      k: "h",
      e: this.epoch,
      s: this.seq,
      i: this.host.heartbeatMs,
      ...this.#by(),
      last: true,
    });
    this.#active = false;
    this.#left = true;
    this.#ended = true;
    return saved === undefined ? last : Promise.all([last, saved]).then(() => undefined);
  }

  /**
   * A shard moved to another instance: stop publishing and forget the value and its sequence, so
   * that when the shard comes back its value is the saved snapshot (or empty at sequence 0),
   * never this stale one. With `handOver` (its calls settled, the new owner waits for this
   * release): the epoch's last heartbeat is sent and the snapshot written before it resolves, so
   * the new owner resumes the value with every write of this epoch, and watchers resync to it at
   * once.
   */
  release(handOver = false): Promise<void> {
    this.#stops++;
    const wasActive = this.#active;
    const last = handOver && wasActive ? this.leave() : undefined;
    this.#active = false;
    if (wasActive) this.#ended = true;
    // The pending save must hold the value as it was, not the empty one below.
    const store = this.host.store;
    let saved: Promise<void> | undefined;
    if (store !== undefined && this.#has) {
      const snap = this.snapshot();
      store.save(this.#key(), () => snap, this.#of());
      if (handOver) saved = store.flush?.(this.#key());
    }
    this.#wire = undefined;
    this.#has = false;
    this.#held = -1;
    this.#heldSeq = 0;
    this.#value = undefined;
    // The sequence goes with the value: when the shard comes back it continues the snapshot's
    // (resume), or starts at 0 with no value, never the forgotten value's number over nothing.
    // The epoch stays: the next one must be past it (`nextEpoch`).
    this.seq = 0;
    if (last === undefined && saved === undefined) return Promise.resolve();
    return Promise.all([last, saved?.catch(() => undefined)]).then(() => undefined);
  }

  /**
   * An update of an owner that stopped publishing (it left or released its shard): neither
   * published nor saved, so never silent: said once, until it publishes again.
   */
  #lost(): void {
    if (this.#lostWrites++ > 0) return;
    this.#log.warn(
      { epoch: this.epoch, seq: this.seq },
      `a write to ${this.#name}${this.shard === undefined ? "" : ` shard ${this.shard}`} came after this instance stopped publishing it (it is stopping, lost its leadership, or released the shard): it is neither published nor saved (later ones are not said again until it publishes again)`,
    );
  }

  /** Tells watchers the owner is alive and where its sequence is. */
  heartbeat(): void {
    if (this.#active)
      void this.#publish({ k: "h", e: this.epoch, s: this.seq, i: this.host.heartbeatMs, ...this.#by() });
  }

  #by(): { o?: string } {
    return this.#owner === undefined ? {} : { o: this.#owner };
  }

  #update(k: "f" | "p", v: unknown): void {
    this.seq++;
    this.#value = undefined;
    if (!this.#active) {
      // Before the first activation (a start hook's first value) it is published then.
      if (this.#ended) this.#lost();
      return;
    }
    if (this.host.store !== undefined && this.#has)
      this.host.store.save(this.#key(), () => this.snapshot(), this.#of());
    // An update carries its producer span (or the publishing call's trace); heartbeats none.
    const headers: EnvelopeHeaders = {};
    traceProduced(this.service.name, this.state.name, "state", headers);
    void this.#publish({ k, e: this.epoch, s: this.seq, v } as StateMessage, headers);
  }

  #publish(msg: StateMessage, headers: EnvelopeHeaders = {}): Promise<void> {
    const env: Envelope = {
      v: 1,
      id: nextEnvelopeId(),
      kind: "state",
      service: this.service.name,
      method: this.#event,
      version: this.service.version,
      headers,
      payload: msg,
      form: "wire",
    };
    return this.host.publish(this.service, env).catch((e: unknown) => {
      // Watchers see the sequence move past them at the next heartbeat and take a snapshot.
      if (this.unpublished++ % 1000 === 0)
        this.#log.warn(
          { err: e, seq: msg.s, unpublished: this.unpublished },
          "state update not published; watchers resync at the next heartbeat",
        );
    });
  }

  /**
   * `saved` unless its owner (`o`, "app (version)") ran another major; one saved before owners
   * named themselves (99bc5d9) is taken, as before: nothing says whose it is.
   */
  #sameMajor(saved: StateSnapshot | undefined): StateSnapshot | undefined {
    const version = saved?.o === undefined ? undefined : /\(([^()]+)\)$/.exec(saved.o)?.[1];
    if (version === undefined || semver.valid(version) === null) return saved;
    if (semver.major(version) === semver.major(this.service.version)) return saved;
    // resume() runs before the start hook and again at activate: one line.
    if (this.#otherMajorSaw === saved?.o) return undefined;
    this.#otherMajorSaw = saved?.o;
    this.#log.info(
      { savedBy: saved?.o, key: this.#key(false) },
      "not resuming the snapshot saved by another major under the key from before each major had its own",
    );
    return undefined;
  }

  /** What the store key holds, for the store's log lines. */
  #of(): SnapshotOf {
    return this.shard === undefined ? { state: this.#name } : { state: this.#name, shard: this.shard };
  }

  /** The store key of the snapshot: one per major, as the updates have a stream per major (`major` false: the key from before). */
  #key(major = true): string {
    const v = major ? `v${semver.major(this.service.version)}.` : "";
    const key = `fan.${this.host.cluster}.state.${this.service.name}.${v}${this.state.name}`;
    return this.shard === undefined ? key : `${key}.${this.shard}`;
  }
}

/** A sharded state's owner side (`ctx.states.carts` of a `state carts: ... @shard`). */
export interface ShardedStatePublisher<T> {
  /** The shard count of the service (`@shards(n)`, 16 by default). */
  readonly shards: number;
  /** The shards this instance owns now, whose values it publishes (not one still being handed over to it). */
  owned(): readonly number[];
  /**
   * The publisher of shard `n`: `value()` always; `set` and `patch` only while this instance
   * owns the shard (else FAILED_PRECONDITION naming the shard and its owner; UNAVAILABLE while
   * its previous owner has not released it to this instance yet).
   */
  shard(n: number): StatePublisher<T>;
  /** The shard of a key: the same hash as a `@shard(key)` method's call (docs/sharding.md). */
  shardOf(...key: readonly unknown[]): number;
  /** `shard(shardOf(...key))`. */
  forKey(...key: readonly unknown[]): StatePublisher<T>;
}

/** The owner side of a sharded state: one `StateOwner` per shard, made on first use. */
export class ShardedState<T = unknown> implements ShardedStatePublisher<T>, StatePublisher<T> {
  readonly shards: number;
  readonly #name: string;

  constructor(
    readonly service: ServiceDescriptor,
    readonly state: StateDescriptor,
    private readonly of: (shard: number) => StateOwner,
    private readonly view: () => ShardOwnership | undefined,
  ) {
    this.shards = service.shards;
    this.#name = `${service.name}.${state.name}`;
  }

  owned(): readonly number[] {
    return this.view()?.owned() ?? [];
  }

  shard(n: number): StatePublisher<T> {
    return this.of(n) as StatePublisher<unknown> as StatePublisher<T>;
  }

  shardOf(...key: readonly unknown[]): number {
    if (key.length === 0) throw new FanError(Code.INVALID_ARGUMENT, `${this.#name}: forKey/shardOf needs a key`);
    return shardOfKey(key.map(keyPart), this.shards);
  }

  forKey(...key: readonly unknown[]): StatePublisher<T> {
    return this.shard(this.shardOf(...key));
  }

  // A sharded state has no single value: the untyped `ctx.state(name)` gets this object, whose
  // StatePublisher members say so instead of publishing nothing.
  #whole(): FanError {
    return new FanError(Code.FAILED_PRECONDITION, `${this.#name} is sharded (@shard): use shard(n) or forKey(key)`);
  }
  value(): T | undefined {
    throw this.#whole();
  }
  set(_value: T): void {
    throw this.#whole();
  }
  patch(_patch: unknown): void {
    throw this.#whole();
  }
  get epoch(): number {
    throw this.#whole();
  }
  get seq(): number {
    throw this.#whole();
  }
}

/** The owners of one App, their activation with the served instances, and the heartbeat timer. */
export class StateOwners {
  /** Owners by service, state (and shard, for a sharded state). */
  readonly #owners = new Map<string, StateOwner>();
  readonly #sharded = new Map<string, ShardedState>();
  readonly #bound = new Map<string, number>();
  /** The shard ownership of each bound service with sharded states, and the removal of its listener. */
  readonly #ownership = new Map<string, { readonly view: ShardOwnership; readonly off: () => void }>();
  /** Last heartbeats on their way (a stopping App waits for them before its transports close). */
  readonly #leaving = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly host: OwnerHost) {}

  /**
   * The owner of `service`'s state `name` (a `ShardedState` for a `@shard` state); throws when
   * the App does not serve `service`.
   */
  owner(service: ServiceDescriptor, name: string): StateOwner | ShardedState {
    const st = this.#state(service, name);
    if (st.sharded === true) {
      const key = `${service.name}\u0000${name}`;
      let sh = this.#sharded.get(key);
      if (sh === undefined) {
        sh = new ShardedState(
          service,
          st,
          (n) => this.#shardOwner(service, st, n),
          () => this.#ownership.get(service.name)?.view,
        );
        this.#sharded.set(key, sh);
      }
      return sh;
    }
    return this.#single(service, st);
  }

  #state(service: ServiceDescriptor, name: string): StateDescriptor {
    const st = Object.hasOwn(service.states, name) ? service.states[name] : undefined;
    if (st === undefined) throw new FanError(Code.UNIMPLEMENTED, `${service.name} has no state ${name}`);
    if (!this.host.serves(service.name))
      throw new FanError(
        Code.FAILED_PRECONDITION,
        `state ${service.name}.${name} is owned by the app that serves ${service.name}; this app does not serve it`,
      );
    return st;
  }

  #single(service: ServiceDescriptor, st: StateDescriptor): StateOwner {
    const key = `${service.name}\u0000${st.name}`;
    let o = this.#owners.get(key);
    if (o === undefined) {
      o = new StateOwner(service, st, this.host);
      this.#owners.set(key, o);
      if ((this.#bound.get(service.name) ?? 0) > 0) void o.activate();
    }
    return o;
  }

  /** The owner of one shard of a sharded state (made on first use; publishes while the shard is owned here). */
  #shardOwner(service: ServiceDescriptor, st: StateDescriptor, shard: number): StateOwner {
    if (!Number.isInteger(shard) || shard < 0 || shard >= service.shards)
      throw new FanError(
        Code.INVALID_ARGUMENT,
        `${service.name}.${st.name} has shards 0..${service.shards - 1} (@shards(${service.shards})), not ${shard}`,
      );
    const key = `${service.name}\u0000${st.name}\u0000${shard}`;
    let o = this.#owners.get(key);
    if (o === undefined) {
      const guard = (): void => {
        const view = this.#ownership.get(service.name)?.view;
        // Before the service is bound any shard may be set (published once owned; dropped at bind if not).
        // A shard lost while calls admitted for it run is written until it is released (its new owner waits).
        if (view === undefined || view.owned().includes(shard) || view.releasing?.(shard) === true) return;
        const from = view.awaitedFrom?.(shard);
        if (from !== undefined) {
          // Gained but not released yet by its previous owner, which may still write it: a write
          // here would start an epoch beside that one and lose its last writes. Not yet, not never.
          const prev = from.length > 0 ? from.join(", ") : "its previous owner";
          const err = new FanError(
            Code.UNAVAILABLE,
            `shard ${shard} of ${service.name}.${st.name} is being handed over to this instance (${view.instanceId}) from ${prev}, which has not released it yet: try again once it has`,
            { details: { service: service.name, state: st.name, shard, from } },
          );
          this.host.log.warn(
            { service: service.name, state: st.name, shard, from },
            `a write to ${service.name}.${st.name} was refused: ${err.message}`,
          );
          throw err;
        }
        const owner = view.ownerOf(shard);
        const err = new FanError(
          Code.FAILED_PRECONDITION,
          `shard ${shard} of ${service.name}.${st.name} is owned by ${owner ?? "no instance"}, not by this instance (${view.instanceId})`,
          { details: { service: service.name, state: st.name, shard, ...(owner === undefined ? {} : { owner }) } },
        );
        // Said here too: a handler that lets it propagate answers its caller with it, and nothing else logs it.
        this.host.log.warn(
          { service: service.name, state: st.name, shard, ...(owner === undefined ? {} : { owner }) },
          `a write to ${service.name}.${st.name} was refused: ${err.message} (a call admitted for the shard may write it until the shard is released; this write came after, or from elsewhere)`,
        );
        throw err;
      };
      o = new StateOwner(service, st, this.host, shard, guard);
      this.#owners.set(key, o);
      if (this.#ownership.get(service.name)?.view.owned().includes(shard) === true) void o.activate();
    }
    return o;
  }

  /** Answers the `$state` rpc (and, with `shard`, the `$stateShard` rpc) of a served instance. */
  snapshot(service: ServiceDescriptor, name: unknown, shard?: unknown): StateSnapshot {
    if (typeof name !== "string") throw new FanError(Code.INVALID_ARGUMENT, "a snapshot request names a state");
    const st = this.#state(service, name);
    if ((st.sharded === true) !== (shard !== undefined))
      throw new FanError(
        Code.INVALID_ARGUMENT,
        st.sharded === true
          ? `${service.name}.${name} is sharded: a snapshot names its shard`
          : `${service.name}.${name} is not sharded: a snapshot names no shard`,
      );
    if (st.sharded !== true) {
      const o = this.#single(service, st);
      // A stopping instance still answers calls while it drains: a watcher that heard the last
      // heartbeat must not resync to the epoch that ended.
      if (o.left)
        throw new FanError(
          Code.UNAVAILABLE,
          `${service.name}.${name} is not published by this instance now: it is stopping`,
        );
      return o.snapshot();
    }
    const o = this.#shardOwner(service, st, shard as number);
    // The rpc's shard guard already redirected a request for a shard owned elsewhere; between
    // the guard and here ownership may have moved: say so rather than answer a stale value.
    if (!o.active)
      throw new FanError(
        Code.UNAVAILABLE,
        `shard ${String(shard)} of ${service.name}.${name} is not published by this instance now`,
      );
    return o.snapshot();
  }

  /**
   * An instance of `service` is bound: its owners publish under a new epoch; with `shards`
   * (a service with sharded states), the owners of each owned shard, following its changes.
   */
  /**
   * Before `service`'s `start` hook: its unsharded states take their saved snapshots (with
   * `persist`), so the hook sees them. A sharded state's shards are resumed as they are gained.
   */
  async resume(service: ServiceDescriptor): Promise<void> {
    if (this.host.store === undefined) return;
    for (const name of Object.keys(service.states)) {
      const o = this.owner(service, name);
      if (o instanceof StateOwner) await o.resume();
    }
  }

  async bound(service: ServiceDescriptor, shards?: ShardOwnership): Promise<void> {
    if (Object.keys(service.states).length === 0) return;
    // Every state of the service is owned from start, so a saved snapshot is resumed before it serves.
    for (const name of Object.keys(service.states)) this.owner(service, name);
    this.#bound.set(service.name, (this.#bound.get(service.name) ?? 0) + 1);
    if (shards !== undefined && Object.values(service.states).some((s) => s.sharded === true)) {
      this.#ownership.get(service.name)?.off();
      const off = shards.onChange((c) => this.#shardsChanged(service, c.gained, c.lost, c.owned));
      this.#ownership.set(service.name, { view: shards, off });
      // Before the first view (a first bind) nothing is owned yet: the first change activates.
      if (shards.owned().length > 0) await this.#shardsChanged(service, shards.owned(), []);
    }
    for (const o of this.#owners.values())
      if (o.service.name === service.name && o.shard === undefined) await o.activate();
    this.#timer ??= setInterval(() => {
      for (const o of this.#owners.values()) o.heartbeat();
    }, this.host.heartbeatMs).unref();
  }

  async #shardsChanged(
    service: ServiceDescriptor,
    gained: readonly number[],
    lost: readonly number[],
    owned?: readonly number[],
  ): Promise<void> {
    // Values set before the bind for shards another instance owns are not this instance's to publish.
    if (owned !== undefined)
      for (const o of this.#owners.values())
        if (o.service.name === service.name && o.shard !== undefined && !owned.includes(o.shard) && !o.active)
          void o.release();
    const released: Promise<void>[] = [];
    for (const st of Object.values(service.states)) {
      if (st.sharded !== true) continue;
      // Handed over: the last heartbeat and the saved snapshot go out before the record lets the new owner take it.
      for (const s of lost) released.push(this.#shardOwner(service, st, s).release(true));
      // A shard that moved here publishes under a new epoch (resuming its saved snapshot): watchers resync.
      await Promise.all(gained.map((s) => this.#shardOwner(service, st, s).activate()));
    }
    await Promise.all(released);
    if (gained.length > 0 || lost.length > 0)
      this.host.log.info({ service: service.name, gained, lost }, "sharded states follow the owned shards");
  }

  /**
   * An instance of `service` unbound (a graceful stop calls it once its calls drained): when it
   * was the last, its owners stop publishing, each with a last heartbeat and its snapshot saved
   * at once, a shard's owner as at a hand-over. Resolves once those went out, at most
   * `LAST_HEARTBEAT_WAIT_MS` later.
   */
  unbound(service: ServiceDescriptor): Promise<void> {
    const n = (this.#bound.get(service.name) ?? 0) - 1;
    if (n > 0) {
      this.#bound.set(service.name, n);
      return Promise.resolve();
    }
    this.#bound.delete(service.name);
    const view = this.#ownership.get(service.name)?.view;
    this.#ownership.get(service.name)?.off();
    this.#ownership.delete(service.name);
    const out: Promise<void>[] = [];
    for (const o of this.#owners.values()) {
      if (o.service.name !== service.name) continue;
      if (o.shard === undefined) out.push(this.#leave(o));
      // Still its own (no other instance took it meanwhile): handed over with its last writes.
      else if (view === undefined || view.owned().includes(o.shard) || view.releasing?.(o.shard) === true)
        out.push(this.#track(o.release(true)));
      else {
        out.push(this.#leave(o));
        void o.release();
      }
    }
    let t: NodeJS.Timeout | undefined;
    // Cut short, and said: the next owner (a taker of its shards, a new instance) resumes an older snapshot.
    const late = (r: (v: unknown) => void): void => {
      this.host.log.warn(
        { service: service.name, waitedMs: LAST_HEARTBEAT_WAIT_MS },
        `stopping ${service.name}: its states have not sent their last heartbeat and saved their snapshot in ${LAST_HEARTBEAT_WAIT_MS} ms (the snapshot store or the transport does not answer): stopping anyway, so their next owner may resume an older snapshot, without this instance's latest writes`,
      );
      r(undefined);
    };
    return Promise.race([Promise.all(out), new Promise((r) => (t = setTimeout(() => late(r), LAST_HEARTBEAT_WAIT_MS)))])
      .then(() => undefined)
      .finally(() => clearTimeout(t));
  }

  #leave(o: StateOwner): Promise<void> {
    return this.#track(o.leave());
  }

  #track(p: Promise<void>): Promise<void> {
    this.#leaving.add(p);
    void p.finally(() => this.#leaving.delete(p));
    return p;
  }

  /** Stops heartbeats (owners still publishing send their last one, and it is waited for) and flushes the snapshot store. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const o of this.#owners.values()) this.#leave(o);
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.#leaving),
      new Promise((r) => (t = setTimeout(r, LAST_HEARTBEAT_WAIT_MS))),
    ]).finally(() => clearTimeout(t));
    await this.host.store?.close();
  }
}
