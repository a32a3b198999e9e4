/**
 * Issue 12's acceptance lines that the other suites show in one process, shown here between
 * processes on etcd: a pinned shard registered in discovery (`fanc ls` marks it), the handlers'
 * `onShards` in each child told what they gained and lost, a call that reaches the old owner
 * redirected to the new one and retried there (http, amqp and redis), the route
 * `/shop/{storeId}/item/{itemId}` sharded by `storeId` alone over plain http, and versions
 * 1.4.0, 2.0.3 and 2.1.0 served by three processes at once with `fanc route pin` honoured by
 * two client Apps within a second. Also runs the docs' Python shard function on the vectors.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run as ls } from "../../src/cli/ls.js";
import { run as route } from "../../src/cli/route.js";
import { type App, createApp } from "../../src/runtime/index.js";
import { assignShards, shardOfKey } from "../../src/runtime/call/shards.js";
import type { ShardChange } from "../../src/runtime/index.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { describeEtcd, SHARED_ETCD, until } from "../discovery/helpers.js";
import { type Child, changes, clientApps, kill, serveStore, tearDown } from "./helpers.js";
import { deleteByPrefix } from "../transports/amqp-broker.js";
import { Store } from "./fixtures/generated/test/shards.js";

const AMQP = process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const REDIS = process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379";
const transports = ["http", "amqp", "redis"] as const;
const name = Store.descriptor.name;

const rejection = (p: Promise<unknown>): Promise<{ code: string; message: string } | undefined> =>
  p.then(
    () => undefined,
    (e: { code: string; message: string }) => e,
  );

describeEtcd("fallback-processes: pins, onShards, redirects and @route keys between processes (etcd)", () => {
  const cluster = `fallback-own-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const ids = ["fallback-p", "fallback-q"];
  const D = ["--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  let children: Child[] = [];
  let app: App;
  /** Its discovery view runs 700 ms behind (the redirect waits up to 1 s for it). */
  let stale: App;

  beforeAll(async () => {
    children = await Promise.all(
      ids.map((instanceId) =>
        serveStore({ etcd: SHARED_ETCD, cluster, instanceId, transports: [...transports], leaseTtlMs: 5000 }),
      ),
    );
    ({ app, stale } = await clientApps(cluster, { http: {}, amqp: { url: AMQP }, redis: { url: REDIS } }, 2));
  }, 120_000);

  afterAll(() => tearDown(cluster, children, [app, stale]));

  it("/shop/{storeId}/item/{itemId} with @shard(storeId): plain http binds the route's storeId; the owner answers, the other refuses naming it", async () => {
    const owners = assignShards(
      ids.map((instanceId) => ({ instanceId, shards: [] })),
      16,
    );
    const set = await app.watch(name);
    const urls = Object.fromEntries(set.instances().map((i) => [i.instanceId, i.endpoints.http as string]));
    const client = app.client(Store);
    for (let i = 0; i < 6; i++) {
      const storeId = `fallback-s${i}`;
      const shard = shardOfKey([storeId], 16);
      const owner = owners[shard] as string;
      const other = ids.find((x) => x !== owner) as string;
      // Different items of one store land on the same shard and owner.
      for (const itemId of ["a", "b"]) {
        const ok = await fetch(`${urls[owner]}/shop/${storeId}/item/${itemId}`);
        expect(ok.status).toBe(200);
        const where = (await ok.json()) as { instanceId: string; owned: number[] };
        expect([where.instanceId, where.owned.includes(shard)]).toEqual([owner, true]);
        const refused = await fetch(`${urls[other]}/shop/${storeId}/item/${itemId}`);
        expect(refused.status).toBe(503);
        expect(JSON.stringify(await refused.json())).toContain(`"owner":"${owner}"`);
        expect((await client.shopItem({ storeId, itemId })).instanceId).toBe(owner);
      }
    }
  }, 60_000);

  it("a pinning instance joins: registered with its pin (fanc ls), onShards tells each child what it gained and lost, and a stale client is redirected to the new owner on http, amqp and redis", async () => {
    const before = assignShards(
      ids.map((instanceId) => ({ instanceId, shards: [] })),
      16,
    );
    const key = "fallback-pinned";
    const shard = shardOfKey([key], 16);
    const oldOwner = children.find((c) => c.instanceId === before[shard]) as Child;
    // Each child's onShards has told it its part of the table (the first one to register was
    // first told all 16 shards, then lost half when the second one joined).
    for (const c of children)
      expect(changes(c).at(-1)?.owned).toEqual([...Array(16).keys()].filter((s) => before[s] === c.instanceId));
    const told = new Map(children.map((c) => [c, changes(c).length]));
    for (const transport of transports)
      expect((await stale.client(Store, { transport }).store({ storeId: key })).instanceId).toBe(oldOwner.instanceId);

    const pinner = await serveStore({
      etcd: SHARED_ETCD,
      cluster,
      instanceId: "fallback-r",
      transports: [...transports],
      leaseTtlMs: 5000,
      shards: [shard],
    });
    children.push(pinner);
    await until(
      "the old owner to hand the shard over",
      () => changes(oldOwner).some((c) => c.lost.includes(shard)),
      20_000,
      5,
    );
    // The stale client does not see the pinner yet: it sends to the old owner, which redirects.
    const staleView = (await stale.watch(name)).instances().map((i) => i.instanceId);
    const calls = transports.map((transport) => stale.client(Store, { transport }).store({ storeId: key }));
    expect(staleView).not.toContain("fallback-r");
    for (const r of await Promise.all(calls)) expect([r.instanceId, r.owned]).toEqual(["fallback-r", [shard]]);

    // It gains the shard once the old owner released it (the hand-over): in its first change,
    // or in the one after when its first view still saw the old owner's record serving it.
    expect(changes(pinner).flatMap((c) => c.gained)).toEqual([shard]);
    expect(changes(pinner).at(-1)).toEqual({ owned: [shard], gained: [shard], lost: [] });
    const since = (c: Child): ShardChange[] => changes(c).slice(told.get(c));
    expect(since(oldOwner).map((c) => [c.gained, c.lost])).toEqual([[[], [shard]]]);
    expect(since(oldOwner)[0]?.owned).not.toContain(shard);
    // The other child keeps its shards: nothing gained or lost.
    const other = children.find((c) => c.instanceId !== oldOwner.instanceId && ids.includes(c.instanceId)) as Child;
    expect(since(other).flatMap((c) => [...c.gained, ...c.lost])).toEqual([]);

    // Discovery holds the pin; fanc ls shows it.
    const lines: string[] = [];
    const io = { out: (t: string) => lines.push(t), err: (t: string) => lines.push(t) };
    expect(await ls([name, ...D, "--json"], io)).toBe(0);
    const listed = JSON.parse(lines.join("\n")) as { instanceId: string; shards: number[]; ownedShards: number[] }[];
    expect(listed.find((i) => i.instanceId === "fallback-r")).toMatchObject({ shards: [shard], ownedShards: [shard] });
    lines.length = 0;
    expect(await ls([name, ...D], io)).toBe(0);
    expect(lines.join("\n")).toContain(`${shard}/16 pinned`);
    // An up-to-date client goes straight to the pinner.
    for (const transport of transports)
      expect((await app.client(Store, { transport }).store({ storeId: key })).instanceId).toBe("fallback-r");
  }, 90_000);
});

