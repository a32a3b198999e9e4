/**
 * A sharded state (`state totals: Entry @full @shard` of ShardBoard, 8 shards) through
 * `fanc gateway`: an owner App in another process publishes every shard on redis; the gateway
 * streams one shard over SSE, named by `?shard=N` or by `?key=K` (hashed as `watch({ key })`
 * hashes it), read here with plain fetch: the shard's current value first, then its updates
 * and none of another shard's. Without either parameter the gateway answers 400 naming the
 * state and the missing parameter. fan/browser's client (`connect`, run here with undici's
 * EventSource) watches a shard by `{ shard }` and by `{ key }` the same way. `?shard=all` streams
 * every shard on one stream, each line naming its shard (`{"shard":N,"status":S}` for each shard's
 * status first, then `{"shard":N,"value":V}` for each value held and every change), and
 * fan/browser's `watchAll()` reads it into a `ShardedStateSet` as the Node client's: every
 * shard's value, changes with their shard, and `owner-absent` with a reason per shard once the
 * owner stops (that test stops it, so it runs last).
 */
import { EventSource } from "undici";
import { afterAll, beforeAll, expect, it } from "vitest";
import { connect } from "../../src/browser/index.js";
import { shardOfKey } from "../../src/runtime/shard-key.js";
import { ShardBoard } from "../states/fixtures/generated/fan/replica.js";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { runnable, uniqueCluster, up } from "../transports/processes.js";
import { REDIS_URL } from "../transports/redis-server.js";
import { Node, until } from "../states/processes.js";
import { type LocalGateway, openSse, startGateway } from "./helpers.js";

const STATES_IDL = "test/states/fixtures/idl";
const PATH = "_fan/states/fan.replica.ShardBoard/totals";

