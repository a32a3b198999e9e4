/**
 * A dead `@shard` owner on redis: calls sent to its own list before Redis knows it is gone are
 * taken back and fail with UNAVAILABLE naming the shard once its alive entry expires (the
 * default `aliveTtlMs`, 5 s), instead of waiting out their deadline; later calls fail at once.
 * Three `test.shards.Store` children serve over redis (etcd discovery, a lease long enough that
 * discovery still lists the dead owner throughout).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/index.js";
import { assignShards, shardOfKey } from "../../src/runtime/call/shards.js";
import { Code } from "../../src/runtime/errors.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { describeEtcd, SHARED_ETCD, until } from "../discovery/helpers.js";
import { rejection } from "../transports/conformance.js";
import { deleteKeys, REDIS_URL } from "../transports/redis-server.js";
import { type Child, kill, serveStore } from "./helpers.js";
import { Store } from "./fixtures/generated/test/shards.js";

describeEtcd("a dead shard owner on redis (etcd, between processes)", () => {
  const cluster = `shred-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const ids = ["Red-a", "Red-b", "Red-c"];
  let children: Child[] = [];
  let app: App;

  beforeAll(async () => {
    children = await Promise.all(
      ids.map((instanceId) =>
        serveStore({ etcd: SHARED_ETCD, cluster, instanceId, transports: ["redis"], leaseTtlMs: 30_000 }),
      ),
    );
    app = createApp({
      cluster,
      discovery: `etcd://${SHARED_ETCD}`,
      logger: silentLogger(),
      transports: { redis: { url: REDIS_URL } },
    });
    await app.start();
    const set = await app.watch(Store.descriptor.name);
    await until("3 Store instances", () => set.instances().length === 3, 20_000);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(children.map(kill));
    await app?.stop();
    await deleteKeys(`fan.${cluster}*`);
  });

  it("its calls fail with UNAVAILABLE naming the shard within the alive TTL, not at their deadline", async () => {
    const owners = assignShards(
      ids.map((instanceId) => ({ instanceId, shards: [] })),
      16,
    );
    const victim = children[1] as Child;
    const key = Array.from({ length: 200 }, (_, i) => `r${i}`).find(
      (k) => owners[shardOfKey([k], 16)] === victim.instanceId,
    ) as string;
    const shard = shardOfKey([key], 16);
    const store = app.client(Store, { transport: "redis" });
    expect((await store.store({ storeId: key })).instanceId).toBe(victim.instanceId);

    await kill(victim);
    const t0 = Date.now();
    // Redis still counts it alive (its last refresh is recent): the call goes onto its list.
    const first = await rejection(() => store.store({ storeId: key }, { timeout: 20_000, retry: false }));
    const took = Date.now() - t0;
    expect(first.code).toBe(Code.UNAVAILABLE);
    expect(first.message).toContain(`shard ${shard} of ${Store.descriptor.name}`);
    expect(first.message).toContain(`${victim.instanceId}`);
    expect(first.message).toMatch(/no longer alive|not alive/);
    // The alive TTL (5 s) and a check (250 ms), with room for a loaded machine; the deadline was 20 s.
    expect(took).toBeLessThan(9000);

    // From then on, the call script refuses at once.
    const t1 = Date.now();
    const next = await rejection(() => store.store({ storeId: key }, { timeout: 20_000, retry: false }));
    expect(next.code).toBe(Code.UNAVAILABLE);
    expect(next.message).toContain(`instance ${victim.instanceId} is not alive`);
    expect(Date.now() - t1).toBeLessThan(1000);
    // Other shards keep working.
    const other = Array.from({ length: 200 }, (_, i) => `r${i}`).find(
      (k) => owners[shardOfKey([k], 16)] !== victim.instanceId,
    ) as string;
    expect((await store.store({ storeId: other })).instanceId).not.toBe(victim.instanceId);
  }, 60_000);
});
