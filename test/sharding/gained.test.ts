/**
 * A call for a shard reaches the handler only once the `onShards` that gave the instance that
 * shard resolved, between processes on etcd over http, amqp, redis and nats: an instance whose
 * `onShards` takes 1 s (it loads what it gained, store.ts `loadMs`) joins two others under a
 * burst of sharded calls and pushes from two client Apps, one of them with a lagging discovery
 * view (its calls reach the old owners and are redirected). Every handler fails a call for a
 * shard it has not loaded and prints it (`early`): none may, and no call may fail. In one
 * process: an `onShards` that throws leaves its gained shards UNAVAILABLE until it is called
 * again and resolves; a held call its caller cancels never runs; a hook that does not resolve
 * is warned about and holds a bounded number of calls, at most three quarters of the transport
 * window they came on; a stopping instance keeps redirecting (and refuses shards not ready)
 * until its transports are down, following discovery for the shards it loses meanwhile.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/index.js";
import { shardOfKey } from "../../src/runtime/call/shards.js";
import { HOLD_LIMITS, type HoldLimits, holdWindow, Ownership } from "../../src/runtime/call/ownership.js";
import type { Directory, InstanceInfo } from "../../src/runtime/discovery/types.js";
import type { LifecycleContext } from "../../src/runtime/call/context.js";
import type { Logger } from "pino";
import type { Registry, WatchEvent } from "../../src/runtime/discovery/registry.js";
import { MemoryRegistry } from "../../src/runtime/discovery/memory.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { describeEtcd, SHARED_ETCD, until } from "../discovery/helpers.js";
import { aGainingB, type Child, changes, clientApps, OWNERS_OF_A_AND_B, serveStore, tearDown } from "./helpers.js";
import { Store } from "./fixtures/generated/test/shards.js";
import { StoreImpl } from "./fixtures/store.js";
import { captureLog } from "../transports/fixtures/log.js";

const AMQP = process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const REDIS = process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379";
const NATS = process.env.FAN_NATS_URL ?? "nats://127.0.0.1:4222";
const transports = ["http", "amqp", "redis", "nats"] as const;
const LOAD = { FAN_TEST_LOAD_MS: "1000" };

/** The calls and pushes that reached a child's handler for a shard it had not loaded. */
function early(c: Child): string[] {
  return c
    .stdout()
    .split("\n")
    .filter((l) => l.startsWith("early "))
    .map((l) => `${c.instanceId} ${l}`);
}

