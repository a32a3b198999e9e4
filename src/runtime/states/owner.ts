/**
 * The owner's side of replicated states: one `StateOwner` per (service, state) in the App that
 * serves the service. It keeps the wire value, numbers every update within an epoch, publishes
 * updates and periodic heartbeats on the service's event path, answers snapshots, and (when
 * configured) saves the latest snapshot so a restarted owner resumes value and sequence.
 * An owner publishes only while an instance of its service is bound in this App (for a
 * `@unique` service: while it leads); each activation starts a new epoch.
 */
import type { Logger } from "pino";
import { codec, type Codec } from "../codec/index.js";
import type { ServiceDescriptor, StateDescriptor } from "../descriptor.js";
import { Code, FanError } from "../errors.js";
import { nextEnvelopeId } from "../ids.js";
import type { Envelope, EnvelopeHeaders } from "../transports/transport.js";
import { traceProduced } from "../telemetry/calls.js";
import { applyMergePatchInPlace, diffMergePatch } from "./merge-patch.js";
import { type StateMessage, type StateSnapshot, stateEvent } from "./protocol.js";
import { wirePatch } from "./typed-patch.js";

/** What the publisher of a state offers its owner (`app.publisher(Def).state(name)`, `ctx.state(name)`). */
export interface StatePublisher<T> {
  /** The current value (undefined before the first `set`). Decoded on demand; do not mutate it. */
  value(): T | undefined;
  /** Replaces the value (`@delta` states publish the difference as a merge patch). Throws INVALID_ARGUMENT when it does not fit the IDL. */
  set(value: T): void;
  /**
   * `@delta` states: applies an RFC 7396 merge patch (typed values as leaves, `null` removes).
   * The result is checked against the IDL first; an invalid patch throws INVALID_ARGUMENT and
   * is neither applied nor published.
   */
  patch(patch: unknown): void;
  /** The epoch and sequence number of the last update. */
  readonly epoch: number;
  readonly seq: number;
}

