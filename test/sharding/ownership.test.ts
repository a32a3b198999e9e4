/**
 * Ownership inside one process (a memory registry, the http transport between Apps): the
 * handler is told its shards and their changes, explicit shards pin, a call that reaches an
 * instance that no longer owns its shard is redirected to the owner and retried once there
 * (the client's own discovery view made to lag behind the servers'), unless the owner's circuit
 * breaker is open, and an @route call is sharded by the route's params. An Ownership bound
 * again after a stop (a `@unique` instance that leads again) calls onShards afresh.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/index.js";
import { MemoryRegistry } from "../../src/runtime/discovery/memory.js";
import type { Registry } from "../../src/runtime/discovery/registry.js";
import { assignShards, shardOfKey } from "../../src/runtime/call/shards.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { until } from "../discovery/helpers.js";
import { StoreImpl } from "./fixtures/store.js";
import { lagging } from "./helpers.js";
import { Ownership } from "../../src/runtime/call/ownership.js";
import type { ShardChange, LifecycleContext } from "../../src/runtime/call/context.js";
import type { Directory, InstanceInfo } from "../../src/runtime/discovery/types.js";
import { Store, type StoreClient } from "./fixtures/generated/test/shards.js";

describe("shard ownership in one process", () => {
  const apps: App[] = [];
  afterEach(async () => {
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
  });

  const cluster = (): string => `own${process.pid}${Math.random().toString(36).slice(2, 7)}`;

  async function server(
    registry: Registry,
    c: string,
    instanceId: string,
    shards?: number[],
    impl = new StoreImpl(),
  ): Promise<{ app: App; impl: StoreImpl }> {
    const app = createApp({ cluster: c, discovery: registry, logger: silentLogger(), transports: { http: {} } }).serve(
      Store,
      impl,
      { instanceId, transports: ["http"], ...(shards === undefined ? {} : { shards }) },
    );
    apps.push(app);
    await app.start();
    return { app, impl };
  }

  async function client(registry: Registry, c: string): Promise<App> {
    const app = createApp({ cluster: c, discovery: registry, logger: silentLogger(), transports: { http: {} } });
    apps.push(app);
    await app.start();
    return app;
  }

  it("onShards: all shards to a lone instance, then the ones another instance pins are reported lost", async () => {
    const reg = new MemoryRegistry();
    const c = cluster();
    const a = await server(reg, c, "A");
    expect(a.impl.changes[0]).toEqual({ owned: [...Array(16).keys()], gained: [...Array(16).keys()], lost: [] });
    await server(reg, c, "B", [3, 11]);
    await until("A to lose 3 and 11", () => a.impl.changes.some((ch) => ch.lost.join() === "3,11"));
    expect(a.impl.changes.at(-1)?.owned).toEqual([...Array(16).keys()].filter((s) => s !== 3 && s !== 11));
    // Calls see what their instance owns.
    const store = (await client(reg, c)).client(Store, { transport: "http" });
    const key = "store-1"; // shard 11 (docs/sharding.md's vector)
    expect(shardOfKey([key], 16)).toBe(11);
    const r = await store.store({ storeId: key });
    expect([r.instanceId, r.shard, r.owned]).toEqual(["B", 11, [3, 11]]);
  });

  it("explicit shards out of range are refused at serve()", () => {
    expect(() => createApp({ logger: silentLogger() }).serve(Store, new StoreImpl(), { shards: [16] })).toThrow(
      /shards 16 are out of range .*@shards\(16\)/,
    );
  });

  /**
   * A serves alone and answers a call for "store-1" (shard 11) from a client whose discovery view
   * lags `lagMs`; then B joins pinning shard 11 (served by `impl`) and A hands it over.
   */
  async function handedOver(lagMs: number, impl?: StoreImpl): Promise<{ app: App; store: StoreClient }> {
    const reg = new MemoryRegistry();
    const c = cluster();
    const a = await server(reg, c, "A");
    const app = await client(lagging(reg, lagMs, false), c);
    const store = app.client(Store, { transport: "http" });
    expect((await store.store({ storeId: "store-1" })).instanceId).toBe("A");
    await server(reg, c, "B", [11], impl);
    await until("A to hand shard 11 over", () => a.impl.changes.some((ch) => ch.lost.includes(11)));
    return { app, store };
  }

  it("a call reaching an instance that no longer owns its shard is redirected to the owner and retried once there", async () => {
    const { app, store } = await handedOver(800);
    // The client still sees only A, so it sends to A; A redirects to B.
    const seen = (await app.watch(Store.descriptor.name)).instances().map((i) => i.instanceId);
    expect(seen).toEqual(["A"]);
    const r = await store.store({ storeId: "store-1" });
    expect(r.instanceId).toBe("B");
  });

  it("a redirected call's outcome is charged to the owner it went to, not to the instance that redirected it", async () => {
    const broken = new StoreImpl();
    broken.store = () => {
      throw new Error("B broke");
    };
    const { app, store } = await handedOver(800, broken);
    // Sent to A (the client's view lags), redirected to B, which fails.
    const e = await store.store({ storeId: "store-1" }).then(
      () => undefined,
      (err: { code: string }) => err,
    );
    expect(e?.code).toBe("INTERNAL");
    const breakers = app.policy.breakerStates();
    // A answered both calls (a reply, then a redirect): no failure of A's.
    expect(breakers.find((b) => b.instanceId === "A")).toMatchObject({ state: "closed", failures: 0, total: 2 });
    expect(breakers.find((b) => b.instanceId === "B")).toMatchObject({ failures: 1, total: 1 });
  });

  it("a redirect to an owner the client cannot discover in time fails with UNAVAILABLE naming the shard", async () => {
    const { app, store } = await handedOver(10_000);
    const e = await store.store({ storeId: "store-1" }).then(
      () => undefined,
      (err: { code: string; message: string }) => err,
    );
    expect(e?.code).toBe("UNAVAILABLE");
    expect(e?.message).toMatch(/shard 11 of test\.shards\.Store .*A no longer owns it .*B is not discoverable/);
    // A answered (the redirect): the client's lagging view is no failure of A's.
    expect(app.policy.breakerStates().find((b) => b.instanceId === "A")).toMatchObject({ failures: 0 });
  });

  /**
   * B pins shard 11 and fails, so the client's breaker of B opens (at its second failure); B
   * restarts under the same instance id, working, while the client's view of discovery lags
   * 800 ms: the client still sends shard 11 to A, which redirects to B. `calls` counts what the
   * restarted B served.
   */
  async function redirectedToOpenBreaker(): Promise<{ app: App; store: StoreClient; calls: () => number }> {
    const reg = new MemoryRegistry();
    const c = cluster();
    const a = await server(reg, c, "A");
    const app = createApp({
      cluster: c,
      discovery: lagging(reg, 800, false),
      logger: silentLogger(),
      transports: { http: {} },
      policy: { breaker: { failures: 2, ratio: 0.5, openMs: 60_000 } },
    });
    apps.push(app);
    await app.start();
    const store = app.client(Store, { transport: "http" });
    const set = await app.watch(Store.descriptor.name);
    const seesB = (): boolean => set.instances().some((i) => i.instanceId === "B");
    const broken = new StoreImpl();
    broken.store = () => {
      throw new Error("B broke");
    };
    const b = await server(reg, c, "B", [11], broken);
    await until("the client to see B", seesB);
    for (let i = 0; i < 2; i++) {
      const e = await store.store({ storeId: "store-1" }).then(
        () => undefined,
        (err: { code: string }) => err,
      );
      expect(e?.code).toBe("INTERNAL");
    }
    expect(app.policy.breakerStates().find((s) => s.instanceId === "B")?.state).toBe("open");
    await b.app.stop();
    await until("the client to see B gone", () => !seesB());
    const owns11 = (): boolean => a.impl.changes.at(-1)?.owned.includes(11) === true;
    await until("A to own shard 11 again", owns11);
    let calls = 0;
    const fixed = new StoreImpl();
    const serve = fixed.store.bind(fixed);
    const fallbackServe = fixed.fallbackStore.bind(fixed);
    fixed.store = (req, ctx) => {
      calls++;
      return serve(req, ctx);
    };
    fixed.fallbackStore = (req, ctx) => {
      calls++;
      return fallbackServe(req, ctx);
    };
    await server(reg, c, "B", [11], fixed);
    await until("A to hand shard 11 over again", () => !owns11());
    expect(seesB()).toBe(false);
    return { app, store, calls: () => calls };
  }

  it("a redirect to an owner whose circuit breaker is open fails fast, as a call to that owner does", async () => {
    const { app, store, calls } = await redirectedToOpenBreaker();
    // Sent to A (the client's view lags), redirected to B, whose breaker is open: not sent.
    const e = await store.store({ storeId: "store-1" }).then(
      () => undefined,
      (err: { code: string; message: string }) => err,
    );
    expect(e?.code).toBe("UNAVAILABLE");
    expect(e?.message).toMatch(/shard 11 of test\.shards\.Store .*the circuit breaker of its owner B is open/);
    expect(calls()).toBe(0);
    const breakers = app.policy.breakerStates();
    expect(breakers.find((b) => b.instanceId === "B")?.state).toBe("open");
    // A answered (the redirect): no failure of A's.
    expect(breakers.find((b) => b.instanceId === "A")).toMatchObject({ state: "closed", failures: 0 });
  });

  it("a redirect to an owner whose circuit breaker is open goes to another instance when the method allows fallback", async () => {
    const { app, store, calls } = await redirectedToOpenBreaker();
    const r = await store.fallbackStore({ storeId: "store-1" });
    // A serves it (marked shardFallback, so it does not redirect again); B is not sent it.
    expect(r.instanceId).toBe("A");
    expect(calls()).toBe(0);
    expect(app.policy.breakerStates().find((b) => b.instanceId === "A")).toMatchObject({
      state: "closed",
      failures: 0,
    });
  });

  it("@route /store/{storeId}/item/{itemId}: the route's params are the key; a non-owner answers 503 naming the owner", async () => {
    const reg = new MemoryRegistry();
    const c = cluster();
    await server(reg, c, "A");
    await server(reg, c, "B");
    const set = await (await client(reg, c)).watch(Store.descriptor.name);
    await until("both instances", () => set.instances().length === 2);
    const owners = assignShards(
      ["A", "B"].map((instanceId) => ({ instanceId, shards: [] })),
      16,
    );
    const urls = Object.fromEntries(set.instances().map((i) => [i.instanceId, i.endpoints.http as string]));
    let checked = 0;
    for (let i = 0; checked < 2 && i < 50; i++) {
      const shard = shardOfKey([`s${i}`, `i${i}`], 16);
      const owner = owners[shard] as string;
      const other = owner === "A" ? "B" : "A";
      const ok = await fetch(`${urls[owner]}/store/s${i}/item/i${i}`);
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { instanceId: string }).instanceId).toBe(owner);
      const refused = await fetch(`${urls[other]}/store/s${i}/item/i${i}`);
      expect(refused.status).toBe(503);
      expect(JSON.stringify(await refused.json())).toContain(`"owner":"${owner}"`);
      // The simple key of /store/{storeId}.
      const simple = await fetch(`${urls[owners[shardOfKey([`s${i}`], 16)] as string]}/store/s${i}`);
      expect(simple.status).toBe(200);
      checked++;
    }
    expect(checked).toBe(2);
  });
});

describe("an Ownership bound again (a @unique instance that leads again)", () => {
  it("calls onShards afresh with every shard it owns gained, though they are the ones it owned before", async () => {
    const me = { instanceId: "A", version: Store.descriptor.version, shards: [] } as unknown as InstanceInfo;
    const directory = {
      watch: async () => ({ instances: () => [me], onChange: () => () => undefined, close: async () => undefined }),
    } as unknown as Directory;
    const told: ShardChange[] = [];
    const hooks = { onShards: (change: ShardChange) => void told.push(change) };
    const own = new Ownership(Store.descriptor, "A", [], hooks, () => ({}) as LifecycleContext, silentLogger());
    const all = [...Array(16).keys()];
    await own.start(directory);
    // It stops leading: unbound, its hook is told nothing (no onShards while stopping)...
    own.stop();
    // ...while the new leader serves (and changes) every shard. Leading again, it must load them anew.
    await own.start(directory);
    own.stop();
    expect(told).toEqual([
      { owned: all, gained: all, lost: [] },
      { owned: all, gained: all, lost: [] },
    ]);
  });
});