describeEtcd("gained shards wait for onShards between processes (etcd; http, amqp, redis, nats)", () => {
  const cluster = `gained-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  let children: Child[] = [];
  let app: App;
  let stale: App;

  beforeAll(async () => {
    children = await Promise.all(
      ["gained-a", "gained-b"].map((instanceId) =>
        serveStore({
          etcd: SHARED_ETCD,
          cluster,
          instanceId,
          transports: [...transports],
          leaseTtlMs: 5000,
          env: LOAD,
        }),
      ),
    );
    ({ app, stale } = await clientApps(
      cluster,
      { http: {}, amqp: { url: AMQP }, redis: { url: REDIS }, nats: { url: NATS } },
      2,
    ));
    // Both children's first onShards resolved (each was told its part of the table).
    await until(
      "the two halves loaded",
      () => children.reduce((n, c) => n + (changes(c).at(-1)?.owned.length ?? 0), 0) === 16,
      20_000,
    );
  }, 120_000);

  afterAll(() => tearDown(cluster, children, [app, stale]));

  it("an instance whose onShards takes 1 s joins under a burst of sharded calls and pushes: none reaches a handler before its shard is loaded, none fails", async () => {
    // One key per shard, so every shard the newcomer gains is called throughout.
    const keys: string[] = [];
    for (let i = 0; keys.length < 16; i++) {
      const k = `gained-k${i}`;
      if (keys.every((x) => shardOfKey([x], 16) !== shardOfKey([k], 16))) keys.push(k);
    }
    const clients = [app, stale].flatMap((a) => transports.map((transport) => a.client(Store, { transport })));
    const pushers = transports.map((transport) => app.client(Store, { transport }));
    const failures: string[] = [];
    const answeredBy = new Map<string, number>();
    const pending: Promise<void>[] = [];
    let calls = 0;
    let burst = true;
    const round = (): void => {
      for (const storeId of keys) {
        for (const c of clients) {
          calls++;
          pending.push(
            c.store({ storeId }).then(
              (w) => void answeredBy.set(w.instanceId, (answeredBy.get(w.instanceId) ?? 0) + 1),
              (e: { code: string; message: string }) => void failures.push(`store ${storeId}: ${e.code} ${e.message}`),
            ),
          );
        }
        for (const c of pushers)
          pending.push(
            c
              .stock({ storeId, count: 1 })
              .catch(
                (e: { code: string; message: string }) =>
                  void failures.push(`stock ${storeId}: ${e.code} ${e.message}`),
              ),
          );
      }
    };
    const rounds = (async () => {
      while (burst) {
        round();
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      await new Promise((r) => setTimeout(r, 300));
      const joiner = await serveStore({
        etcd: SHARED_ETCD,
        cluster,
        instanceId: "gained-c",
        transports: [...transports],
        leaseTtlMs: 5000,
        env: LOAD,
      });
      children.push(joiner);
      // The two others were told what they lost (their hooks take 1 s too: they drop at once).
      await until(
        "the others to hear of the join",
        () => children.slice(0, 2).every((c) => changes(c).some((ch) => ch.lost.length > 0)),
        20_000,
      );
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      burst = false;
      await rounds;
    }
    await Promise.all(pending);
    const joiner = children[2] as Child;
    // Each shard it took from a live instance comes in a change of its own once that one released it.
    const gained = changes(joiner).flatMap((ch) => ch.gained);
    expect(gained.length).toBeGreaterThan(0);
    expect(children.flatMap(early)).toEqual([]);
    expect(failures).toEqual([]);
    // The newcomer did take its shards' calls once it had loaded them.
    expect(answeredBy.get("gained-c") ?? 0).toBeGreaterThan(0);
    expect(calls).toBeGreaterThan(500);
  }, 120_000);
});

describe("a failed onShards (one process)", () => {
  const apps: App[] = [];
  afterEach(async () => {
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
  });

  it("its gained shards answer UNAVAILABLE naming the shard; the hook is called again with them and then they are served", async () => {
    const reg = new MemoryRegistry();
    const cluster = `gained-fail-${process.pid}`;
    const opts = { cluster, discovery: reg, logger: silentLogger(), transports: { http: {} } };
    const impl = new StoreImpl();
    let failures = 1;
    const onShards = impl.onShards.bind(impl);
    impl.onShards = (change) => {
      onShards(change);
      if (failures-- > 0) throw new Error("the database is down");
    };
    const server = createApp(opts).serve(Store, impl, { instanceId: "F", transports: ["http"] });
    const caller = createApp(opts);
    apps.push(server, caller);
    await server.start();
    await caller.start();
    const store = caller.client(Store, { transport: "http" });
    const err = await store.store({ storeId: "store-1" }, { timeout: 300 }).then(
      () => undefined,
      (e: { code: string; message: string }) => e,
    );
    expect([err?.code, err?.message]).toEqual([
      "UNAVAILABLE",
      expect.stringContaining("shard 11 of test.shards.Store is unavailable on F: its onShards hook failed"),
    ]);
    // Called again after 1 s with what it failed to take; then the shard is served.
    await until("the hook to be called again", () => impl.changes.length === 2, 5000);
    expect(impl.changes[1]).toEqual({ owned: [...Array(16).keys()], gained: [...Array(16).keys()], lost: [] });
    await until("the shard to be served", () =>
      store.store({ storeId: "store-1" }).then(
        (w) => w.instanceId === "F",
        () => false,
      ),
    );
  });
});

describe("held calls (one process)", () => {
  const apps: App[] = [];
  afterEach(async () => {
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
  });

  /**
   * Servers A and B and a client on `transport`; B stops, and A's `onShards` gaining B's shards
   * runs until `release` is called. `key` is one of them; `calls` counts A's `store` calls for it.
   */
  async function gaining(transport: "local" | "http") {
    const cluster = `held-${transport}-${process.pid}`;
    const transports = transport === "http" ? { http: {} } : {};
    const opts = { cluster, discovery: new MemoryRegistry(), logger: silentLogger(), transports };
    const impl = new StoreImpl();
    const key = Array.from({ length: 100 }, (_, i) => `held-${i}`).find(
      (k) => OWNERS_OF_A_AND_B[shardOfKey([k], 16)] === "B",
    ) as string;
    let calls = 0;
    const store = impl.store.bind(impl);
    impl.store = (req, ctx) => {
      if (req.storeId === key) calls++;
      return store(req, ctx);
    };
    const { caller, release } = await aGainingB(opts, impl, apps);
    return { client: caller.client(Store, { transport }), key, calls: () => calls, release };
  }

  for (const transport of ["local", "http"] as const) {
    it(`over ${transport}, a call cancelled while its shard's onShards runs is answered CANCELLED and never reaches the handler`, async () => {
      const { client, key, calls, release } = await gaining(transport);
      const ac = new AbortController();
      const call = client.store({ storeId: key }, { signal: ac.signal, timeout: 5000 }).then(
        () => undefined,
        (e: { code: string }) => e.code,
      );
      await new Promise((r) => setTimeout(r, 200));
      ac.abort();
      expect(await call).toBe("CANCELLED");
      // Given time to reach the server's hold (http: the connection's close).
      await new Promise((r) => setTimeout(r, 200));
      release();
      expect((await client.store({ storeId: key })).instanceId).toBe("A");
      expect(calls()).toBe(1);
    });
  }
});

