/**
 * Replicated states, the minimal in-process version: a channel per (service, state) in the
 * local hub holds the wire-form value and a sequence number. `@full` updates replace the
 * value; `@delta` updates are JSON Merge Patches with consecutive sequence numbers, and a
 * replica that sees a gap (or joins late) takes a snapshot and continues from its sequence.
 * Network transports will carry the same `StateUpdate`s (the replicated-states issue).
 */
import type { Logger } from "pino";
import { codec, type Codec } from "../codec/index.js";
import type { CallOptions, ServiceDescriptor, StateDescriptor, StateHandle, Subscription } from "../descriptor.js";
import { Code, FanError } from "../errors.js";
import { applyMergePatch, diffMergePatch } from "./merge-patch.js";
import { traceProduced } from "../telemetry/calls.js";

/** One update of a state: a full value or a merge patch, numbered. */
export interface StateUpdate {
  readonly seq: number;
  readonly full?: unknown;
  readonly patch?: unknown;
  /** The W3C trace context of the update (its producer span, or the publishing call's). */
  readonly traceparent?: string;
}

/** A consistent snapshot: the wire value and the sequence number it reflects. */
export interface StateSnapshot {
  readonly seq: number;
  readonly wire: unknown;
}

/** The owner's side of one state in the hub. */
export class StateChannel {
  seq = 0;
  wire: unknown = undefined;
  readonly listeners = new Set<(u: StateUpdate) => void>();

  /** The current snapshot, or undefined before the first value. */
  snapshot(): StateSnapshot | undefined {
    return this.seq === 0 ? undefined : { seq: this.seq, wire: this.wire };
  }

  /** Records and fans out an update. */
  emit(u: StateUpdate, log: Logger): void {
    this.seq = u.seq;
    this.wire = u.full !== undefined ? u.full : applyMergePatch(this.wire, u.patch);
    for (const fn of this.listeners) {
      try {
        fn(u);
      } catch (e) {
        log.error({ err: e }, "state watcher failed");
      }
    }
  }
}

/** What the publisher of a state offers the owning service. */
export interface StatePublisher<T> {
  /** The current value (undefined before the first `set`). */
  value(): T | undefined;
  /** Replaces the value (for `@delta` states, watchers receive the difference as a merge patch). */
  set(value: T): void;
  /** `@delta` states: applies a JSON Merge Patch (typed values as leaves) and publishes it. */
  patch(patch: unknown): void;
}

/** Makes the publisher of `state` over `channel`. */
export function statePublisher<T>(
  service: ServiceDescriptor,
  state: StateDescriptor,
  channel: StateChannel,
  log: Logger,
): StatePublisher<T> {
  const c = codec<T>(state.schema);
  const name = `${service.name}.${state.name}`;
  let current: T | undefined;
  const set = (value: T): void => {
    const wire = c.encode(value, name);
    const trace: { traceparent?: string } = {};
    traceProduced(service.name, state.name, "state", trace);
    if (state.mode === "delta" && channel.seq > 0) {
      const patch = diffMergePatch(channel.wire, wire);
      if (patch !== undefined) channel.emit({ seq: channel.seq + 1, patch, ...trace }, log);
    } else channel.emit({ seq: channel.seq + 1, full: wire, ...trace }, log);
    current = value;
  };
  return {
    value: () => current,
    set,
    patch: (p) => {
      if (state.mode !== "delta") throw new FanError(Code.FAILED_PRECONDITION, `${name} is a @full state: use set()`);
      set(applyMergePatch(current, p) as T);
    },
  };
}

/** A watcher's copy of a state, kept in sequence. */
export class StateReplica {
  seq = 0;
  wire: unknown = undefined;
  /** Snapshots taken because of a gap or a late join. */
  resyncs = 0;

  constructor(private readonly snapshot: () => StateSnapshot | undefined) {}

  /** Applies an update; returns false when it changed nothing (a duplicate or old update). */
  apply(u: StateUpdate): boolean {
    if (u.seq <= this.seq) return false;
    if (u.full !== undefined) {
      this.wire = u.full;
      this.seq = u.seq;
    } else if (u.seq === this.seq + 1 && this.seq > 0) {
      this.wire = applyMergePatch(this.wire, u.patch);
      this.seq = u.seq;
    } else {
      const snap = this.snapshot();
      this.resyncs++;
      if (snap === undefined || snap.seq < u.seq) return false;
      this.wire = snap.wire;
      this.seq = snap.seq;
    }
    return true;
  }
}

/** The client's handle of a state (`client.states.x`). */
export function stateHandle(
  service: ServiceDescriptor,
  name: string,
  channel: () => Promise<StateChannel>,
): StateHandle<unknown> {
  const state = service.states[name];
  const missing = (): FanError => new FanError(Code.UNIMPLEMENTED, `${service.name} has no state ${name}`);
  const c: Codec<unknown> | undefined = state === undefined ? undefined : codec(state.schema);
  const decode = (wire: unknown): unknown => (c as Codec<unknown>).decode(wire, `${service.name}.${name}`);
  return {
    get: async (_opts?: CallOptions) => {
      if (c === undefined) throw missing();
      const snap = (await channel()).snapshot();
      if (snap === undefined) throw new FanError(Code.UNAVAILABLE, `${service.name}.${name} has no value yet`);
      return decode(snap.wire);
    },
    watch: async (fn): Promise<Subscription> => {
      if (c === undefined) throw missing();
      const ch = await channel();
      const replica = new StateReplica(() => ch.snapshot());
      const onUpdate = (u: StateUpdate): void => {
        if (replica.apply(u)) fn(decode(replica.wire));
      };
      ch.listeners.add(onUpdate);
      const snap = ch.snapshot();
      if (snap !== undefined && replica.apply({ seq: snap.seq, full: snap.wire })) fn(decode(replica.wire));
      return { unsubscribe: async () => void ch.listeners.delete(onUpdate) };
    },
  };
}
