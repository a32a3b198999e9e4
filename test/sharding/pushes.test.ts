/**
 * `@shard` pushes reach their shard's owner on the broker transports too, between processes:
 * three `test.shards.Store` children (etcd, amqp, redis, nats, http) print every `stock` push they
 * handle; pushes made here over amqp, redis and nats are each handled by their key's owner
 * (its own queue, list or subject, acknowledged by the owner), and a push to a dead owner fails with
 * `UNAVAILABLE` naming the shard, `maybeDelivered: false`. In one process, over the local
 * transport (several Apps on one hub, which hands a push to any instance of its service): each
 * sharded push is handled by its owner, and one sent to an instance that no longer owns its shard
 * is passed on to the owner that instance names, never lost. Over http, zmq, tcp, amqp, redis and
 * nats, a push a non-owner refuses with a redirect (the producer's view lags) is sent on by the
 * producer to the owner, which handles it once; the non-owner never does.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/index.js";
import { MemoryRegistry } from "../../src/runtime/discovery/memory.js";
import { localHub, localTransport } from "../../src/runtime/transports/local/index.js";
import { StoreImpl } from "./fixtures/store.js";
import { assignShards, shardOfKey } from "../../src/runtime/call/shards.js";
import { Code } from "../../src/runtime/errors.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { describeEtcd, SHARED_ETCD, until } from "../discovery/helpers.js";
import { instanceQueue } from "../../src/runtime/transports/amqp/names.js";
import { AMQP_URL, deleteByPrefix, withChannel } from "../transports/amqp-broker.js";
import { rejection } from "../transports/conformance.js";
import { token } from "../../src/runtime/transports/nats/names.js";
import { deleteStreams, NATS_URL } from "../transports/nats-server.js";
import { deleteKeys, REDIS_URL } from "../transports/redis-server.js";
import { type Child, kill, lagging, serveStore } from "./helpers.js";
import { Store } from "./fixtures/generated/test/shards.js";

interface Stocked {
  readonly storeId: string;
  readonly instanceId: string;
  readonly shard: number;
}

/** The `stock` pushes a child handled. */
function stocked(c: Child): Stocked[] {
  return c
    .stdout()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => (JSON.parse(l) as { stock: Stocked }).stock);
}

