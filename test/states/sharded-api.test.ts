/**
 * Sharded states in one process: the generated types (`ctx.states.carts` is a
 * `ShardedStatePublisher`, `client.states.carts` a `ShardedStateHandle`), a handler that
 * patches its key's shard, a watcher by key in another App, the errors of a watch that names
 * no shard, the mock and the test kit, and the warning when a state that is not sharded has
 * several owners.
 */
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { afterEach, describe, expect, expectTypeOf, it } from "vitest";
import { run as watchCli } from "../../src/cli/state-watch.js";
import { type App, createApp } from "../../src/runtime/app/app.js";
import type { ShardedStateHandle, ShardedStateView } from "../../src/runtime/descriptor.js";
import { shortId } from "../../src/runtime/ids.js";
import type { ShardedStatePublisher, StatePublisher } from "../../src/runtime/states/index.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { createTestApp } from "../../src/testing/index.js";
import {
  Board,
  type Entry,
  ShardBoard,
  type ShardBoardHandler,
  mockShardBoard,
} from "./fixtures/generated/fan/replica.js";

type Ctx = Parameters<ShardBoardHandler["ping"]>[1];

const apps: App[] = [];
afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
});

describe("sharded states in one process", () => {
  it("the generated types: the owner side per shard, the client side by shard or key", () => {
    expectTypeOf<Ctx["states"]["carts"]>().toEqualTypeOf<ShardedStatePublisher<Record<string, Entry>>>();
    expectTypeOf<Ctx["states"]["totals"]["shard"]>().returns.toEqualTypeOf<StatePublisher<Entry>>();
    type Client = ReturnType<typeof ShardBoard.createClient>;
    expectTypeOf<Client["states"]["carts"]>().toEqualTypeOf<ShardedStateHandle<Record<string, Entry>>>();
    const typed = (ctx: Ctx, c: Client): void => {
      ctx.states.carts.forKey("c1").patch({ c1: { n: 1, label: "x" } });
      // @ts-expect-error: a sharded state has no single value to set
      ctx.states.carts.set({});
      // @ts-expect-error: totals is an Entry
      ctx.states.totals.shard(0).set(1);
      const v: ShardedStateView<Entry> = c.states.totals.watch({ shard: 0 });
      void v.shard;
      // @ts-expect-error: a sharded watch names its shard
      c.states.carts.watch();
    };
    expect(typeof typed).toBe("function");
  });

  it("a handler patches its key's shard; a watcher by key in another App sees it; a watch naming no shard is refused", async () => {
    const cluster = `shardstate-api-${process.pid}-${shortId()}`;
    const handler: ShardBoardHandler = {
      ping: (_req, ctx) => {
        ctx.states.carts.forKey("cart-7").patch({ "cart-7": { n: 7, label: ctx.method } });
        return "pong";
      },
    };
    const owner = createApp({ cluster, discovery: "memory", logger: silentLogger() }).serve(ShardBoard, handler);
    apps.push(owner);
    await owner.start();
    const watcher = createApp({ cluster, discovery: "memory", logger: silentLogger() });
    apps.push(watcher);
    await watcher.start();
    const carts = watcher.client(ShardBoard).states.carts;
    const shard = carts.shardOf("cart-7");
    expect(owner.publisher(ShardBoard).state("carts").shardOf("cart-7")).toBe(shard);
    const view = carts.watch({ key: "cart-7" });
    expect(view.shard).toBe(shard);
    expect(await watcher.client(ShardBoard).ping()).toBe("pong");
    expect(await view.ready()).toEqual({ "cart-7": { n: 7, label: "ping" } });
    expect(await carts.get({ shard })).toEqual({ "cart-7": { n: 7, label: "ping" } });
    // Another shard has no value, and its own epoch and sequence.
    const other = (shard + 1) % ShardBoard.descriptor.shards;
    await expect(carts.get({ shard: other })).rejects.toThrow(`shard ${other} has no value yet`);
    expect(owner.publisher(ShardBoard).state("carts").shard(other).seq).toBe(0);
    expect(owner.publisher(ShardBoard).state("carts").owned()).toHaveLength(ShardBoard.descriptor.shards);
    // Watching a sharded state without a shard, or an out-of-range shard: refused, naming it.
    expect(() => (carts as unknown as { watch(): unknown }).watch()).toThrow("is sharded (@shard): name the shard");
    expect(() => carts.watch({ shard: 99 })).toThrow("has shards 0..7, not 99");
    // The untyped owner of a sharded state refuses the single-value members.
    expect(() => (owner.publisher(ShardBoard).state("carts") as unknown as StatePublisher<unknown>).set({})).toThrow(
      "is sharded (@shard): use shard(n) or forKey(key)",
    );
    await view.close();
  });

  it("watchAll: every shard in one set, live once all are, each change with its shard; owner-absent naming the shards when the owner goes", async () => {
    const cluster = `shardstate-all-${process.pid}-${shortId()}`;
    const states = { heartbeatMs: 50 };
    const owner = createApp({ cluster, discovery: "memory", logger: silentLogger(), states }).serve(ShardBoard, {
      ping: (_req, ctx) => {
        ctx.states.carts.forKey("cart-7").patch({ "cart-7": { n: 7, label: "ping" } });
        return "pong";
      },
    });
    apps.push(owner);
    await owner.start();
    owner
      .publisher(ShardBoard)
      .state("carts")
      .shard(0)
      .set({ zero: { n: 0, label: "0" } });
    const watcher = createApp({ cluster, discovery: "memory", logger: silentLogger(), states });
    apps.push(watcher);
    await watcher.start();
    const carts = watcher.client(ShardBoard).states.carts;
    const set = carts.watchAll();
    expect(set.views.map((v) => v.shard)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const seen: number[] = [];
    set.subscribe((c) => seen.push(c.shard));
    const first = await set.ready();
    expect(set.status).toBe("live");
    expect(first).toHaveLength(8);
    expect(first[0]).toEqual({ zero: { n: 0, label: "0" } });
    const shard = carts.shardOf("cart-7");
    await watcher.client(ShardBoard).ping();
    await expect
      .poll(() => set.current[shard])
      .toEqual({
        ...(shard === 0 ? { zero: { n: 0, label: "0" } } : {}),
        "cart-7": { n: 7, label: "ping" },
      });
    expect(seen).toContain(shard);
    // The owner gone: the set is owner-absent and names every shard that waits.
    await owner.stop();
    // Each shard's view misses the heartbeats on its own watchdog: the set is owner-absent as
    // soon as one shard is, and names every shard once all have noticed.
    await expect.poll(() => `${set.status} ${set.reasons.size}`, { timeout: 5000 }).toBe("owner-absent 8");
    expect([...set.reasons.keys()].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    await expect(set.ready(200)).rejects.toThrow(
      /fan\.replica\.ShardBoard\.carts: not every shard is live after 200 ms \(shard 0: /,
    );
    await set.close();
    expect(set.status).toBe("closed");
  });

  it("iterating a view and a set: what is held first as a snapshot, then each change, until closed", async () => {
    const cluster = `shardstate-iter-${process.pid}-${shortId()}`;
    const owner = createApp({ cluster, discovery: "memory", logger: silentLogger() }).serve(ShardBoard, {
      ping: () => "pong",
    });
    apps.push(owner);
    await owner.start();
    const carts = owner.publisher(ShardBoard).state("carts");
    carts.shard(2).set({ a: { n: 1, label: "a" } });
    const watcher = createApp({ cluster, discovery: "memory", logger: silentLogger() });
    apps.push(watcher);
    await watcher.start();
    const handle = watcher.client(ShardBoard).states.carts;

    const view = handle.watch({ shard: 2 });
    await view.ready();
    const seen: string[] = [];
    const one = (async () => {
      for await (const c of view) seen.push(`${c.cause}:${Object.keys(c.value ?? {}).join(",")}`);
    })();
    carts.shard(2).patch({ b: { n: 2, label: "b" } });
    await expect.poll(() => seen).toEqual(["snapshot:a", "patch:a,b"]);
    await view.close();
    await one; // the loop ends with the view

    const set = handle.watchAll();
    await set.ready();
    const got: string[] = [];
    const all = (async () => {
      for await (const c of set) got.push(`${c.shard}:${c.cause}`);
    })();
    await expect.poll(() => got).toContain("2:snapshot");
    carts.shard(5).set({ z: { n: 5, label: "z" } });
    await expect.poll(() => got).toContain("5:full");
    await set.close();
    await all;
  });

  it("the mock sets one shard's value for its client's watchers; the test kit forwards it to the serving App", async () => {
    const m = mockShardBoard();
    m.setState("carts", { a: { n: 1, label: "a" } }, { shard: 2 });
    m.patchState("carts", { b: { n: 2, label: "b" } }, { shard: 2 });
    m.setState("totals", { n: 5, label: "five" }, { key: "k" });
    expect(() => m.setState("carts", {})).toThrow("is sharded");
    const view = m.client.states.carts.watch({ shard: 2 });
    expect(await view.ready()).toEqual({ a: { n: 1, label: "a" }, b: { n: 2, label: "b" } });
    expect(await m.client.states.totals.get({ key: "k" })).toEqual({ n: 5, label: "five" });
    await view.close();

    const app = createTestApp().mock(m);
    apps.push(app);
    await app.start();
    const served = app.client(ShardBoard).states.carts.watch({ shard: 2 });
    expect(await served.ready()).toEqual({ a: { n: 1, label: "a" }, b: { n: 2, label: "b" } });
    m.patchState("carts", { c: { n: 3, label: "c" } }, { shard: 2 });
    await expect.poll(() => Object.keys(served.current ?? {})).toEqual(["a", "b", "c"]);
    await served.close();
  });

  it("a state that is not sharded, served by two non-unique instances, warns naming the state", async () => {
    const cluster = `shardstate-warn-${process.pid}-${shortId()}`;
    const lines: { msg: string; states?: string[] }[] = [];
    const log = pino({ level: "warn" }, { write: (s: string) => void lines.push(JSON.parse(s) as { msg: string }) });
    const a = createApp({ cluster, discovery: "memory", logger: log }).serve(Board, { ping: () => "a" });
    apps.push(a);
    await a.start();
    expect(lines.filter((l) => l.msg.includes("have one owner per service"))).toHaveLength(0);
    const b = createApp({ cluster, discovery: "memory", logger: silentLogger() }).serve(Board, { ping: () => "b" });
    apps.push(b);
    await b.start();
    await expect
      .poll(() => lines.find((l) => l.msg.includes("have one owner per service"))?.states)
      .toEqual(["fan.replica.Board.entries", "fan.replica.Board.mode"]);
  });
});

describe("fanc watch of a sharded state", () => {
  const idl = fileURLToPath(new URL("./fixtures/idl", import.meta.url));
  const runWatch = async (args: string[]): Promise<{ code: number; err: string }> => {
    const err: string[] = [];
    const code = await watchCli(args, { out: () => undefined, err: (t) => void err.push(t) });
    return { code, err: err.join("\n") };
  };

  it("needs --shard on a sharded state, in range, and refuses it elsewhere", async () => {
    const missing = await runWatch(["fan.replica.ShardBoard.carts", "--idl", idl]);
    expect(missing.code).not.toBe(0);
    expect(missing.err).toContain(
      "fan.replica.ShardBoard.carts is sharded (@shard): give --shard <0..7> or --shard all",
    );
    const out = await runWatch(["fan.replica.ShardBoard.carts", "--idl", idl, "--shard", "8"]);
    expect(out.err).toContain("--shard must be an integer 0..7");
    const extra = await runWatch(["fan.replica.Board.entries", "--idl", idl, "--shard", "1"]);
    expect(extra.err).toContain("fan.replica.Board.entries is not sharded: --shard does not apply");
  });
});
