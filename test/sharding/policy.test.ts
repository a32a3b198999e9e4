/**
 * Sharded calls go through the client policy chain like any other, between processes (three
 * `test.shards.Store` children on etcd, http): the bulkhead refuses them, metrics count them
 * (a call refused before it was sent too, in the "none" series, with its trace id), the owner's
 * circuit breaker opens when it fails, and a retry re-resolves the owner, so a call made while
 * the owner is dead answers from its new owner once the owner's lease expired.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/index.js";
import { assignShards, shardOfKey } from "../../src/runtime/call/shards.js";
import { Code } from "../../src/runtime/errors.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { describeEtcd, SHARED_ETCD, until } from "../discovery/helpers.js";
import { parse, sample } from "../telemetry/prom.js";
import { rejection } from "../transports/conformance.js";
import { type Child, kill, serveStore } from "./helpers.js";
import { Store } from "./fixtures/generated/test/shards.js";

const service = Store.descriptor.name;

describeEtcd("sharded calls through the policy chain (etcd, http, between processes)", () => {
  const cluster = `shpol-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const ids = ["Pol-a", "Pol-b", "Pol-c"];
  let children: Child[] = [];
  let app: App;

  beforeAll(async () => {
    children = await Promise.all(
      ids.map((instanceId) =>
        serveStore({ etcd: SHARED_ETCD, cluster, instanceId, transports: ["http"], leaseTtlMs: 2000 }),
      ),
    );
    app = createApp({
      cluster,
      discovery: `etcd://${SHARED_ETCD}`,
      logger: silentLogger(),
      transports: { http: {} },
      policy: { breaker: { failures: 2, openMs: 60_000 }, retry: { budget: { maxTokens: 1000 } } },
    });
    await app.start();
    const set = await app.watch(service);
    await until("3 Store instances", () => set.instances().length === 3, 20_000);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(children.map(kill));
    await app?.stop();
  });

  const ownerOf = (key: string): string =>
    assignShards(
      ids.map((instanceId) => ({ instanceId, shards: [] })),
      16,
    )[shardOfKey([key], 16)] as string;

  it("the bulkhead refuses a sharded call beyond its bound; metrics count both, the refused one with its trace id", async () => {
    const store = app.client(Store, { policy: { bulkhead: { maxInFlight: 1 } } });
    const first = store.store({ storeId: "s1" });
    const refused = await rejection(() => store.store({ storeId: "s2" }));
    expect(refused.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(refused.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect((await first).instanceId).toBe(ownerOf("s1"));

    const s = parse(await app.metrics());
    expect(sample(s, "fan_client_calls_total", { service, method: "store", transport: "http", code: "OK" })).toBe(1);
    expect(
      sample(s, "fan_client_calls_total", { service, method: "store", transport: "none", code: "RESOURCE_EXHAUSTED" }),
    ).toBe(1);
    expect(sample(s, "fan_client_bulkhead_rejected_total", { service })).toBe(1);
  });

  it("a call no instance can take (pinned to a transport this app lacks) carries its trace id and is counted", async () => {
    const store = app.client(Store);
    const err = await rejection(() => store.any({ n: 1 }, { transport: "zmq" }));
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.traceId).toMatch(/^[0-9a-f]{32}$/);
    const sharded = await rejection(() => store.store({ storeId: "s3" }, { transport: "zmq" }));
    expect(sharded.traceId).toMatch(/^[0-9a-f]{32}$/);
    const s = parse(await app.metrics());
    expect(
      sample(s, "fan_client_calls_total", { service, method: "any", transport: "none", code: "UNAVAILABLE" }),
    ).toBe(1);
    expect(
      sample(s, "fan_client_calls_total", { service, method: "store", transport: "none", code: "UNAVAILABLE" }),
    ).toBe(1);
  });

  it("a dead owner's breaker opens (fail fast naming the shard); a retrying call re-resolves the owner and answers from the new one", async () => {
    const victim = children[2] as Child;
    const key = Array.from({ length: 200 }, (_, i) => `k${i}`).find((k) => ownerOf(k) === victim.instanceId) as string;
    const shard = shardOfKey([key], 16);
    const store = app.client(Store);
    expect((await store.store({ storeId: key })).instanceId).toBe(victim.instanceId);
    await kill(victim);

    // Without retries: connection refused twice, then the owner's breaker is open.
    for (let i = 0; i < 2; i++) await rejection(() => store.store({ storeId: key }, { retry: false }));
    const t0 = Date.now();
    const fast = await rejection(() => store.store({ storeId: key }, { retry: false }));
    expect(Date.now() - t0).toBeLessThan(200);
    expect(fast.code).toBe(Code.UNAVAILABLE);
    expect(fast.message).toContain(`shard ${shard} of ${service}`);
    expect(fast.message).toContain(`circuit breaker of its owner ${victim.instanceId} is open`);
    expect(fast.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(app.policy.breakerStates()).toContainEqual(
      expect.objectContaining({ instanceId: victim.instanceId, state: "open" }),
    );

    // Retried until the lease (2 s) expires and the shard has a new owner.
    const answer = await store.store({ storeId: key }, { retry: 60, timeout: 20_000 });
    expect(answer.instanceId).not.toBe(victim.instanceId);
    expect(answer.owned).toContain(shard);
    const s = parse(await app.metrics());
    expect(sample(s, "fan_client_retries_total", { service, method: "store" })).toBeGreaterThan(0);
  }, 60_000);
});
