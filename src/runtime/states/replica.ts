/**
 * The watcher's state machine (the Clone pattern's client), free of I/O so tests can drive it
 * with any interleaving: messages arrive through `receive`, snapshots through `restore`, and
 * `wantsSnapshot` says when the view must fetch one. It subscribes-then-snapshots: until a
 * snapshot is in, messages are buffered; after it, only newer ones apply, duplicates and
 * older epochs are dropped, and a gap, a newer epoch or a heartbeat ahead of the replica
 * asks for a new snapshot. A snapshot older than an epoch seen in the messages meanwhile (two
 * owners on one stream, the newer one not among those that answer snapshots) is applied and
 * the newer epoch's messages dropped, with `behind` set: asking again at once would loop.
 */
import { applyMergePatchInPlace } from "./merge-patch.js";
import type { StateMessage, StateSnapshot } from "./protocol.js";

/** One change a replica went through. */
export interface ReplicaChange {
  readonly epoch: number;
  readonly seq: number;
  /** The merge patch (wire form) that produced it; undefined for a full value or a snapshot. */
  readonly patch: unknown;
  readonly cause: "full" | "patch" | "snapshot";
}

/** Bound of the buffer while a snapshot is awaited; beyond it the oldest are dropped (the snapshot covers them). */
const MAX_BUFFER = 100_000;

/** A replica of one state. */
export class Replica {
  epoch = -1;
  seq = 0;
  /** The wire value; undefined before the first value. */
  wire: unknown = undefined;
  hasValue = false;
  /** True once a snapshot is applied and no gap has been seen since. */
  synced = false;
  /** Snapshots taken. */
  snapshots = 0;
  /** Updates dropped as duplicates or older than the replica. */
  dropped = 0;
  /**
   * After `restore`: the newest epoch seen in a message since the snapshot before, when the
   * snapshot is older (its updates were dropped); else undefined. The view backs off on it.
   */
  behind: number | undefined;
  /** The newest epoch of the messages received since the last snapshot. */
  #newest = -1;
  #buffer: StateMessage[] = [];
  /**
   * `delta`: patches are applied in place, so values that came as a full update or snapshot
   * are copied first (in-process they may be shared with the owner and other replicas).
   */
  constructor(private readonly delta: boolean) {}

  /** True when a snapshot must be fetched (not synced). */
  get wantsSnapshot(): boolean {
    return !this.synced;
  }

  /** Handles one message; returns the changes it caused (none while waiting for a snapshot). */
  receive(m: StateMessage): ReplicaChange[] {
    if (m.e > this.#newest) this.#newest = m.e;
    if (!this.synced) {
      if (m.k !== "h") this.#buffer.push(m);
      if (this.#buffer.length > MAX_BUFFER) this.#buffer.shift();
      return [];
    }
    if (m.e < this.epoch) {
      this.dropped++;
      return [];
    }
    if (m.e > this.epoch) return this.#lost(m);
    if (m.k === "h") return m.s > this.seq ? this.#lost(undefined) : [];
    if (m.s <= this.seq) {
      this.dropped++;
      return [];
    }
    if (m.s === this.seq + 1 || m.k === "f") return [this.#apply(m)];
    return this.#lost(m);
  }

  /** Applies a snapshot, then every buffered update newer than it; returns the changes. */
  restore(snap: StateSnapshot): ReplicaChange[] {
    this.snapshots++;
    const newest = this.#newest;
    this.#newest = -1;
    this.behind = newest > snap.e ? newest : undefined;
    // A snapshot older than what the replica already holds (a lagging instance answered) changes nothing.
    if (this.synced && (snap.e < this.epoch || (snap.e === this.epoch && snap.s < this.seq))) return [];
    this.epoch = snap.e;
    this.seq = snap.s;
    this.hasValue = "v" in snap && snap.v !== undefined;
    this.wire = this.hasValue && this.delta ? structuredClone(snap.v) : snap.v;
    this.synced = true;
    const out: ReplicaChange[] = [{ epoch: this.epoch, seq: this.seq, patch: undefined, cause: "snapshot" }];
    const pending = this.#buffer.filter((m) => m.e === this.epoch && m.s > this.seq).sort((a, b) => a.s - b.s);
    // Updates of a newer epoch than the snapshot's wait for the next snapshot, unless the snapshot
    // is already behind what was seen: then they are dropped and the view decides when to ask again.
    const newer = this.behind === undefined ? this.#buffer.filter((m) => m.e > this.epoch) : [];
    this.#buffer = newer;
    for (const m of pending) {
      if (m.s <= this.seq) continue; // a duplicate in the buffer
      if (m.k === "h") continue;
      if (m.s !== this.seq + 1 && m.k !== "f") {
        this.#lost(m);
        return out;
      }
      out.push(this.#apply(m));
    }
    if (newer.length > 0) this.synced = false;
    return out;
  }

  /** Forgets sync (a reconnect or a missed heartbeat): the next snapshot starts over. */
  resync(): void {
    this.synced = false;
  }

  #apply(m: StateMessage & { k: "f" | "p" }): ReplicaChange {
    if (m.k === "f") {
      this.wire = this.delta ? structuredClone(m.v) : m.v;
      this.hasValue = true;
    } else this.wire = applyMergePatchInPlace(this.wire, m.v);
    this.seq = m.s;
    return { epoch: this.epoch, seq: m.s, patch: m.k === "p" ? m.v : undefined, cause: m.k === "f" ? "full" : "patch" };
  }

  #lost(m: StateMessage | undefined): ReplicaChange[] {
    this.synced = false;
    if (m !== undefined && m.k !== "h") this.#buffer.push(m);
    return [];
  }
}
