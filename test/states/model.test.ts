/**
 * Model-based test of the watcher's state machine (`Replica`): an owner model makes patches,
 * full sets and restarts (new epoch, with or without a resumed sequence); an adversarial
 * network drops, duplicates, reorders and delays each watcher's messages and snapshot
 * replies, and reconnects watchers at random. Safety: whenever a replica says it is in sync,
 * its value is exactly the owner's value at that (epoch, seq). Liveness: after the chaos, a
 * heartbeat and the snapshots it asks for bring every replica to the owner's value.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { applyMergePatch } from "../../src/runtime/states/merge-patch.js";
import type { StateMessage, StateSnapshot } from "../../src/runtime/states/protocol.js";
import { Replica } from "../../src/runtime/states/replica.js";

type Value = Record<string, number>;

class OwnerModel {
  epoch = 1;
  seq = 0;
  value: Value = {};
  readonly history = new Map<string, Value>([["1/0", {}]]);

  patch(key: string, n: number | null): StateMessage {
    const p = { [key]: n };
    this.value = applyMergePatch(this.value, p) as Value;
    return this.#record({ k: "p", e: this.epoch, s: ++this.seq, v: p });
  }
  set(v: Value): StateMessage {
    this.value = { ...v };
    return this.#record({ k: "f", e: this.epoch, s: ++this.seq, v: { ...v } });
  }
  restart(resume: boolean): void {
    this.epoch++;
    if (!resume) {
      this.seq = 0;
      this.value = {};
    }
    this.history.set(`${this.epoch}/${this.seq}`, structuredClone(this.value));
  }
  heartbeat(): StateMessage {
    return { k: "h", e: this.epoch, s: this.seq, i: 100 };
  }
  snapshot(): StateSnapshot {
    return { e: this.epoch, s: this.seq, v: structuredClone(this.value) };
  }
  #record(m: StateMessage): StateMessage {
    this.history.set(`${m.e}/${m.s}`, structuredClone(this.value));
    return m;
  }
}

interface Watcher {
  readonly replica: Replica;
  inbox: StateMessage[];
  /** Snapshot replies on their way (taken when asked, delivered later). */
  replies: StateSnapshot[];
}

const op = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      t: fc.constant("patch" as const),
      key: fc.constantFrom("a", "b", "c", "d"),
      n: fc.option(fc.integer({ min: 0, max: 9 })),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("set" as const),
      v: fc.dictionary(fc.constantFrom("a", "b", "x"), fc.integer({ min: 0, max: 9 })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("restart" as const), resume: fc.boolean() }) },
  { weight: 12, arbitrary: fc.record({ t: fc.constant("deliver" as const), w: fc.nat(2), pick: fc.constant(0) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("deliver" as const), w: fc.nat(2), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("drop" as const), w: fc.nat(2), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("duplicate" as const), w: fc.nat(2), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("reconnect" as const), w: fc.nat(2) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant("reply" as const), w: fc.nat(2), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("heartbeat" as const) }) },
);

/** Removes and returns the element at `pick` (modulo the length), if any. */
function take<T>(xs: T[], pick: number): T | undefined {
  return xs.length === 0 ? undefined : xs.splice(pick % xs.length, 1)[0];
}

function checkSafety(owner: OwnerModel, w: Watcher): void {
  const r = w.replica;
  if (!r.synced || !r.hasValue) return;
  const want = owner.history.get(`${r.epoch}/${r.seq}`);
  expect(want, `the owner never had ${r.epoch}/${r.seq}`).toBeDefined();
  expect(r.wire).toEqual(want);
}

describe("the watcher's state machine under a hostile network (fast-check)", () => {
  it("every replica ends equal to the owner, and never holds a value the owner did not have", () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 150 }), (ops) => {
        const owner = new OwnerModel();
        const watchers: Watcher[] = [0, 1, 2].map(() => ({ replica: new Replica(true), inbox: [], replies: [] }));
        const broadcast = (m: StateMessage): void => {
          for (const w of watchers) w.inbox.push(m);
        };
        for (const o of ops) {
          switch (o.t) {
            case "patch":
              broadcast(owner.patch(o.key, o.n));
              break;
            case "set":
              broadcast(owner.set(o.v));
              break;
            case "restart":
              owner.restart(o.resume);
              broadcast(owner.heartbeat());
              break;
            case "heartbeat":
              broadcast(owner.heartbeat());
              break;
            case "deliver": {
              // Mostly the oldest message in flight, sometimes any of them: reordering and delay.
              const w = watchers[o.w] as Watcher;
              const m = take(w.inbox, o.pick);
              if (m !== undefined) w.replica.receive(m);
              break;
            }
            case "drop":
              take((watchers[o.w] as Watcher).inbox, o.pick);
              break;
            case "duplicate": {
              const w = watchers[o.w] as Watcher;
              if (w.inbox.length > 0) w.inbox.push(w.inbox[o.pick % w.inbox.length] as StateMessage);
              break;
            }
            case "reconnect":
              (watchers[o.w] as Watcher).replica.resync();
              break;
            case "reply": {
              const w = watchers[o.w] as Watcher;
              const snap = take(w.replies, o.pick);
              if (snap !== undefined) w.replica.restore(snap);
              break;
            }
          }
          for (const w of watchers) {
            // As the view does: a replica that wants a snapshot asks for one (taken now, arriving later).
            if (w.replica.wantsSnapshot && w.replies.length === 0) w.replies.push(owner.snapshot());
            checkSafety(owner, w);
          }
        }
        // The chaos ends: what is still in flight is lost, a heartbeat arrives, and the
        // watcher fetches snapshots as long as its replica asks for one.
        for (const w of watchers) {
          w.replica.receive(owner.heartbeat());
          for (let i = 0; w.replica.wantsSnapshot && i < 5; i++) w.replica.restore(owner.snapshot());
          checkSafety(owner, w);
          expect(w.replica.synced).toBe(true);
          expect([w.replica.epoch, w.replica.seq]).toEqual([owner.epoch, owner.seq]);
          expect(w.replica.wire ?? {}).toEqual(owner.value);
        }
      }),
      { numRuns: 500 },
    );
  });
});