/** A's ownership of every shard (16 of Store), its first `onShards` never resolving; its warnings. */
function stuck(limits?: HoldLimits) {
  const warnings: string[] = [];
  const log = {
    info: () => undefined,
    error: () => undefined,
    warn: (_: object, msg: string) => void warnings.push(msg),
  } as unknown as Logger;
  const me = { instanceId: "A", version: Store.descriptor.version, shards: [] } as unknown as InstanceInfo;
  const directory = {
    watch: async () => ({ instances: () => [me], onChange: () => () => undefined, close: async () => undefined }),
  } as unknown as Directory;
  const hooks = { onShards: () => new Promise<void>(() => undefined) };
  const own = new Ownership(Store.descriptor, "A", [], hooks, () => ({}) as LifecycleContext, log, limits);
  void own.start(directory);
  const paths = Store.descriptor.methods.store?.shard as readonly (readonly string[])[];
  const guard = (storeId: string) => own.guard(paths, { storeId }, Date.now() + 5000);
  return { own, warnings, guard };
}

describe("an onShards that does not resolve (one instance's Ownership)", () => {
  it("is logged as a warning naming the service, the instance and the held shards, and again while it runs", async () => {
    const { own, warnings, guard } = stuck({ ...HOLD_LIMITS, slowHookMs: 100, slowHookRepeatMs: 100, maxHeld: 100 });
    try {
      await until("the ownership view", () => own.owned().length === 16);
      expect(guard("store-1")).toBeInstanceOf(Promise);
      await until("two warnings", () => warnings.length >= 2, 2000);
      expect(warnings[0]).toMatch(
        /^onShards of test\.shards\.Store on A has not resolved in 0 s: calls for shards 0, 1, 2, .*, 15 are held until it does \(1 now\)$/,
      );
    } finally {
      own.stop();
    }
  });

  it("held work takes at most three quarters of the transport window it came on once its hook ran windowAfterMs: past it, UNAVAILABLE naming the shard and the window", async () => {
    const { own } = stuck({ ...HOLD_LIMITS, windowAfterMs: 0 });
    const paths = Store.descriptor.methods.store?.shard as readonly (readonly string[])[];
    const window = holdWindow("redis", 4, "maxInFlight");
    const guard = (signal?: AbortSignal) => own.guard(paths, { storeId: "store-1" }, Date.now() + 5000, signal, window);
    try {
      await until("the ownership view", () => own.owned().length === 16);
      const ac = new AbortController();
      expect([guard(ac.signal), guard(), guard()].every((h) => h instanceof Promise)).toBe(true);
      expect(window.held).toBe(3);
      expect(guard()).toEqual({
        code: "UNAVAILABLE",
        message:
          "shard 11 of test.shards.Store is not ready on A: its onShards hook is still running, and the 3 calls and pushes held for that already take all of redis maxInFlight 4 they may (3; the rest serves other work): try again",
        details: { shard: 11 },
      });
      // A hold that ends gives its slot back.
      ac.abort();
      expect(window.held).toBe(2);
      expect(guard()).toBeInstanceOf(Promise);
      // Unbounded elsewhere (http): only maxHeld.
      expect(own.guard(paths, { storeId: "store-1" }, Date.now() + 5000)).toBeInstanceOf(Promise);
    } finally {
      own.stop();
    }
    expect(window.held).toBe(0);
  });

  it("while its hook is young (under windowAfterMs), held work may fill the window: a burst over a brief hook waits rather than fails", async () => {
    const { own } = stuck({ ...HOLD_LIMITS, windowAfterMs: 60_000 });
    const paths = Store.descriptor.methods.store?.shard as readonly (readonly string[])[];
    const window = holdWindow("redis", 4, "maxInFlight");
    const guard = () => own.guard(paths, { storeId: "store-1" }, Date.now() + 5000, undefined, window);
    try {
      await until("the ownership view", () => own.owned().length === 16);
      const holds = [guard(), guard(), guard(), guard(), guard()];
      expect(holds.every((h) => h instanceof Promise)).toBe(true);
      expect(window.held).toBe(5);
    } finally {
      own.stop();
    }
    expect(window.held).toBe(0);
  });

  it("holds a bounded number of calls: past it, UNAVAILABLE naming the shard", async () => {
    const { own, guard } = stuck({ ...HOLD_LIMITS, slowHookMs: 60_000, slowHookRepeatMs: 60_000, maxHeld: 2 });
    try {
      await until("the ownership view", () => own.owned().length === 16);
      expect(guard("store-1")).toBeInstanceOf(Promise);
      expect(guard("store-1")).toBeInstanceOf(Promise);
      expect(guard("store-1")).toEqual({
        code: "UNAVAILABLE",
        message:
          "shard 11 of test.shards.Store is not ready on A: the onShards hook gaining it has not resolved, and 2 calls are held already (at most 2)",
        details: { shard: 11 },
      });
    } finally {
      own.stop();
    }
  });
});