describeEtcd("sharded pushes between processes (etcd, amqp, redis, nats)", () => {
  const cluster = `shpush-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const ids = ["Push-a", "Push-b", "Push-c"];
  let children: Child[] = [];
  let app: App;

  beforeAll(async () => {
    children = await Promise.all(
      ids.map((instanceId) =>
        serveStore({
          etcd: SHARED_ETCD,
          cluster,
          instanceId,
          transports: ["amqp", "redis", "nats"],
          leaseTtlMs: 30_000,
        }),
      ),
    );
    app = createApp({
      cluster,
      discovery: `etcd://${SHARED_ETCD}`,
      logger: silentLogger(),
      transports: { amqp: { url: AMQP_URL }, redis: { url: REDIS_URL }, nats: { url: NATS_URL } },
    });
    await app.start();
    const set = await app.watch(Store.descriptor.name);
    await until("3 Store instances", () => set.instances().length === 3, 20_000);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(children.map(kill));
    await app?.stop();
    await deleteKeys(`fan.${cluster}*`);
    await deleteByPrefix(`fan.${cluster}`).catch(() => undefined);
    await deleteStreams(`fan_${token(cluster)}_`).catch(() => undefined);
  });

  const owners = assignShards(
    ids.map((instanceId) => ({ instanceId, shards: [] })),
    16,
  );

  for (const transport of ["amqp", "redis", "nats"] as const) {
    it(`over ${transport}, each push is handled by its key's owner`, async () => {
      const keys = Array.from({ length: 40 }, (_, i) => `${transport}-${i}`);
      const store = app.client(Store, { transport });
      await Promise.all(keys.map((storeId, count) => store.stock({ storeId, count })));
      // Handled before the push resolved (the owner acknowledges it); its printed line may trail the reply.
      const mine = (): Stocked[] => children.flatMap(stocked).filter((s) => s.storeId.startsWith(`${transport}-`));
      await until("every push printed", () => mine().length >= keys.length, 5000);
      const seen = mine();
      expect(seen).toHaveLength(keys.length);
      for (const s of seen) {
        expect(s.instanceId).toBe(owners[shardOfKey([s.storeId], 16)]);
        expect(s.shard).toBe(shardOfKey([s.storeId], 16));
      }
    }, 60_000);
  }

  it("a push to a dead owner fails with UNAVAILABLE naming the shard, never delivered", async () => {
    const victim = children[0] as Child;
    await kill(victim);
    const key = Array.from({ length: 200 }, (_, i) => `dead-${i}`).find(
      (k) => owners[shardOfKey([k], 16)] === victim.instanceId,
    ) as string;
    // amqp: the owner's exclusive queue goes with its connection; the broker returns the push.
    // Until the broker has seen the connection drop (a moment, longer on a loaded machine) the
    // queue still takes the push, which then waits out its deadline unacknowledged: wait for it.
    const queue = instanceQueue({
      cluster,
      service: Store.descriptor.name,
      version: Store.descriptor.version,
      instance: victim.instanceId,
    });
    await until(
      `the broker dropped ${queue}`,
      () =>
        withChannel((ch) => ch.checkQueue(queue)).then(
          () => false,
          () => true,
        ),
      15_000,
      200,
    );
    const t0 = Date.now();
    const err = await rejection(() => app.client(Store, { transport: "amqp" }).stock({ storeId: key, count: 1 }));
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toContain(`shard ${shardOfKey([key], 16)} of ${Store.descriptor.name}`);
    expect((err.details as { maybeDelivered?: boolean }).maybeDelivered).toBe(false);
    expect(Date.now() - t0).toBeLessThan(3000);
  }, 30_000);
});

describe("sharded pushes in one process (the local transport, several Apps on one hub)", () => {
  const ids = ["A", "B", "C"];
  const owners = assignShards(
    ids.map((instanceId) => ({ instanceId, shards: [] })),
    16,
  );
  const apps: App[] = [];
  afterEach(async () => {
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
  });

  /** Serves Store as `instanceId` on `reg`'s hub; the pushes it handles go to `handled`. */
  async function server(
    reg: MemoryRegistry,
    cluster: string,
    instanceId: string,
    handled: Stocked[],
    shards?: number[],
  ) {
    const impl = new StoreImpl();
    impl.onStock = (w) => void handled.push({ storeId: w.storeId, instanceId: w.instanceId, shard: w.shard });
    const app = createApp({ cluster, discovery: reg, logger: silentLogger() }).serve(Store, impl, {
      instanceId,
      ...(shards === undefined ? {} : { shards }),
    });
    apps.push(app);
    await app.start();
    return impl;
  }

  for (const serialize of [false, true]) {
    it(`each push is handled once, by its key's owner${serialize ? " (serialised)" : ""}`, async () => {
      const reg = new MemoryRegistry();
      const cluster = `lshpush${process.pid}${serialize ? "s" : ""}`;
      const handled: Stocked[] = [];
      for (const id of ids) await server(reg, cluster, id, handled);
      const app = createApp({ cluster, discovery: reg, logger: silentLogger(), transports: { local: { serialize } } });
      apps.push(app);
      await app.start();
      const set = await app.watch(Store.descriptor.name);
      await until("3 Store instances", () => set.instances().length === 3);
      const keys = Array.from({ length: 48 }, (_, i) => `store-${i}`);
      const store = app.client(Store);
      await Promise.all(keys.map((storeId, count) => store.stock({ storeId, count })));
      // Accepted by the hub when the push resolved; handled a moment later (each by one instance:
      // before the fix, by whichever was next in turn, which redirected it until its attempts ran out).
      await until("every push handled", () => handled.length >= keys.length, 3000).catch(() => undefined);
      expect(handled.map((s) => s.storeId).sort()).toEqual([...keys].sort());
      for (const s of handled) expect([s.storeId, s.instanceId]).toEqual([s.storeId, owners[s.shard]]);
    });
  }

  it("a push sent to an instance that no longer owns its shard (the producer's view lags) is handled by the owner it names", async () => {
    const reg = new MemoryRegistry();
    const cluster = `lshredir${process.pid}`;
    const handled: Stocked[] = [];
    const a = await server(reg, cluster, "A", handled);
    // Its view of discovery runs 10 s behind: it sends every push to A.
    const app = createApp({
      cluster,
      discovery: lagging(reg, 10_000),
      logger: silentLogger(),
      transports: { local: localTransport({ hub: localHub(reg, cluster) }) },
    });
    apps.push(app);
    await app.start();
    const set = await app.watch(Store.descriptor.name);
    await server(reg, cluster, "B", handled, [11]);
    await until("A to hand shard 11 over", () => a.changes.some((ch) => ch.lost.includes(11)));
    expect(set.instances().map((i) => i.instanceId)).toEqual(["A"]);
    const key = "store-1"; // shard 11
    await app.client(Store).stock({ storeId: key, count: 1 });
    await until("the push handled", () => handled.length > 0, 3000).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    expect(handled).toEqual([{ storeId: key, instanceId: "B", shard: 11 }]);
  });
});

