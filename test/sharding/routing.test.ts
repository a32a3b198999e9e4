/**
 * Sharding between processes, over etcd and every transport: three child processes serve
 * `test.shards.Store`; calls from this process reach each key's owner (the owner the pure
 * `assignShards` names, which is also what the servers themselves computed); amqp, redis and
 * nats calls reach the owner's own queue or subject; a SIGKILLed owner's shards fail fast with UNAVAILABLE
 * naming the shard until its lease expires, then move to the survivors (only its keys move).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/index.js";
import { assignShards, ownedBy, shardOfKey } from "../../src/runtime/call/shards.js";
import { compactRanges, run as ls } from "../../src/cli/ls.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { describeEtcd, SHARED_ETCD, until } from "../discovery/helpers.js";
import { type Child, kill, serveStore } from "./helpers.js";
import { deleteByPrefix } from "../transports/amqp-broker.js";
import { deleteKeys } from "../transports/redis-server.js";
import { Store, type Where } from "./fixtures/generated/test/shards.js";

const AMQP = process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const REDIS = process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379";
const NATS = process.env.FAN_NATS_URL ?? "nats://127.0.0.1:4222";

describeEtcd("sharding between processes (etcd, http, zmq, amqp, redis, nats)", () => {
  const cluster = `shard-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const ids = ["Store-a", "Store-b", "Store-c"];
  let children: Child[] = [];
  let app: App;
  let other: App;

  const clientApp = (): App =>
    createApp({
      cluster,
      discovery: `etcd://${SHARED_ETCD}`,
      logger: silentLogger(),
      transports: { http: {}, zmq: {}, amqp: { url: AMQP }, redis: { url: REDIS }, nats: { url: NATS } },
    });

  const visible = async (a: App, n: number): Promise<void> => {
    const set = await a.watch(Store.descriptor.name);
    await until(`${n} Store instances`, () => set.instances().length === n, 20_000);
  };

  beforeAll(async () => {
    children = await Promise.all(
      ids.map((instanceId) =>
        serveStore({
          etcd: SHARED_ETCD,
          cluster,
          instanceId,
          transports: ["http", "zmq", "amqp", "redis", "nats"],
          leaseTtlMs: 5000,
        }),
      ),
    );
    app = clientApp();
    other = clientApp();
    await Promise.all([app.start(), other.start()]);
    await visible(app, 3);
    await visible(other, 3);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(children.map(kill));
    await Promise.allSettled([app?.stop(), other?.stop()]);
    // Store has a push member: its durable push queue (amqp) and stream (redis) outlive the instances.
    await Promise.allSettled([deleteKeys(`fan.${cluster}*`), deleteByPrefix(`fan.${cluster}`)]);
  });

  const keys = Array.from({ length: 200 }, (_, i) => `store-${i}`);

  it("every call reaches its key's owner, the same from two client apps; the owner agrees it owns the shard", async () => {
    const owners = assignShards(
      ids.map((instanceId) => ({ instanceId, shards: [] })),
      Store.descriptor.shards,
    );
    for (const a of [app, other]) {
      const store = a.client(Store);
      const replies = await Promise.all(keys.map((storeId) => store.store({ storeId })));
      replies.forEach((r: Where, i) => {
        const shard = shardOfKey([keys[i] as string], 16);
        expect(r.shard).toBe(shard);
        expect(r.instanceId).toBe(owners[shard]);
        expect(r.owned).toContain(shard);
      });
      // The complex key of the route /store/{storeId}/item/{itemId}.
      const items = await Promise.all(keys.map((storeId, i) => store.item({ storeId, itemId: `i${i}` })));
      items.forEach((r, i) => {
        const shard = shardOfKey([keys[i] as string, `i${i}`], 16);
        expect([r.shard, r.instanceId]).toEqual([shard, owners[shard]]);
      });
    }
    // Unsharded calls still spread over the instances.
    const spread = new Set(
      (await Promise.all(keys.map((_, n) => app.client(Store).any({ n })))).map((r) => r.instanceId),
    );
    expect(spread.size).toBeGreaterThan(1);
  }, 60_000);

  it("fanc ls shows each instance's shards, as the clients compute them", async () => {
    const owners = assignShards(
      ids.map((instanceId) => ({ instanceId, shards: [] })),
      16,
    );
    const lines: string[] = [];
    const io = { out: (t: string) => lines.push(t), err: (t: string) => lines.push(t) };
    expect(
      await ls([Store.descriptor.name, "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster, "--json"], io),
    ).toBe(0);
    const listed = JSON.parse(lines.join("\n")) as { instanceId: string; ownedShards: number[]; shardCount: number }[];
    for (const i of listed) {
      expect(i.shardCount).toBe(16);
      expect(i.ownedShards).toEqual(ownedBy(owners, i.instanceId));
    }
    lines.length = 0;
    expect(await ls([Store.descriptor.name, "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster], io)).toBe(0);
    expect(lines.join("\n")).toContain(`${compactRanges(ownedBy(owners, "Store-a"))}/16`);
  });

  for (const transport of ["http", "zmq", "amqp", "redis", "nats"] as const) {
    it(`over ${transport}, each call reaches the owner (the owner's own queue on brokers)`, async () => {
      const owners = assignShards(
        ids.map((instanceId) => ({ instanceId, shards: [] })),
        16,
      );
      const store = app.client(Store, { transport });
      const replies = await Promise.all(keys.slice(0, 100).map((storeId) => store.store({ storeId })));
      expect(replies.map((r) => r.instanceId)).toEqual(keys.slice(0, 100).map((k) => owners[shardOfKey([k], 16)]));
    }, 60_000);
  }

  it("an owner SIGKILLed: its shards fail fast with UNAVAILABLE naming the shard, then move to the survivors (only its keys)", async () => {
    const all = Array.from({ length: 1000 }, (_, i) => `k${i}`);
    const store = app.client(Store, { transport: "http" });
    const before = await Promise.all(all.map((storeId) => store.store({ storeId }).then((r) => r.instanceId)));
    const victim = children[2] as Child;
    const victimKeys = all.filter((_, i) => before[i] === victim.instanceId);
    expect(victimKeys.length).toBeGreaterThan(50);
    await kill(victim);

    // Until the lease (5 s) expires, the victim is still registered: its shards fail at once.
    const t0 = Date.now();
    const failure = await store.store({ storeId: victimKeys[0] as string }, { timeout: 5000 }).then(
      () => undefined,
      (e: { code: string; message: string; traceId?: string }) => e,
    );
    const shard = shardOfKey([victimKeys[0] as string], 16);
    expect(failure?.code).toBe("UNAVAILABLE");
    expect(failure?.message).toContain(`shard ${shard} of test.shards.Store`);
    // Reworded by the shard route, still with the call's trace id (docs/runtime.md).
    expect(failure?.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(Date.now() - t0).toBeLessThan(2500);
    // On amqp too: the owner's exclusive queue went with its connection, the broker returns the call.
    const t1 = Date.now();
    const viaAmqp = await app
      .client(Store, { transport: "amqp" })
      .store({ storeId: victimKeys[0] as string }, { timeout: 5000 })
      .then(
        () => undefined,
        (e: { code: string; message: string }) => e,
      );
    expect(viaAmqp?.code).toBe("UNAVAILABLE");
    expect(viaAmqp?.message).toContain(`shard ${shard} of test.shards.Store`);
    expect(Date.now() - t1).toBeLessThan(2500);
    // Keys of the survivors keep working meanwhile.
    const kept = all.find((_, i) => before[i] !== victim.instanceId) as string;
    expect((await store.store({ storeId: kept })).instanceId).not.toBe(victim.instanceId);

    await until(
      "the victim's shards to move",
      async () =>
        store.store({ storeId: victimKeys[0] as string }).then(
          () => true,
          () => false,
        ),
      20_000,
      100,
    );
    const after = await Promise.all(all.map((storeId) => store.store({ storeId }).then((r) => r.instanceId)));
    const moved = all.filter((_, i) => before[i] !== after[i]);
    expect(new Set(moved)).toEqual(new Set(victimKeys));
    expect(after).not.toContain(victim.instanceId);
    // About 1/k of the keys (k = 3; 16 shards make it coarse).
    expect(moved.length).toBeGreaterThan(1000 * 0.1);
    expect(moved.length).toBeLessThan(1000 * 0.6);
  }, 90_000);

  it("an instance joins: about 1/k of the keys move, all of them to the newcomer", async () => {
    const all = Array.from({ length: 1000 }, (_, i) => `j${i}`);
    const store = app.client(Store, { transport: "http" });
    const before = await Promise.all(all.map((storeId) => store.store({ storeId }).then((r) => r.instanceId)));
    const joiner = await serveStore({
      etcd: SHARED_ETCD,
      cluster,
      instanceId: "Store-d",
      transports: ["http", "zmq", "amqp", "redis"],
      leaseTtlMs: 5000,
    });
    children.push(joiner);
    await until(
      "the newcomer to take calls",
      async () =>
        (await Promise.all(all.slice(0, 100).map((storeId) => store.store({ storeId })))).some(
          (r) => r.instanceId === "Store-d",
        ),
      20_000,
      50,
    );
    const after = await Promise.all(all.map((storeId) => store.store({ storeId }).then((r) => r.instanceId)));
    const moved = all.filter((_, i) => before[i] !== after[i]);
    expect(new Set(moved.map((k) => after[all.indexOf(k)]))).toEqual(new Set(["Store-d"]));
    // k = 3 after the join (Store-a, Store-b, Store-d); 16 shards make it coarse.
    expect(moved.length).toBeGreaterThan(1000 * 0.1);
    expect(moved.length).toBeLessThan(1000 * 0.6);
  }, 90_000);
});