describe("during stop (one process)", () => {
  it("a stopping instance's shard not ready answers UNAVAILABLE at once, held calls too; after the table is dropped every sharded call does", async () => {
    const { own, guard } = stuck();
    await until("the ownership view", () => own.owned().length === 16);
    const held = guard("store-1");
    const stopping = { code: "UNAVAILABLE", message: "this instance of test.shards.Store is stopping" };
    own.freeze();
    expect(await held).toEqual(stopping);
    expect(guard("store-1")).toEqual(stopping);
    own.stop();
    expect(guard("store-1")).toEqual(stopping);
  });

  const apps: App[] = [];
  afterEach(async () => {
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
  });

  /**
   * `inner` seen with watch events `lagMs` late, and a stop's writes `stopMs` slow: the mark of
   * its record as stopping (its first step: its transports stop after it) and the removal of
   * the record (a deregister); closing it leaves `inner` open.
   */
  function slowed(inner: Registry, lagMs: number, stopMs: number): Registry {
    const slow = () => new Promise((r) => setTimeout(r, stopMs));
    return {
      get: (k) => inner.get(k),
      put: (k, v, o) => (v.includes('"stopping":true') ? slow() : Promise.resolve()).then(() => inner.put(k, v, o)),
      delete: (k) => slow().then(() => inner.delete(k)),
      list: (p) => inner.list(p),
      watch: (p, rev, fn) =>
        inner.watch(p, rev, (ev: WatchEvent) => (lagMs === 0 ? fn(ev) : void setTimeout(() => fn(ev), lagMs))),
      grantLease: (ttl) => inner.grantLease(ttl),
      close: async () => undefined,
    };
  }

  /**
   * A, over http, whose stop takes 1.5 s to mark its record (and keeps its endpoint up that long); a
   * caller whose view runs 800 ms behind, seeing A; and `join`, which starts an instance owning
   * shard 11 (store-1's) on the registry itself.
   */
  async function stoppingSetup(cluster: string) {
    const reg = new MemoryRegistry();
    const opts = { cluster, logger: silentLogger(), transports: { http: {} } };
    const implA = new StoreImpl();
    const a = createApp({ ...opts, discovery: slowed(reg, 0, 1500) }).serve(Store, implA, {
      instanceId: "A",
      transports: ["http"],
    });
    const caller = createApp({ ...opts, discovery: slowed(reg, 800, 0) });
    apps.push(a, caller);
    await a.start();
    await caller.start();
    const set = await caller.watch(Store.descriptor.name);
    await until("the client to see A", () => set.instances().length === 1);
    const join = async (instanceId: string): Promise<StoreImpl> => {
      const impl = new StoreImpl();
      const app = createApp({ ...opts, discovery: reg }).serve(Store, impl, {
        instanceId,
        transports: ["http"],
        shards: [11],
      });
      apps.push(app);
      await app.start();
      return impl;
    };
    const store1 = () => caller.client(Store, { transport: "http" }).store({ storeId: "store-1" });
    return { a, implA, set, join, store1 };
  }

  it("a stop whose record cannot be marked stopping removes it at once, with a warning, so that calls go elsewhere", async () => {
    const reg = new MemoryRegistry();
    const captured = captureLog();
    const opts = { cluster: `stopping-unmarked-${process.pid}`, transports: { http: {} } };
    // A's registry refuses the stop's mark (etcd unreachable at that moment), and is slow to delete.
    const refusing: Registry = {
      ...slowed(reg, 0, 1500),
      put: (k, v, o) =>
        v.includes('"stopping":true') ? Promise.reject(new Error("etcd unavailable")) : reg.put(k, v, o),
    };
    const a = createApp({ ...opts, logger: captured.log, discovery: refusing }).serve(Store, new StoreImpl(), {
      instanceId: "A",
      transports: ["http"],
    });
    const watcher = createApp({ ...opts, logger: silentLogger(), discovery: reg });
    apps.push(a, watcher);
    await a.start();
    await watcher.start();
    const set = await watcher.watch(Store.descriptor.name);
    await until("the watcher to see A", () => set.instances().length === 1);
    const stopping = a.stop();
    // The delete is under way (1.5 s): A's record is not marked, only going.
    await new Promise((r) => setTimeout(r, 300));
    expect(set.records?.().map((i) => i.stopping)).toEqual([undefined]);
    expect(captured.warnings().join("\n")).toMatch(
      /marking this instance's discovery record as stopping failed, so it is removed now/,
    );
    await stopping;
    expect(set.records?.()).toEqual([]);
  });

  it("a call reaching a stopping instance for a shard it no longer owns is redirected, not served by it", async () => {
    const { a, implA, set, join, store1 } = await stoppingSetup(`stopping-${process.pid}`);
    await join("B");
    await until("A to hand shard 11 over", () => implA.changes.some((ch) => ch.lost.includes(11)));
    const stopping = a.stop();
    await new Promise((r) => setTimeout(r, 100));
    // The client's view lags: it sends to A what B owns by then.
    expect(set.instances().map((i) => i.instanceId)).toEqual(["A"]);
    // store-1 is in shard 11: A redirects it to B, which the client learns of within the second
    // a redirect waits for its view (before: A, stopping, no longer checked calls and served it).
    const r = await store1();
    expect(r.instanceId).toBe("B");
    await stopping;
  });

  it("a call for a shard an instance joining during the stop took from the stopping one is redirected to it, not served by both", async () => {
    const { a, implA, set, join, store1 } = await stoppingSetup(`stopping-join-${process.pid}`);
    expect(implA.changes.at(-1)?.owned).toContain(11);
    const stopping = a.stop();
    await new Promise((r) => setTimeout(r, 100));
    // C joins while A is still registered (marking its record stopping): it takes shard 11
    // (store-1's) from A. C's record pins it: C owns shard 11 at once, and gains it (its onShards)
    // once A's record, which still says A serves it, is gone (the hand-over: docs/sharding.md).
    const implC = await join("C");
    // The client still sees A alone and sends store-1 there; A, stopping, was told of no change.
    expect(set.instances().map((i) => i.instanceId)).toEqual(["A"]);
    const r = await store1();
    await stopping;
    // C owns shard 11 and has loaded it: A redirects (before: its frozen table served it too).
    expect(r.instanceId).toBe("C");
    expect(implC.changes.some((ch) => ch.gained.includes(11))).toBe(true);
    expect(implA.changes.some((ch) => ch.lost.includes(11))).toBe(false);
  });
});
