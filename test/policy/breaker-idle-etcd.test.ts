/**
 * An idle caller's published breaker follows it to half-open (between processes): a Flaky
 * instance fails in its own process over tcp, a caller App (etcd discovery, a cluster of its
 * own) opens its breaker and then makes no call; after `openMs` the caller's record under
 * `/fan/{cluster}/breakers/...` says `half-open`, as `fanc ls` shows it, without any call,
 * `breakerStates()` or metrics scrape on the caller.
 */
import { pino } from "pino";
import { afterAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { publishedBreakers } from "../../src/runtime/policy/breaker-board.js";
import { describeEtcd, randomCluster, SHARED_ETCD, until } from "../discovery/helpers.js";
import { Flaky } from "./fixtures/generated/fan/policytest.js";
import { type FlakyProcess, flakyProcess } from "./flaky-process.js";

const service = Flaky.descriptor.name;
let server: FlakyProcess | undefined;
let caller: App | undefined;
let registry: EtcdRegistry | undefined;

afterAll(async () => {
  await caller?.stop();
  server?.kill("SIGKILL");
  await registry?.close();
});

describeEtcd("an idle caller's breaker in etcd", () => {
  it("turns half-open after openMs without any call", async () => {
    const cluster = randomCluster();
    server = await flakyProcess({ cluster, id: "bad", mode: "internal", transport: "tcp" });
    caller = createApp({
      cluster,
      discovery: `etcd://${SHARED_ETCD}`,
      transports: { tcp: {} },
      logger: pino({ level: "silent" }),
      policy: { breaker: { failures: 2, openMs: 1500 }, retry: false },
    });
    let openedAt = 0;
    caller.policy.on((e) => {
      if (e.type === "breaker" && e.to === "open") openedAt = Date.now();
    });
    await caller.start();
    const set = await caller.watch(service);
    await until("the instance", () => set.instances().length === 1, 20_000);
    const client = caller.client(Flaky);
    for (let i = 0; i < 2; i++) await client.read({ n: i }).catch(() => undefined);

    const reg = new EtcdRegistry(SHARED_ETCD);
    registry = reg;
    const published = async (): Promise<string | undefined> =>
      (await publishedBreakers(reg, cluster, service)).get("bad")?.[0]?.state;
    expect(openedAt).toBeGreaterThan(0);
    await until("the breaker in etcd", async () => (await published()) !== undefined, 20_000, 50);
    await until("the half-open breaker in etcd", async () => (await published()) === "half-open", 10_000, 50);
    expect(Date.now() - openedAt).toBeGreaterThanOrEqual(1490);
    const [record] = (await publishedBreakers(reg, cluster, service)).get("bad") ?? [];
    expect(record).toMatchObject({ appId: caller.appId, state: "half-open" });
  }, 180_000);
});