describeEtcd("fallback-versions: three versions in three processes, pinned live (etcd, http, amqp)", () => {
  const cluster = `fallback-ver-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const versions = ["1.4.0", "2.0.3", "2.1.0"];
  const D = ["--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  const io = { lines: [] as string[], out: (t: string) => io.lines.push(t), err: (t: string) => io.lines.push(t) };
  let children: Child[] = [];
  let apps: App[] = [];

  beforeAll(async () => {
    children = await Promise.all(
      versions.map((version) =>
        serveStore({
          etcd: SHARED_ETCD,
          cluster,
          instanceId: `fallback-v${version.replaceAll(".", "_")}`,
          transports: ["http", "amqp"],
          version,
          leaseTtlMs: 5000,
        }),
      ),
    );
    apps = [0, 1].map(() =>
      createApp({
        cluster,
        discovery: `etcd://${SHARED_ETCD}`,
        logger: silentLogger(),
        transports: { http: {}, amqp: { url: AMQP } },
      }),
    );
    await Promise.all(apps.map((a) => a.start()));
    for (const a of apps) {
      const set = await a.watch(name);
      await until("three versions", () => set.instances().length === 3, 20_000);
    }
  }, 120_000);

  afterAll(async () => {
    await route(["clear", name, ...D], io);
    await Promise.all(children.map(kill));
    await Promise.allSettled(apps.map((a) => a.stop()));
    await deleteByPrefix(`fan.${cluster}`);
  });

  const versionsOf = async (
    a: App,
    opts: { version?: string; transport: "http" | "amqp" },
    n = 40,
  ): Promise<Set<string>> => {
    const c = a.client(Store, opts);
    return new Set((await Promise.all(Array.from({ length: n }, (_, i) => c.any({ n: i })))).map((r) => r.version));
  };

  it("^1, ~2.0 and ^2 each reach theirs over http and amqp; @since(2.1.0) skips the older ones", async () => {
    for (const transport of ["http", "amqp"] as const) {
      expect(await versionsOf(apps[0] as App, { version: "^1", transport })).toEqual(new Set(["1.4.0"]));
      expect(await versionsOf(apps[0] as App, { version: "~2.0", transport })).toEqual(new Set(["2.0.3"]));
      expect(await versionsOf(apps[0] as App, { version: "^2", transport })).toEqual(new Set(["2.0.3", "2.1.0"]));
      expect(await versionsOf(apps[0] as App, { transport })).toEqual(new Set(["2.0.3", "2.1.0"]));
      const fresh = (apps[0] as App).client(Store, { transport });
      const got = await Promise.all(Array.from({ length: 20 }, (_, n) => fresh.fresh({ n })));
      expect(new Set(got.map((r) => r.version))).toEqual(new Set(["2.1.0"]));
      const old = await rejection((apps[0] as App).client(Store, { transport, version: "~2.0" }).fresh({ n: 1 }));
      expect(old?.code).toBe("UNIMPLEMENTED");
      expect(old?.message).toContain("run 2.0.3");
    }
  }, 60_000);

  it("fanc route pin reaches both client Apps within a second, and clear restores their range", async () => {
    // Warm both clients' routes (a rule applies to the next call of a client that routes already).
    for (const a of apps) expect((await versionsOf(a, { transport: "http" })).size).toBe(2);
    const t0 = Date.now();
    expect(await route(["pin", name, "2.0.3", ...D], io)).toBe(0);
    const took = await Promise.all(
      apps.map(async (a) => {
        const c = a.client(Store, { transport: "http" });
        await until(
          "the pin to apply",
          async () =>
            (await c.any({ n: 0 })).version === "2.0.3" && (await versionsOf(a, { transport: "http" }, 20)).size === 1,
          10_000,
          5,
        );
        return Date.now() - t0;
      }),
    );
    console.info(`pin honoured by both apps after ${took.join(" and ")} ms`);
    for (const ms of took) expect(ms).toBeLessThan(1000);
    for (const a of apps) expect(await versionsOf(a, { transport: "amqp" }, 100)).toEqual(new Set(["2.0.3"]));
    expect(await route(["clear", name, ...D], io)).toBe(0);
    for (const a of apps)
      await until(
        "the clear to apply",
        async () => (await versionsOf(a, { transport: "http" })).size === 2,
        10_000,
        10,
      );
  }, 60_000);
});

