/**
 * Redis masters killed under traffic (scripts/clusters.sh): the Redis Cluster master holding
 * the slot of fan's keys (every key of a service shares the `{service}` hash tag), and the
 * master of a Sentinel-managed pair. Redis replicates asynchronously: a push Redis
 * acknowledged just before its master died may not have reached the replica, so the number
 * lost is measured and reported, and bounded loosely; calls resume after the failover.
 */
import { afterAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import type { RedisTransportOptions } from "../../src/runtime/transports/redis/index.js";
import { pushKey } from "../../src/runtime/transports/redis/names.js";
import { Conformance } from "../transports/fixtures/generated/fan/conformance.js";
import { type Peer, startPeer } from "../transports/fixtures/peers.js";
import { clusters, describeCluster, ETCD_CLUSTER, PORTS, report, sh, sleep, Traffic, until } from "./harness.js";

/** At most this many acknowledged pushes may be lost to one master's death (async replication). */
const LOST_BOUND = 50;

/** The port of the Redis Cluster master serving `key`'s slot. */
async function masterOf(key: string): Promise<number> {
  const slot = Number((await sh("redis-cli", ["-p", "27001", "cluster", "keyslot", key])).trim());
  const nodes = await sh("redis-cli", [
    "-p",
    String(PORTS.redisCluster.find((p) => p !== 27001) ?? 27002),
    "cluster",
    "nodes",
  ]);
  for (const line of nodes.split("\n")) {
    const f = line.split(" ");
    if (!f[2]?.includes("master") || f[2].includes("fail")) continue;
    for (const range of f.slice(8)) {
      const [lo, hi] = range.split("-").map(Number);
      if (lo !== undefined && slot >= lo && slot <= (hi ?? lo)) return Number(/:(\d+)@/.exec(f[1] ?? "")?.[1]);
    }
  }
  throw new Error(`no master for slot ${slot} in:\n${nodes}`);
}

/** The port of the master the sentinels name now. */
async function sentinelMaster(): Promise<number> {
  for (const port of PORTS.sentinels) {
    const out = await sh("redis-cli", ["-p", String(port), "sentinel", "get-master-addr-by-name", "fan-master"]).catch(
      () => "",
    );
    const p = Number(out.split("\n")[1]);
    if (p > 0) return p;
  }
  throw new Error("no sentinel answers");
}

/** Runs traffic through `options`, kills the master `kill()` names, restarts it after, and measures. */
async function killUnderTraffic(
  what: string,
  options: RedisTransportOptions,
  kill: (cluster: string) => Promise<string>,
  healthy: () => Promise<boolean>,
  peers: Peer[],
  apps: App[],
  restart: { member?: string | undefined },
): Promise<void> {
  const cluster = `clu-redis-${process.pid}-${shortId()}`;
  const env = {
    TRANSPORT: "redis",
    CLUSTER: cluster,
    DISCOVERY: ETCD_CLUSTER,
    TRANSPORT_OPTIONS: JSON.stringify(options),
  };
  const server = await startPeer(env, 60_000);
  peers.push(server);
  const app = createApp({ cluster, discovery: ETCD_CLUSTER, logger: silentLogger(), transports: { redis: options } });
  apps.push(app);
  await app.start();
  const traffic = new Traffic(app.client(Conformance, { transport: "redis" }), cluster);
  await traffic.flowing(20, 30_000, "calls before the kill");

  restart.member = await kill(cluster);
  const killedAt = Date.now();
  await traffic.flowing(50, 60_000, "calls after the kill");
  const resumedMs = Date.now() - killedAt;
  await sleep(3000);
  await traffic.stop();
  const acked = traffic.pushes.filter((p) => p.ok).map((p) => p.id);
  const handled = (): string[] => server.lines.filter((l) => l.push !== undefined).map((l) => String(l.push));
  await until(
    () => {
      const seen = new Set(handled());
      return acked.every((id) => seen.has(id));
    },
    20_000,
    "every acknowledged push handled",
  ).catch(() => undefined);
  const cost = traffic.cost(killedAt, handled());
  report(what, cost, { killed: restart.member, resumedMs });
  const member = restart.member;
  restart.member = undefined;
  await clusters("start", member);
  await until(healthy, 60_000, `${what}: the restarted member back in its cluster`);
  expect(cost.lostPushes.length).toBeLessThanOrEqual(LOST_BOUND);
  expect(cost.recoveryMs).toBeLessThan(30_000);
}

(await describeCluster("the Redis Cluster", PORTS.redisCluster))("Redis Cluster master killed under traffic", () => {
  const peers: Peer[] = [];
  const apps: App[] = [];
  const restart: { member?: string | undefined } = {};
  afterAll(async () => {
    await Promise.allSettled(apps.map((a) => a.stop()));
    await Promise.allSettled(peers.map((p) => p.kill()));
    if (restart.member !== undefined) await clusters("start", restart.member);
  }, 120_000);

  it("fails over to the replica; calls resume; acknowledged pushes lost are counted", async () => {
    const options: RedisTransportOptions = {
      cluster: { nodes: PORTS.redisCluster.map((port) => ({ host: "127.0.0.1", port })) },
    };
    const healthy = async (): Promise<boolean> => {
      const info = await sh("redis-cli", ["-p", "27001", "cluster", "info"]).catch(() => "");
      const nodes = await sh("redis-cli", ["-p", "27002", "cluster", "nodes"]).catch(() => "fail");
      return info.includes("cluster_state:ok") && !nodes.includes("fail") && !nodes.includes("disconnected");
    };
    await killUnderTraffic(
      "redis cluster master killed",
      options,
      async (cluster) => {
        const port = await masterOf(pushKey({ cluster, service: "fan.conformance.Conformance", version: "1.0.0" }));
        await clusters("kill", `redis${port}`);
        return `redis${port}`;
      },
      healthy,
      peers,
      apps,
      restart,
    );
  }, 300_000);
});

(await describeCluster("the Redis Sentinel group", [...PORTS.sentinelData, ...PORTS.sentinels]))(
  "Redis Sentinel master killed under traffic",
  () => {
    const peers: Peer[] = [];
    const apps: App[] = [];
    const restart: { member?: string | undefined } = {};
    afterAll(async () => {
      await Promise.allSettled(apps.map((a) => a.stop()));
      await Promise.allSettled(peers.map((p) => p.kill()));
      if (restart.member !== undefined) await clusters("start", restart.member);
    }, 120_000);

    it("fails over to the replica; calls resume; acknowledged pushes lost are counted", async () => {
      const options: RedisTransportOptions = {
        redis: { sentinels: PORTS.sentinels.map((port) => ({ host: "127.0.0.1", port })), name: "fan-master" },
      };
      const healthy = async (): Promise<boolean> => {
        const master = await sentinelMaster();
        const info = await sh("redis-cli", ["-p", String(master), "info", "replication"]).catch(() => "");
        return /connected_slaves:1/.test(info);
      };
      await killUnderTraffic(
        "redis sentinel master killed",
        options,
        async () => {
          const port = await sentinelMaster();
          await clusters("kill", `redis${port}`);
          return `redis${port}`;
        },
        healthy,
        peers,
        apps,
        restart,
      );
    }, 300_000);
  },
);
