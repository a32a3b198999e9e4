/**
 * Per-method fallback (`@fallback` in the IDL) between processes, over etcd, on http, zmq, amqp,
 * nats and redis: three child processes serve `test.shards.Store`; one owner is SIGKILLed and, while its
 * lease still registers it, `store` (no `@fallback`) fails with UNAVAILABLE naming the shard,
 * while `fallbackStore` (`@shard(storeId) @fallback`) is answered by another instance — one
 * that does not own the shard and serves it instead of redirecting it. The client option
 * `shardFallback` overrides the IDL either way.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/index.js";
import { assignShards, shardOfKey } from "../../src/runtime/call/shards.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { describeEtcd, SHARED_ETCD, until } from "../discovery/helpers.js";
import { type Child, kill, serveStore } from "./helpers.js";
import { deleteByPrefix } from "../transports/amqp-broker.js";
import { deleteKeys } from "../transports/redis-server.js";
import { Store } from "./fixtures/generated/test/shards.js";
import { parse, sample } from "../telemetry/prom.js";

const AMQP = process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const REDIS = process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379";
const NATS = process.env.FAN_NATS_URL ?? "nats://127.0.0.1:4222";

type Failure = { code: string; message: string; details?: unknown };

const rejection = (p: Promise<unknown>): Promise<Failure | undefined> =>
  p.then(
    () => undefined,
    (e: Failure) => e,
  );

describeEtcd("fallback: per-method @fallback when a shard's owner is gone (etcd, http, zmq, amqp, nats, redis)", () => {
  const cluster = `fallback-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const ids = ["fallback-a", "fallback-b", "fallback-c"];
  const transports = ["http", "zmq", "amqp", "nats", "redis"] as const;
  let children: Child[] = [];
  let app: App;
  /** An App whose breakers open after two failures. */
  let guarded: App;

  beforeAll(async () => {
    // A long lease: the whole test runs while the killed owner is still registered (its shards
    // are not reassigned), which is when fallback matters.
    children = await Promise.all(
      ids.map((instanceId) =>
        serveStore({ etcd: SHARED_ETCD, cluster, instanceId, transports: [...transports], leaseTtlMs: 60_000 }),
      ),
    );
    app = createApp({
      cluster,
      discovery: `etcd://${SHARED_ETCD}`,
      logger: silentLogger(),
      transports: { http: {}, zmq: {}, amqp: { url: AMQP }, redis: { url: REDIS }, nats: { url: NATS } },
    });
    guarded = createApp({
      cluster,
      discovery: `etcd://${SHARED_ETCD}`,
      logger: silentLogger(),
      transports: { http: {} },
      policy: { breaker: { failures: 2, openMs: 60_000 } },
    });
    await Promise.all([app.start(), guarded.start()]);
    for (const a of [app, guarded]) {
      const set = await a.watch(Store.descriptor.name);
      await until("3 Store instances", () => set.instances().length === 3, 20_000);
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.all(children.map(kill));
    await Promise.allSettled([app?.stop(), guarded?.stop()]);
    await Promise.allSettled([deleteKeys(`fan.${cluster}*`), deleteByPrefix(`fan.${cluster}`)]);
  });

  it("fallback: the owner SIGKILLed — without @fallback UNAVAILABLE naming the shard, with it another instance answers", async () => {
    const owners = assignShards(
      ids.map((instanceId) => ({ instanceId, shards: [] })),
      16,
    );
    const victim = children[2] as Child;
    const keys = Array.from({ length: 400 }, (_, i) => `fallback-${i}`);
    const key = keys.find((k) => owners[shardOfKey([k], 16)] === victim.instanceId) as string;
    const shard = shardOfKey([key], 16);
    // While the owner lives, a @fallback method goes to the owner like any sharded one.
    for (const transport of transports) {
      const c = app.client(Store, { transport });
      expect((await c.fallbackStore({ storeId: key })).instanceId).toBe(victim.instanceId);
      expect((await c.store({ storeId: key })).instanceId).toBe(victim.instanceId);
    }

    await kill(victim);
    const set = await app.watch(Store.descriptor.name);
    const named = `shard ${shard} of ${Store.descriptor.name}`;

    // http and zmq (connection refused or known down), amqp (the owner's exclusive queue is
    // gone: the broker returns the call) and nats (no responder) know at once; redis once the
    // owner left the alive set (5 s TTL).
    for (const transport of transports) {
      const c = app.client(Store, { transport });
      const bound = transport === "redis" ? 9000 : 2500;
      const t0 = Date.now();
      const served = await c.fallbackStore({ storeId: key }, { timeout: 20_000 });
      expect(Date.now() - t0, transport).toBeLessThan(bound);
      expect(served.instanceId, transport).not.toBe(victim.instanceId);
      expect(ids, transport).toContain(served.instanceId);
      // It carried its shard and was served by an instance that does not own it (no redirect).
      expect(served.shard, transport).toBe(shard);
      expect(served.owned, transport).not.toContain(shard);

      const t1 = Date.now();
      const failed = await rejection(c.store({ storeId: key }, { timeout: 20_000 }));
      expect(failed?.code, transport).toBe("UNAVAILABLE");
      expect(failed?.message, transport).toContain(named);
      expect(failed?.message, transport).toContain(victim.instanceId);
      // The brokers say why the owner is out of reach, in the same words (nats once said "is serving").
      const why = { amqp: "no request queue", nats: "no responders" }[transport as string];
      if (why !== undefined)
        expect(failed?.message, transport).toContain(
          `its owner ${victim.instanceId}: instance ${victim.instanceId} of ${Store.descriptor.name}@${Store.descriptor.version} is not serving on ${transport} (${why})`,
        );
      expect(Date.now() - t1, transport).toBeLessThan(bound);
    }

    // The client option overrides the IDL: false keeps @fallback methods on the owner,
    // true lets every sharded method fall back.
    const never = await rejection(
      app.client(Store, { transport: "http", shardFallback: false }).fallbackStore({ storeId: key }),
    );
    expect(never?.code).toBe("UNAVAILABLE");
    expect(never?.message).toContain(named);
    const always = await app.client(Store, { transport: "amqp", shardFallback: true }).store({ storeId: key });
    expect(always.instanceId).not.toBe(victim.instanceId);
    expect(always.shard).toBe(shard);

    // The owner's breaker open: `store` fails at once naming the shard and the breaker,
    // `fallbackStore` goes to another instance without trying the owner.
    const g = guarded.client(Store);
    for (let i = 0; i < 2; i++) await rejection(g.store({ storeId: key }, { retry: false }));
    expect(guarded.policy.breakerStates()).toContainEqual(
      expect.objectContaining({ instanceId: victim.instanceId, state: "open" }),
    );
    const t2 = Date.now();
    const open = await rejection(g.store({ storeId: key }, { retry: false }));
    expect(open?.code).toBe("UNAVAILABLE");
    expect(open?.message).toContain(
      `${named} is unavailable: the circuit breaker of its owner ${victim.instanceId} is open`,
    );
    const around = await g.fallbackStore({ storeId: key }, { retry: false });
    expect(Date.now() - t2).toBeLessThan(1000);
    expect([around.instanceId === victim.instanceId, around.shard, around.owned.includes(shard)]).toEqual([
      false,
      shard,
      false,
    ]);

    // All of the above ran while the dead owner was still registered (its lease is 60 s).
    expect(set.instances().map((i) => i.instanceId)).toContain(victim.instanceId);
    // Keys of the survivors are untouched: still served by their owner.
    const kept = keys.find((k) => owners[shardOfKey([k], 16)] !== victim.instanceId) as string;
    const keptBy = owners[shardOfKey([kept], 16)];
    for (const transport of transports) {
      const r = await app.client(Store, { transport }).fallbackStore({ storeId: kept });
      expect([r.instanceId, r.owned.includes(r.shard)], transport).toEqual([keptBy, true]);
    }
  }, 90_000);

  /** A key whose shard the (now dead) third child owns. */
  const victimKey = (prefix: string): { key: string; shard: number } => {
    const owners = assignShards(
      ids.map((instanceId) => ({ instanceId, shards: [] })),
      16,
    );
    const key = Array.from({ length: 400 }, (_, i) => `${prefix}-${i}`).find(
      (k) => owners[shardOfKey([k], 16)] === ids[2],
    ) as string;
    return { key, shard: shardOfKey([key], 16) };
  };

  it("fallback: the dead owner's refusals open its breaker though another instance answers; the answer counts for that instance", async () => {
    const victim = children[2] as Child;
    await kill(victim);
    const { key, shard } = victimKey("breaker");
    // A fresh App: its breakers have seen nothing yet.
    const fresh = createApp({
      cluster,
      discovery: `etcd://${SHARED_ETCD}`,
      logger: silentLogger(),
      transports: { http: {}, amqp: { url: AMQP } },
      policy: { breaker: { failures: 2, openMs: 60_000 } },
    });
    await fresh.start();
    try {
      const set = await fresh.watch(Store.descriptor.name);
      await until("3 Store instances", () => set.instances().length === 3, 20_000);
      const breakerOf = (transport: string, instanceId: string) =>
        fresh.policy
          .breakerStates()
          .find((b) => (transport === "http" ? b.instanceId === instanceId : b.instanceId.endsWith(`/${instanceId}`)));
      for (const transport of ["http", "amqp"] as const) {
        const c = fresh.client(Store, { transport });
        const answered: string[] = [];
        for (let i = 0; i < 2; i++) {
          const r = await c.fallbackStore({ storeId: key }, { retry: false });
          expect([r.instanceId === victim.instanceId, r.shard], transport).toEqual([false, shard]);
          answered.push(r.instanceId);
        }
        // Two refusals by the owner: its breaker open, as two failed calls without @fallback would leave it.
        expect(breakerOf(transport, victim.instanceId), transport).toMatchObject({ state: "open" });
        // The instances that answered recorded successes, no failure.
        for (const id of new Set(answered)) {
          const b = breakerOf(transport, id);
          expect([b?.state, b?.failures, (b?.total ?? 0) > 0], `${transport} ${id}`).toEqual(["closed", 0, true]);
        }
        // Now the owner is not even tried: another instance answers at once.
        const t0 = Date.now();
        const around = await c.fallbackStore({ storeId: key }, { retry: false });
        expect(Date.now() - t0, transport).toBeLessThan(1000);
        expect(around.instanceId, transport).not.toBe(victim.instanceId);
      }
      // The breaker gauge names the owner (2: open).
      const s = parse(await fresh.metrics());
      expect(sample(s, "fan_breaker_state", { service: Store.descriptor.name, instance: victim.instanceId })).toBe(2);
    } finally {
      await fresh.stop();
    }
  }, 60_000);

  it("fallback: a push to a @fallback method whose owner is SIGKILLed is handled by another instance; without @fallback UNAVAILABLE naming the shard", async () => {
    const victim = children[2] as Child;
    await kill(victim);
    const { key, shard } = victimKey("push");
    const named = `shard ${shard} of ${Store.descriptor.name}`;
    const handled = (storeId: string): { instanceId: string; shard: number }[] =>
      children
        .flatMap((c) => c.stdout().split("\n"))
        .filter((l) => l.startsWith("{"))
        .map((l) => (JSON.parse(l) as { stock: { storeId: string; instanceId: string; shard: number } }).stock)
        .filter((w) => w.storeId === storeId);
    for (const transport of ["http", "amqp", "redis"] as const) {
      const c = app.client(Store, { transport });
      const storeId = `${key}`;
      const before = handled(storeId).length;
      await c.fallbackStock({ storeId, count: 1 }, { timeout: 20_000 });
      await until(`${transport}: the push handled`, () => handled(storeId).length > before, 5000);
      const by = handled(storeId).slice(before);
      expect(by.length, transport).toBe(1);
      expect([by[0]?.instanceId === victim.instanceId, by[0]?.shard], transport).toEqual([false, shard]);

      const failed = await rejection(c.stock({ storeId, count: 1 }, { timeout: 20_000 }));
      expect(failed?.code, transport).toBe("UNAVAILABLE");
      expect(failed?.message, transport).toContain(named);
      expect(failed?.message, transport).toContain(victim.instanceId);
    }
    // No stock push reached anyone.
    expect(handled(key).length).toBe(3);
  }, 60_000);
});