describe("fallback-python: the docs' Python shard function agrees with the runtime", () => {
  const python = (() => {
    try {
      execFileSync("python3", ["--version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!python)("on the docs' vectors and 200 more keys, tuples included", () => {
    const doc = readFileSync(fileURLToPath(new URL("../../docs/sharding.md", import.meta.url)), "utf8");
    const fn = /```python\n([\s\S]*?)```/.exec(doc)?.[1] as string;
    expect(fn).toContain("def shard(parts, n):");
    const keys: string[][] = [["store-1"], ["store-1", "item-9"], ["Ünïcode"]];
    for (let i = 0; i < 200; i++) keys.push(i % 2 === 0 ? [`k${i}`] : [`s${i}`, `i${i * 7}`, "ü"]);
    const script = `${fn}\nimport json, sys\nfor parts in json.load(sys.stdin):\n    print(shard(parts, 16), shard(parts, 64))\n`;
    const out = execFileSync("python3", ["-c", script], { input: JSON.stringify(keys), encoding: "utf8" });
    const expected = keys.map((k) => `${shardOfKey(k, 16)} ${shardOfKey(k, 64)}`);
    const lines = out.trim().split("\n");
    expect(lines).toEqual(expected);
    // The table in docs/sharding.md: ("store-1") 11 of 16, ("store-1", "item-9") 58 of 64, ("Ünïcode") 2 of 16.
    expect(lines.slice(0, 3).map((l, i) => l.split(" ")[i === 1 ? 1 : 0])).toEqual(["11", "58", "2"]);
  });
});