describe("a push a non-owner redirects (one process: http, zmq, tcp, amqp, redis, nats)", () => {
  const apps: App[] = [];
  const clusters: string[] = [];
  afterEach(async () => {
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
    for (const cluster of clusters.splice(0)) {
      await deleteKeys(`fan.${cluster}*`).catch(() => undefined);
      await deleteByPrefix(`fan.${cluster}`).catch(() => undefined);
      await deleteStreams(`fan_${token(cluster)}_`).catch(() => undefined);
    }
  });

  const settings: Record<string, object> = {
    http: {},
    zmq: {},
    tcp: {},
    amqp: { url: AMQP_URL },
    redis: { url: REDIS_URL },
    nats: { url: NATS_URL },
  };
  for (const transport of ["http", "zmq", "tcp", "amqp", "redis", "nats"] as const) {
    it(`over ${transport}, it is handled by the owner the redirect names, not refused after resends to the non-owner`, async () => {
      const reg = new MemoryRegistry();
      const cluster = `redirpush-${transport}-${process.pid}`;
      clusters.push(cluster);
      const handled: string[] = [];
      const serve = async (instanceId: string, shards?: number[]) => {
        const impl = new StoreImpl();
        impl.onStock = (w) => void handled.push(w.instanceId);
        const app = createApp({
          cluster,
          discovery: reg,
          logger: silentLogger(),
          transports: { [transport]: settings[transport] },
        }).serve(Store, impl, { instanceId, transports: [transport], ...(shards === undefined ? {} : { shards }) });
        apps.push(app);
        await app.start();
        return impl;
      };
      const a = await serve("A");
      // The producer's view runs 800 ms behind (a redirect waits up to 1 s for it to name the owner).
      const producer = createApp({
        cluster,
        discovery: { ...lagging(reg, 800), close: async () => undefined },
        logger: silentLogger(),
        transports: { [transport]: settings[transport] },
      });
      apps.push(producer);
      await producer.start();
      const set = await producer.watch(Store.descriptor.name);
      await serve("B", [11]);
      await until("A to hand shard 11 over", () => a.changes.some((ch) => ch.lost.includes(11)));
      expect(set.instances().map((i) => i.instanceId)).toEqual(["A"]);
      // Before: the nack dropped the redirect; the producer sent the push to A 5 times and failed.
      await producer.client(Store, { transport }).stock({ storeId: "store-1", count: 1 });
      // Acknowledged by its handler before the push resolved; a moment for a second delivery to show.
      await new Promise((r) => setTimeout(r, 200));
      expect(handled).toEqual(["B"]);
    });
  }
});
