/**
 * A state stream through a default `fanc gateway` (every transport the IDL allows, redis
 * first among those that carry events) when the state's owner publishes on another one: the
 * owner (Board of test/states/fixtures/idl, `state mode: Entry @full`) runs in a child process
 * on nats alone, then on amqp alone. The gateway must subscribe on the owner's transport, read
 * from discovery as for event streams: every update reaches the SSE client (plain fetch) within
 * a second and in order, not only through the resync that follows three missed heartbeats. A
 * resync whose snapshot brings the value the stream already has sends nothing; a change after
 * it is sent. The same for every shard of a sharded state on one `?shard=all` stream (ShardBoard
 * `state totals: Entry @full @shard` on nats alone), where the resync shows as status lines only.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { forgetCluster, runnable, uniqueCluster, up } from "../transports/processes.js";
import { AMQP_URL } from "../transports/amqp-broker.js";
import { NATS_URL } from "../transports/nats-server.js";
import { Node, until } from "../states/processes.js";
import { type LocalGateway, openSse, type SseReader, startGateway } from "./helpers.js";

const STATES_IDL = "test/states/fixtures/idl";
const PATH = "_fan/states/fan.replica.Board/mode";
const PATH_ALL = "_fan/states/fan.replica.ShardBoard/totals";
/** How soon an update must reach the browser: well under the ~3-4 s of a heartbeat-driven resync. */
const LIVE_MS = 1000;

const owners = {
  nats: { nats: { url: NATS_URL } },
  amqp: { amqp: { url: AMQP_URL } },
} as const;

for (const transport of ["nats", "amqp"] as const) {
  describeWithBroker(
    runnable(transport) && runnable("redis") && up.etcd,
    `${transport}, redis or etcd`,
    `gateway state transport ${transport}`,
  )(`a default gateway streams a state owned by a service on ${transport} alone`, () => {
    const cluster = uniqueCluster(`gw-stv-${transport}`);
    let owner: Node | undefined;
    let gw: LocalGateway | undefined;

    beforeAll(async () => {
      owner = await Node.start("owner", {
        FAN_STATES_CLUSTER: cluster,
        FAN_STATES_TRANSPORTS: JSON.stringify(owners[transport]),
        FAN_STATES_SERVICE: "Board",
        FAN_STATES_STATE: "mode",
      });
      await owner.send("set", { value: { n: 0, label: "start" } });
      gw = await startGateway(cluster, [], STATES_IDL);
    }, 180_000);

    afterAll(async () => {
      try {
        await Promise.race([gw?.stop(), new Promise((r) => setTimeout(r, 15_000))]);
      } finally {
        await owner?.stop();
        await forgetCluster(cluster, [transport]);
      }
    }, 60_000);

    /** Sets `n` on the owner; resolves with the next data line and how long it took to come. */
    const change = async (sse: SseReader, n: number): Promise<{ value: unknown; ms: number }> => {
      const t0 = Date.now();
      await owner?.send("set", { value: { n, label: `v${n}` } });
      const value = JSON.parse(await sse.next(8000)) as unknown;
      return { value, ms: Date.now() - t0 };
    };

    it("sends the current value, then every update within a second, in order", async () => {
      const sse = await openSse(`${gw?.url}/${PATH}`);
      try {
        expect(JSON.parse(await sse.next())).toEqual({ n: 0, label: "start" });
        for (let n = 1; n <= 5; n++) {
          const { value, ms } = await change(sse, n);
          expect(value).toEqual({ n, label: `v${n}` });
          expect(ms, `update ${n} took ${ms} ms`).toBeLessThan(LIVE_MS);
        }
      } finally {
        sse.close();
      }
    }, 60_000);

    it("sends nothing for a resync that brings the same value, and the change after it at once", async () => {
      await owner?.send("set", { value: { n: 10, label: "ten" } });
      const sse = await openSse(`${gw?.url}/${PATH}`);
      try {
        expect(JSON.parse(await sse.next())).toEqual({ n: 10, label: "ten" });
        // The owner stalls 5 s: no heartbeat for three of the gateway's intervals, so its replica
        // says owner-absent and takes a snapshot, answered once the owner runs again.
        await owner?.send("deltas", { n: 0, stallMs: 5000 }, 30_000);
        await expect(sse.next(2500)).rejects.toThrow(/no event/);
        const { value, ms } = await change(sse, 11);
        expect(value).toEqual({ n: 11, label: "v11" });
        expect(ms).toBeLessThan(LIVE_MS);
      } finally {
        sse.close();
      }
    }, 60_000);
  });
}

