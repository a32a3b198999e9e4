/**
 * Sharded states between processes over every network transport (http relaying updates through redis): two owner processes of
 * ShardBoard (8 shards, rendezvous ownership) each publish the shards they own; a watcher
 * process holds one view per shard and gets each shard's value from its owner; a patch on a
 * shard another instance owns is refused; a killed owner's shards move to the other once its
 * lease expires, resume from the persisted snapshots under a new epoch, and the watchers resync.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { deleteStreams } from "../transports/nats-server.js";
import { REDIS_URL, deleteKeys } from "../transports/redis-server.js";
import { brokerCases, Node, type Report, type TransportCase, until } from "./processes.js";

const CASES: readonly TransportCase[] = [
  ...brokerCases(),
  // Snapshots (the sharded $stateShard rpc) over http, updates relayed through redis.
  { name: "http", transports: () => ({ http: {}, redis: { url: REDIS_URL } }) },
];

const SHARDS = [0, 1, 2, 3, 4, 5, 6, 7];

const nodes: Node[] = [];
afterEach(async () => {
  await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));
});

interface ShardReport extends Report {
  readonly owned?: number[];
}

for (const c of CASES) {
  describe(`sharded states over ${c.name}, two owners and a watcher in separate processes`, () => {
    let cluster: string;
    const start = async (role: "owner" | "watcher", extra: Record<string, string> = {}): Promise<Node> => {
      const n = await Node.start(role, {
        FAN_STATES_CLUSTER: cluster,
        FAN_STATES_TRANSPORTS: JSON.stringify(c.transports()),
        FAN_STATES_SERVICE: "ShardBoard",
        FAN_STATES_STATE: "carts",
        FAN_STATES_PERSIST: REDIS_URL,
        ...extra,
      });
      nodes.push(n);
      return n;
    };
    const shardOf = (n: Node, shard: number): Promise<ShardReport> =>
      n.send("state", { shard }) as unknown as Promise<ShardReport>;
    const owned = async (n: Node): Promise<number[]> => ((await n.send("owned")).owned as number[]) ?? [];
    /** Waits until the two owners split the shards between them (each instance's own view). */
    const split = async (a: Node, b: Node): Promise<[number[], number[]]> => {
      let got: [number[], number[]] = [[], []];
      await until(
        "the owners split the shards",
        async () => (got = [await owned(a), await owned(b)]),
        ([x, y]) => x.length + y.length === SHARDS.length && SHARDS.every((s) => x.includes(s) !== y.includes(s)),
      );
      return got;
    };
    /** Waits until the watcher's view of `shard` is live at the owner's epoch and seq, and returns it. */
    const converged = async (w: Node, o: Node, shard: number): Promise<ShardReport> => {
      const want = await shardOf(o, shard);
      return until(
        `the watcher of shard ${shard} converges`,
        () => shardOf(w, shard),
        (r) => r.status === "live" && r.epoch === want.epoch && r.seq === want.seq,
      );
    };

    beforeAll(() => {
      cluster = `shardstate-${c.name}-${process.pid}-${shortId()}`;
    });
    afterAll(async () => {
      await deleteKeys(`fan.${cluster}*`).catch(() => undefined);
      if (c.name === "nats") await deleteStreams(`fan_${cluster}`).catch(() => undefined);
    });

    it("each owner publishes its own shards; a watcher per shard gets that shard's value; a patch on a shard owned elsewhere is refused; a killed owner's shards move and the watchers resync", async () => {
      const a = await start("owner");
      const b = await start("owner");
      const [ofA, ofB] = await split(a, b);
      const ownerOf = (s: number): Node => (ofA.includes(s) ? a : b);
      const watcher = await start("watcher", { FAN_STATES_SHARDS: SHARDS.join(",") });
      // Every shard through one watchAll() set, in a process of its own.
      const everyShard = await start("watcher", { FAN_STATES_SHARDS: "all" });

      // Each shard gets a value of its own, set by its owner.
      for (const s of SHARDS)
        await ownerOf(s).send("set", { shard: s, value: { [`k${s}`]: { n: s, label: ofA.includes(s) ? "a" : "b" } } });
      for (const s of SHARDS)
        await ownerOf(s).send("patch", { shard: s, patch: { extra: { n: 100 + s, label: "x" } } });
      for (const s of SHARDS) {
        await converged(everyShard, ownerOf(s), s);
        const got = await converged(watcher, ownerOf(s), s);
        expect(got.value).toEqual({
          [`k${s}`]: { n: s, label: ofA.includes(s) ? "a" : "b" },
          extra: { n: 100 + s, label: "x" },
        });
        expect(got.seq).toBe(2);
      }
      // The epochs are per shard and per owner: the two owners' shards differ.
      const epochs = new Map<number, number>();
      for (const s of SHARDS) epochs.set(s, (await shardOf(ownerOf(s), s)).epoch);

      // A patch on a shard this instance does not own: refused, naming the shard and its owner.
      const foreign = ofB[0] ?? ofA[0];
      const wrong = foreign === undefined ? undefined : ofB.includes(foreign) ? a : b;
      if (foreign !== undefined && wrong !== undefined) {
        await expect(wrong.send("patch", { shard: foreign, patch: { no: { n: 0, label: "no" } } })).rejects.toThrow(
          new RegExp(`shard ${foreign} of fan\\.replica\\.ShardBoard\\.carts is owned by \\S+, not by this instance`),
        );
        const after = await converged(watcher, ownerOf(foreign), foreign);
        expect(after.value).not.toHaveProperty("no");
      }

      // Kill b: once its lease expires, a owns every shard; the moved shards resume b's values under a new epoch.
      await new Promise((r) => setTimeout(r, 100)); // the snapshot store writes every 20 ms
      b.kill();
      await until(
        "a owns every shard",
        () => owned(a),
        (o) => o.length === SHARDS.length,
        30_000,
      );
      for (const s of ofB) {
        const resumed = await until(
          `a publishes shard ${s}`,
          () => shardOf(a, s),
          (r) => r.active === true,
        );
        expect(resumed.epoch).toBeGreaterThan(epochs.get(s) as number);
        expect(resumed.value).toEqual({ [`k${s}`]: { n: s, label: "b" }, extra: { n: 100 + s, label: "x" } });
        await a.send("patch", { shard: s, patch: { moved: { n: s, label: "a" } } });
      }
      for (const s of SHARDS) {
        expect((await converged(everyShard, a, s)).value).toEqual((await shardOf(a, s)).value);
        const got = await converged(watcher, a, s);
        expect(got.value).toEqual((await shardOf(a, s)).value);
        if (ofB.includes(s)) {
          expect(got.epoch).toBeGreaterThan(epochs.get(s) as number);
          expect(got.value).toHaveProperty("moved");
        } else expect(got.epoch).toBe(epochs.get(s));
      }
      // The set: live as a whole, every shard's value by number, changes reported with their shard.
      const set = (await everyShard.send("all")) as unknown as {
        status: string;
        reasons: Record<string, string>;
        current: unknown[];
        changes: Record<string, number>;
      };
      expect(set.status).toBe("live");
      expect(set.reasons).toEqual({});
      for (const s of SHARDS) {
        expect(set.current[s]).toEqual((await shardOf(a, s)).value);
        expect(set.changes[String(s)]).toBeGreaterThanOrEqual(1);
      }
    }, 120_000);
  });
}
