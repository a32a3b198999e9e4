/**
 * `@shard` pushes reach their shard's owner on the broker transports too, between processes:
 * three `test.shards.Store` children (etcd, amqp, redis, nats, http) print every `stock` push they
 * handle; pushes made here over amqp, redis and nats are each handled by their key's owner
 * (its own queue, list or subject, acknowledged by the owner), and a push to a dead owner fails with
 * `UNAVAILABLE` naming the shard, `maybeDelivered: false`.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/index.js";
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
import { type Child, kill, serveStore } from "./helpers.js";
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
