/**
 * A shard that comes back to an instance that owned it before, with no snapshot to resume (no
 * `persist` here): its value starts empty at sequence 0 under a new epoch, on the owner and on
 * a watcher in another process. The owner forgot the value when it handed the shard over but
 * kept its sequence, so the watcher showed no value under the sequence of the old one.
 * Owners and watcher over nats, each in a process of its own; the other owner stops (graceful
 * hand-over) or is killed (its lease expires).
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { NATS_URL } from "../transports/nats-server.js";
import { clusterNodes, type Node, type Report, until } from "./processes.js";

const nodes: Node[] = [];
afterEach(async () => {
  await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));
});
const SHARDS = [0, 1, 2, 3, 4, 5, 6, 7];

for (const how of ["stops", "is killed"] as const)
  describe(`a shard back at its first owner with no snapshot, when the other owner ${how}`, () => {
    const cluster = `shard-empty-${how === "stops" ? "stop" : "kill"}-${process.pid}-${shortId()}`;
    const nats = { name: "nats", transports: () => ({ nats: { url: NATS_URL } }) };
    const { start, forget } = clusterNodes(cluster, nats, nodes, {
      FAN_STATES_SERVICE: "ShardBoard",
      FAN_STATES_STATE: "carts",
    });
    afterAll(forget);

    it("starts empty at seq 0 under a new epoch, on the owner and on the watcher", async () => {
      const owned = async (n: Node): Promise<number[]> => ((await n.send("owned")).owned as number[]) ?? [];
      const shard = (n: Node, s: number): Promise<Report> => n.send("state", { shard: s }) as Promise<never>;
      const a = await start("owner");
      await until(
        "a owns every shard",
        () => owned(a),
        (o) => o.length === SHARDS.length,
      );
      // Three updates per shard: seq 3 under a's first epoch.
      for (const s of SHARDS) {
        await a.send("set", { shard: s, value: { [`k${s}`]: { n: s, label: "a" } } });
        await a.send("patch", { shard: s, patch: { x: { n: 1, label: "x" } } });
        await a.send("patch", { shard: s, patch: { y: { n: 2, label: "y" } } });
      }
      const first = new Map<number, number>();
      for (const s of SHARDS) first.set(s, (await shard(a, s)).epoch);
      const watcher = await start("watcher", { FAN_STATES_SHARDS: SHARDS.join(",") });

      const b = await start("owner");
      const ofB = await until(
        "b takes some shards",
        () => owned(b),
        (o) => o.length > 0,
      );
      await until(
        "a hands them over",
        () => owned(a),
        (o) => o.length + ofB.length === SHARDS.length,
      );
      for (const s of ofB)
        await until(
          `b publishes shard ${s}`,
          () => shard(b, s),
          (r) => r.active === true,
        );

      if (how === "stops") await b.stop();
      else b.kill();
      await until(
        "a owns every shard again",
        () => owned(a),
        (o) => o.length === SHARDS.length,
        30_000,
      );

      for (const s of ofB) {
        const o = await until(
          `a publishes shard ${s} again`,
          () => shard(a, s),
          (r) => r.active === true,
        );
        const w = await until(
          `the watcher of shard ${s} follows a's new epoch`,
          () => shard(watcher, s),
          (r) => r.status === "live" && r.epoch === o.epoch,
        );
        expect(o.epoch).toBeGreaterThan(first.get(s) as number);
        expect(o.value).toBeUndefined();
        expect(w.value).toBeUndefined();
        expect(
          { owner: o.seq, watcher: w.seq },
          `shard ${s}: no value, so not the sequence of the one forgotten`,
        ).toEqual({
          owner: 0,
          watcher: 0,
        });
      }
      // The shards a kept are untouched.
      for (const s of SHARDS.filter((x) => !ofB.includes(x))) {
        const w = await until(
          `the watcher of shard ${s}`,
          () => shard(watcher, s),
          (r) => r.status === "live",
        );
        expect(w.seq).toBe(3);
        expect(w.value).toEqual({ [`k${s}`]: { n: s, label: "a" }, x: { n: 1, label: "x" }, y: { n: 2, label: "y" } });
      }
    }, 90_000);
  });