describeWithBroker(
  runnable("nats") && runnable("redis") && up.etcd,
  "nats, redis or etcd",
  "gateway sharded state transport",
)("a default gateway streams every shard of a state owned by a service on nats alone (?shard=all)", () => {
  const cluster = uniqueCluster("gw-stv-all");
  let owner: Node | undefined;
  let gw: LocalGateway | undefined;
  type Line = { shard: number; status?: string; value?: unknown };

  beforeAll(async () => {
    owner = await Node.start("owner", {
      FAN_STATES_CLUSTER: cluster,
      FAN_STATES_TRANSPORTS: JSON.stringify(owners.nats),
      FAN_STATES_SERVICE: "ShardBoard",
      FAN_STATES_STATE: "totals",
    });
    await until(
      "the owner owns every shard",
      async () => ((await owner?.send("owned"))?.owned as number[] | undefined) ?? [],
      (o) => o.length === 8,
    );
    await owner.send("set", { shard: 2, value: { n: 20, label: "two" } });
    gw = await startGateway(cluster, [], STATES_IDL);
  }, 180_000);

  afterAll(async () => {
    try {
      await Promise.race([gw?.stop(), new Promise((r) => setTimeout(r, 15_000))]);
    } finally {
      await owner?.stop();
      await forgetCluster(cluster, ["nats"]);
    }
  }, 60_000);

  it("sends a shard's update within a second; a resync of unchanged values sends only statuses", async () => {
    const sse = await openSse(`${gw?.url}/${PATH_ALL}?shard=all`);
    try {
      const status = new Map<number, string | undefined>();
      let held: unknown;
      while (status.size < 8 || [...status.values()].some((s) => s !== "live") || held === undefined) {
        const l = JSON.parse(await sse.next()) as Line;
        if ("value" in l) {
          if (l.shard === 2) held = l.value;
        } else status.set(l.shard, l.status);
      }
      expect(held).toEqual({ n: 20, label: "two" });
      let t0 = Date.now();
      await owner?.send("set", { shard: 2, value: { n: 21, label: "two again" } });
      let first = JSON.parse(await sse.next(8000)) as Line;
      while (!("value" in first)) first = JSON.parse(await sse.next(8000)) as Line;
      expect(first).toEqual({ shard: 2, value: { n: 21, label: "two again" } });
      expect(Date.now() - t0).toBeLessThan(LIVE_MS);
      // The owner stalls 5 s: every shard goes owner-absent, then live again from a snapshot
      // that brings the value already sent (or none), which is not sent again.
      await owner?.send("deltas", { n: 0, stallMs: 5000 }, 30_000);
      const after: Line[] = [];
      await until(
        "every shard is live again after going owner-absent",
        async () => {
          try {
            after.push(JSON.parse(await sse.next(500)) as Line);
          } catch {
            // nothing within 0.5 s
          }
          return after;
        },
        (ls) => {
          const last = new Map<number, string | undefined>();
          for (const l of ls) if (!("value" in l)) last.set(l.shard, l.status);
          return (
            ls.some((l) => l.status === "owner-absent") &&
            last.size === 8 &&
            [...last.values()].every((s) => s === "live")
          );
        },
      );
      // Lines still on their way (a late snapshot) come within a second.
      await expect(sse.next(1500)).rejects.toThrow(/no event/);
      expect(after.filter((l) => "value" in l)).toEqual([]);
      t0 = Date.now();
      await owner?.send("set", { shard: 2, value: { n: 22, label: "two, later" } });
      let next = JSON.parse(await sse.next(8000)) as Line;
      while (!("value" in next)) next = JSON.parse(await sse.next(8000)) as Line;
      expect(next).toEqual({ shard: 2, value: { n: 22, label: "two, later" } });
      expect(Date.now() - t0).toBeLessThan(LIVE_MS);
    } finally {
      sse.close();
    }
  }, 90_000);
});
