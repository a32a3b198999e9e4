/**
 * A shard gained from a previous owner that has not released it yet (the join hand-over) is not
 * this instance's to load or write: `owned()` (the states' and `ctx.shards`' view) leaves it out,
 * a read of its state does not start publishing it, and a write is refused UNAVAILABLE naming
 * the previous owner, with a warning. Once released, it is gained and its state published.
 * One Ownership over a scripted view, and the App's state owners following it.
 */
import { describe, expect, it } from "vitest";
import type { LifecycleContext } from "../../src/runtime/call/context.js";
import { Ownership } from "../../src/runtime/call/ownership.js";
import { assignShards } from "../../src/runtime/call/shards.js";
import { FanError } from "../../src/runtime/errors.js";
import { type ShardedState, type StateOwner, StateOwners } from "../../src/runtime/states/owner.js";
import { Orders } from "./fixtures/handover.js";
import { record as recordOf, scriptedView } from "./fixtures/scripted-view.js";
import { captureLog } from "../transports/fixtures/log.js";

const d = Orders.descriptor;

const record = (id: string, serving?: readonly number[]) => recordOf(d, id, serving);

describe("a shard awaited from its previous owner", () => {
  it("is not owned for the states until released: a read does not publish it, a write is refused UNAVAILABLE", async () => {
    const captured = captureLog();
    const log = captured.log;
    const { directory, set } = scriptedView();
    const a = "old-a";
    let b = "";
    let moved: number[] = [];
    for (let i = 0; moved.length === 0; i++) {
      b = `new-b-${i}`;
      const owners = assignShards(
        [
          { instanceId: a, shards: [] },
          { instanceId: b, shards: [] },
        ],
        d.shards,
      );
      moved = owners.flatMap((o, s) => (o === b ? [s] : []));
    }
    const s = moved[0] as number;
    const own = new Ownership(d, b, [], {}, () => ({}) as LifecycleContext, log);
    const published: unknown[] = [];
    const states = new StateOwners({
      cluster: "awaited",
      log,
      heartbeatMs: 60_000,
      store: undefined,
      publish: async (_service, env) => void published.push(env.payload),
      serves: () => true,
    });
    await states.bound(d, own);
    // A still serves every shard: B awaits the ones it takes.
    set([record(a, [...Array(d.shards).keys()]), record(b, [])]);
    await own.start(directory);
    expect(own.owned()).not.toContain(s);
    expect(own.awaitedFrom(s)).toEqual([a]);
    const perShard = states.owner(d, "perShard") as ShardedState;
    expect(perShard.owned()).not.toContain(s);
    // A read makes the shard's owner, which must not start publishing.
    expect(perShard.shard(s).value()).toBeUndefined();
    expect((perShard.shard(s) as StateOwner).active).toBe(false);
    let refused: unknown;
    try {
      perShard.shard(s).patch({ x: 1 });
    } catch (e) {
      refused = e;
    }
    expect(refused).toBeInstanceOf(FanError);
    expect((refused as FanError).code).toBe("UNAVAILABLE");
    expect((refused as FanError).message).toContain(`from ${a}`);
    expect(captured.warnings().some((w) => w.includes("was refused") && w.includes(a))).toBe(true);

    // A released it: B gains it, and its state publishes.
    set([record(a, []), record(b, [])]);
    await expect.poll(() => own.owned().includes(s), { timeout: 2000, interval: 10 }).toBe(true);
    await expect.poll(() => (perShard.shard(s) as StateOwner).active, { timeout: 2000, interval: 10 }).toBe(true);
    perShard.shard(s).patch({ x: 1 });
    expect(perShard.shard(s).value()).toEqual({ x: 1 });
    own.stop();
    await states.unbound(d);
    await states.close();
  });
});