describeWithBroker(
  runnable("redis") && up.etcd,
  "redis or etcd",
  "gateway sharded states",
)("gateway streams one shard of a sharded state served on redis by another process", () => {
  const cluster = uniqueCluster("gw-shard");
  let owner: Node | undefined;
  let gw: LocalGateway | undefined;

  beforeAll(async () => {
    owner = await Node.start("owner", {
      FAN_STATES_CLUSTER: cluster,
      FAN_STATES_TRANSPORTS: JSON.stringify({ redis: { url: REDIS_URL } }),
      FAN_STATES_SERVICE: "ShardBoard",
      FAN_STATES_STATE: "totals",
    });
    // The only instance owns all eight shards once its ownership has settled.
    await until(
      "the owner owns every shard",
      async () => ((await owner?.send("owned"))?.owned as number[] | undefined) ?? [],
      (o) => o.length === 8,
    );
    gw = await startGateway(cluster, ["--transports", "redis"], STATES_IDL);
  }, 180_000);

  afterAll(async () => {
    try {
      await Promise.race([gw?.stop(), new Promise((r) => setTimeout(r, 15_000))]);
    } finally {
      await owner?.stop();
    }
  }, 60_000);

  it("streams the shard named by ?shard=N: its value, then its updates only", async () => {
    await owner?.send("set", { shard: 3, value: { n: 30, label: "three" } });
    await owner?.send("set", { shard: 5, value: { n: 50, label: "five" } });
    const sse = await openSse(`${gw?.url}/${PATH}?shard=3`);
    try {
      expect(JSON.parse(await sse.next())).toEqual({ n: 30, label: "three" });
      // Another shard's change is not on this stream; the next line is shard 3's own update.
      await owner?.send("set", { shard: 5, value: { n: 51, label: "five again" } });
      await owner?.send("set", { shard: 3, value: { n: 31, label: "three again" } });
      expect(JSON.parse(await sse.next())).toEqual({ n: 31, label: "three again" });
    } finally {
      sse.close();
    }
  }, 60_000);

  it("streams the shard of ?key=K, hashed as watch({ key }) hashes it", async () => {
    const shard = shardOfKey(["cart-42"], 8);
    await owner?.send("set", { shard, value: { n: 42, label: "by key" } });
    const sse = await openSse(`${gw?.url}/${PATH}?key=cart-42`);
    try {
      expect(JSON.parse(await sse.next())).toEqual({ n: 42, label: "by key" });
    } finally {
      sse.close();
    }
  }, 60_000);

  it("answers 400 naming the state and the missing parameter when no shard is named", async () => {
    const res = await fetch(`${gw?.url}/${PATH}`, { headers: { accept: "text/event-stream" } });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe("INVALID_ARGUMENT");
    expect(body.message).toContain("fan.replica.ShardBoard.totals");
    expect(body.message).toMatch(/shard parameter is missing; name one with \?shard=<0\.\.7> or \?key=<key>/);
    for (const q of ["shard=8", "shard=x", "shard=1&key=a"]) {
      const bad = await fetch(`${gw?.url}/${PATH}?${q}`);
      expect(bad.status, q).toBe(400);
      await bad.body?.cancel();
    }
  }, 30_000);
  it("fan/browser's client watches one shard by { shard } and by { key }", async () => {
    const g = globalThis as { EventSource?: unknown };
    const had = g.EventSource;
    g.EventSource = EventSource;
    const board = connect(ShardBoard, { url: gw?.url as string });
    const shard = board.states.totals.shardOf("cart-7");
    expect(shard).toBe(shardOfKey(["cart-7"], 8));
    const other = (shard + 1) % 8;
    await owner?.send("set", { shard, value: { n: 7, label: "seven" } });
    await owner?.send("set", { shard: other, value: { n: 8, label: "other" } });
    const byKey = board.states.totals.watch({ key: "cart-7" });
    const byShard = board.states.totals.watch({ shard: other });
    try {
      expect(byKey.shard).toBe(shard);
      expect(await byKey.ready(10_000)).toEqual({ n: 7, label: "seven" });
      expect(await byShard.ready(10_000)).toEqual({ n: 8, label: "other" });
      const seen: unknown[] = [];
      byKey.subscribe((c) => void seen.push(c.value));
      await owner?.send("set", { shard: other, value: { n: 9, label: "other again" } });
      await owner?.send("set", { shard, value: { n: 70, label: "seven again" } });
      await until(
        "the keyed view gets its shard's update",
        async () => seen,
        (v) => v.length > 0,
      );
      expect(seen).toEqual([{ n: 70, label: "seven again" }]);
      expect(() => board.states.totals.watch({ shard: 8 })).toThrow(/shards 0\.\.7, not 8/);
    } finally {
      await byKey.close();
      await byShard.close();
      g.EventSource = had;
    }
  }, 60_000);

  it("streams every shard on ?shard=all: each shard's status, the values held, then changes naming their shard", async () => {
    await owner?.send("set", { shard: 1, value: { n: 10, label: "one" } });
    type Line = { shard: number; status?: string; value?: unknown };
    const sse = await openSse(`${gw?.url}/${PATH}?shard=all`);
    const again = { sse: undefined as Awaited<ReturnType<typeof openSse>> | undefined };
    try {
      // A status line per shard first (the set behind the stream was just made: not live yet).
      const first = (await Promise.all(Array.from({ length: 8 }, () => sse.next()))).map((l) => JSON.parse(l) as Line);
      expect(first.map((l) => l.shard)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      for (const l of first) expect(["connecting", "live"]).toContain(l.status);
      // Then every shard goes live with its value.
      const status = new Map(first.map((l) => [l.shard, l.status]));
      const values = new Map<number, unknown>();
      while ([...status.values()].some((s) => s !== "live") || !values.has(1)) {
        const l = JSON.parse(await sse.next()) as Line;
        if ("value" in l) values.set(l.shard, l.value);
        else status.set(l.shard, l.status);
      }
      expect(values.get(1)).toEqual({ n: 10, label: "one" });
      // A second stream shares the set: every shard live at once, then the values held.
      again.sse = await openSse(`${gw?.url}/${PATH}?shard=all`);
      const live = await Promise.all(Array.from({ length: 8 }, () => (again.sse as typeof sse).next()));
      expect(live.map((l) => JSON.parse(l))).toEqual(
        Array.from({ length: 8 }, (_, shard) => ({ shard, status: "live" })),
      );
      const held = JSON.parse(await again.sse.next()) as Line;
      expect(held.value).toEqual(values.get(held.shard));
      await owner?.send("set", { shard: 6, value: { n: 60, label: "six" } });
      let next = JSON.parse(await sse.next()) as Line;
      while (next.shard !== 6 || !("value" in next)) next = JSON.parse(await sse.next());
      expect(next).toEqual({ shard: 6, value: { n: 60, label: "six" } });
    } finally {
      sse.close();
      again.sse?.close();
    }
  }, 60_000);

  it("fan/browser's watchAll() reads every shard from one stream into a ShardedStateSet", async () => {
    const g = globalThis as { EventSource?: unknown };
    const had = g.EventSource;
    g.EventSource = EventSource;
    const board = connect(ShardBoard, { url: gw?.url as string });
    await owner?.send("set", { shard: 0, value: { n: 0, label: "zero" } });
    const all = board.states.totals.watchAll();
    try {
      const values = await all.ready(10_000);
      expect(values).toHaveLength(8);
      expect(values[0]).toEqual({ n: 0, label: "zero" });
      expect(all.status).toBe("live");
      expect(all.reasons.size).toBe(0);
      expect(all.views.map((v) => v.shard)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      const seen: { shard: number; value: unknown }[] = [];
      all.subscribe((c) => void seen.push({ shard: c.shard, value: c.value }));
      await owner?.send("set", { shard: 4, value: { n: 44, label: "four" } });
      await until(
        "the set gets shard 4's update",
        async () => seen,
        (v) => v.length > 0,
      );
      expect(seen).toEqual([{ shard: 4, value: { n: 44, label: "four" } }]);
      expect(all.current[4]).toEqual({ n: 44, label: "four" });
      // The iterator starts with what each shard holds, as a snapshot of that shard.
      const it = all[Symbol.asyncIterator]();
      const firstChange = await it.next();
      expect(firstChange.value).toMatchObject({ cause: "snapshot" });
      await it.return?.();
    } finally {
      await all.close();
      g.EventSource = had;
    }
    expect(all.status).toBe("closed");
  }, 60_000);

  it("reports owner-absent per shard on ?shard=all once the owner stops (runs last: stops the owner)", async () => {
    const g = globalThis as { EventSource?: unknown };
    const had = g.EventSource;
    g.EventSource = EventSource;
    const board = connect(ShardBoard, { url: gw?.url as string });
    const all = board.states.totals.watchAll();
    const statuses: string[] = [];
    all.onStatus((s) => void statuses.push(s));
    try {
      await all.ready(10_000);
      await owner?.stop();
      await until(
        "every shard is owner-absent",
        async () => all.reasons,
        (r) => r.size === 8 && all.status === "owner-absent",
      );
      expect(statuses).toContain("owner-absent");
      for (const [shard, reason] of all.reasons) expect(reason, `shard ${shard}`).toMatch(/shard|owner|instance/i);
      await expect(all.ready(200)).rejects.toThrow(/not every shard is live/);
    } finally {
      await all.close();
      g.EventSource = had;
    }
  }, 90_000);
});