/** Where owners keep the latest snapshot between runs (`states.persist`). */
export interface SnapshotStore {
  load(key: string): Promise<StateSnapshot | undefined>;
  /** Saves (throttled by the store); the latest call wins. */
  save(key: string, snap: () => StateSnapshot): void;
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
}

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
  #active = false;
  #value: { seq: number; value: T } | undefined;
  readonly #codec: Codec<T>;
  readonly #name: string;
  readonly #log: Logger;

  constructor(
    readonly service: ServiceDescriptor,
    readonly state: StateDescriptor,
    private readonly host: OwnerHost,
  ) {
    this.#codec = codec<T>(state.schema);
    this.#name = `${service.name}.${state.name}`;
    this.#log = host.log.child({ state: this.#name });
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
    if (!this.#has) return { e: this.epoch, s: this.seq };
    return { e: this.epoch, s: this.seq, v: this.state.mode === "delta" ? structuredClone(this.#wire) : this.#wire };
  }

  /** Starts publishing under a new epoch (after resuming a saved snapshot, when there is one). */
  async activate(): Promise<void> {
    if (this.#active) return;
    const store = this.host.store;
    if (store !== undefined) {
      const saved = await store.load(this.#key()).catch((e: unknown) => {
        this.#log.warn({ err: e }, "loading the saved snapshot failed; starting from the current value");
        return undefined;
      });
      if (saved !== undefined) {
        this.epoch = Math.max(this.epoch, saved.e);
        this.seq = Math.max(this.seq, saved.s);
        if (!this.#has && saved.v !== undefined) {
          this.#wire = saved.v;
          this.#has = true;
          this.#log.info({ seq: saved.s }, "resumed the saved snapshot");
        }
      }
    }
    this.epoch = nextEpoch(this.epoch);
    this.#active = true;
    this.heartbeat();
  }

  /** Stops publishing (the instance unbound or lost leadership). */
  deactivate(): void {
    this.#active = false;
  }

  /** Tells watchers the owner is alive and where its sequence is. */
  heartbeat(): void {
    if (this.#active) this.#publish({ k: "h", e: this.epoch, s: this.seq, i: this.host.heartbeatMs });
  }

  #update(k: "f" | "p", v: unknown): void {
    this.seq++;
    this.#value = undefined;
    if (this.host.store !== undefined && this.#has) this.host.store.save(this.#key(), () => this.snapshot());
    if (!this.#active) return;
    // An update carries its producer span (or the publishing call's trace); heartbeats none.
    const headers: EnvelopeHeaders = {};
    traceProduced(this.service.name, this.state.name, "state", headers);
    this.#publish({ k, e: this.epoch, s: this.seq, v } as StateMessage, headers);
  }

  #publish(msg: StateMessage, headers: EnvelopeHeaders = {}): void {
    const env: Envelope = {
      v: 1,
      id: nextEnvelopeId(),
      kind: "state",
      service: this.service.name,
      method: stateEvent(this.state.name),
      version: this.service.version,
      headers,
      payload: msg,
      form: "wire",
    };
    this.host.publish(this.service, env).catch((e: unknown) => {
      // Watchers see the sequence move past them at the next heartbeat and take a snapshot.
      if (this.unpublished++ % 1000 === 0)
        this.#log.warn(
          { err: e, seq: msg.s, unpublished: this.unpublished },
          "state update not published; watchers resync at the next heartbeat",
        );
    });
  }

  #key(): string {
    return `fan.${this.host.cluster}.state.${this.service.name}.${this.state.name}`;
  }
}

/** The owners of one App, their activation with the served instances, and the heartbeat timer. */
export class StateOwners {
  readonly #owners = new Map<string, StateOwner>();
  readonly #bound = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly host: OwnerHost) {}

  /** The owner of `service`'s state `name`; throws when the App does not serve `service`. */
  owner(service: ServiceDescriptor, name: string): StateOwner {
    const st = Object.hasOwn(service.states, name) ? service.states[name] : undefined;
    if (st === undefined) throw new FanError(Code.UNIMPLEMENTED, `${service.name} has no state ${name}`);
    const key = `${service.name}\u0000${name}`;
    let o = this.#owners.get(key);
    if (o === undefined) {
      if (!this.host.serves(service.name))
        throw new FanError(
          Code.FAILED_PRECONDITION,
          `state ${service.name}.${name} is owned by the app that serves ${service.name}; this app does not serve it`,
        );
      o = new StateOwner(service, st, this.host);
      this.#owners.set(key, o);
      if ((this.#bound.get(service.name) ?? 0) > 0) void o.activate();
    }
    return o;
  }

  /** Answers the `$state` rpc of a served instance. */
  snapshot(service: ServiceDescriptor, name: unknown): StateSnapshot {
    if (typeof name !== "string") throw new FanError(Code.INVALID_ARGUMENT, "a snapshot request names a state");
    return this.owner(service, name).snapshot();
  }

  /** An instance of `service` is bound: its owners publish under a new epoch. */
  async bound(service: ServiceDescriptor): Promise<void> {
    if (Object.keys(service.states).length === 0) return;
    // Every state of the service is owned from start, so a saved snapshot is resumed before it serves.
    for (const name of Object.keys(service.states)) this.owner(service, name);
    this.#bound.set(service.name, (this.#bound.get(service.name) ?? 0) + 1);
    for (const o of this.#owners.values()) if (o.service.name === service.name) await o.activate();
    this.#timer ??= setInterval(() => {
      for (const o of this.#owners.values()) o.heartbeat();
    }, this.host.heartbeatMs).unref();
  }

  /** An instance of `service` unbound: when it was the last, its owners stop publishing. */
  unbound(service: ServiceDescriptor): void {
    const n = (this.#bound.get(service.name) ?? 0) - 1;
    if (n > 0) {
      this.#bound.set(service.name, n);
      return;
    }
    this.#bound.delete(service.name);
    for (const o of this.#owners.values()) if (o.service.name === service.name) o.deactivate();
  }

  /** Stops heartbeats and flushes the snapshot store. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const o of this.#owners.values()) o.deactivate();
    await this.host.store?.close();
  }
}
