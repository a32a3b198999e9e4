/**
 * The etcd leader killed under traffic (3-member cluster of scripts/clusters.sh): fan's
 * discovery is given every endpoint. No call fails, the server's registration survives the
 * election (its lease keeps being renewed), a server started right after the kill is
 * discovered through the client's watch, and there is exactly one key per instance.
 */
import { afterAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { shortId } from "../../src/runtime/ids.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { Conformance } from "../transports/fixtures/generated/fan/conformance.js";
import { type Peer, startPeer } from "../transports/fixtures/peers.js";
import { clusters, describeCluster, ETCD_CLUSTER, PORTS, report, sh, sleep, Traffic, until } from "./harness.js";

const endpoints = PORTS.etcd.map((p) => `127.0.0.1:${p}`).join(",");

/** The member name (etcd1..3) of the current leader, asking the members other than `dead`. */
async function etcdLeader(dead?: string): Promise<string> {
  const live = PORTS.etcd.filter((_, i) => `etcd${i + 1}` !== dead).map((p) => `127.0.0.1:${p}`);
  const out = await sh("etcdctl", ["--endpoints", live.join(","), "endpoint", "status", "-w", "fields"], 20_000);
  const members = out.split('"MemberID" : ').slice(1);
  for (const m of members) {
    const id = /^(\d+)/.exec(m)?.[1];
    const leader = /"Leader" : (\d+)/.exec(m)?.[1];
    const port = /"Endpoint" : "127\.0\.0\.1:(\d+)"/.exec(m)?.[1];
    if (id !== undefined && id === leader && port !== undefined)
      return `etcd${PORTS.etcd.indexOf(Number(port) as 23791) + 1}`;
  }
  throw new Error(`no etcd leader in: ${out}`);
}

async function instanceKeys(cluster: string): Promise<string[]> {
  const out = await sh(
    "etcdctl",
    [
      "--endpoints",
      endpoints,
      "get",
      "--prefix",
      "--keys-only",
      `/fan/${cluster}/services/fan.conformance.Conformance/`,
    ],
    20_000,
  );
  return out.split("\n").filter((l) => l.trim() !== "");
}

(await describeCluster("the etcd cluster", PORTS.etcd))("etcd leader killed under traffic", () => {
  const peers: Peer[] = [];
  const apps: App[] = [];
  let killed: string | undefined;
  afterAll(async () => {
    await Promise.allSettled(apps.map((a) => a.stop()));
    await Promise.allSettled(peers.map((p) => p.kill()));
    if (killed !== undefined) await clusters("start", killed);
  });

  it("no call fails, registrations and watches continue, a new instance is discovered", async () => {
    const cluster = `clu-etcd-${process.pid}-${shortId()}`;
    const env = { TRANSPORT: "http", CLUSTER: cluster, DISCOVERY: ETCD_CLUSTER, LEASE_TTL_MS: "5000" };
    const a = await startPeer(env);
    peers.push(a);
    const app = createApp({ cluster, discovery: ETCD_CLUSTER, logger: silentLogger(), transports: { http: {} } });
    apps.push(app);
    await app.start();
    const traffic = new Traffic(app.client(Conformance, { transport: "http" }), cluster);
    await traffic.flowing(20, 30_000, "calls before the kill");
    const probes = await watchedWrites(cluster);

    killed = await etcdLeader();
    await clusters("kill", killed);
    const killedAt = Date.now();
    // A server registering while the cluster elects a new leader.
    const b = await startPeer(env, 60_000);
    peers.push(b);
    const bReady = Date.now();
    const bPid = String(b.child.pid);
    await until(() => traffic.calls.some((c) => c.ok && c.text === bPid), 30_000, "a call served by the new instance");
    const discoveredMs = Date.now() - killedAt;
    const discoveredAfterReadyMs = Date.now() - bReady;
    // Three lease TTLs after the kill: the first server's registration was renewed through it.
    await sleep(Math.max(0, killedAt + 15_000 - Date.now()));
    const aPid = String(a.child.pid);
    const late = Date.now();
    await until(
      () => traffic.calls.some((c) => c.ok && c.start >= late && c.text === aPid),
      10_000,
      "a call served by the first instance 15 s after the kill",
    );
    const keys = await instanceKeys(cluster);
    const newLeader = await etcdLeader(killed);
    const watch = await probes.stop();
    await clusters("start", killed);
    killed = undefined;
    await traffic.stop();
    const handled = [...a.lines, ...b.lines].filter((l) => l.push !== undefined).map((l) => String(l.push));
    const cost = traffic.cost(killedAt, handled);
    report("etcd leader killed", cost, {
      newLeader,
      discoveredMs,
      discoveredAfterReadyMs,
      instanceKeys: keys.length,
      watch: {
        written: watch.written,
        failedWrites: watch.failedWrites,
        missed: watch.missed.length,
        resets: watch.resets,
      },
    });
    expect(watch.missed).toEqual([]);
    expect(watch.resets).toBe(0);
    expect(keys).toHaveLength(2);
    expect(cost.failedCalls).toBe(0);
    expect(cost.failedPushes).toBe(0);
    expect(cost.lostPushes).toEqual([]);
    expect(discoveredAfterReadyMs).toBeLessThan(10_000);
  }, 180_000);
});

/**
 * A writer puts a new key every 50 ms (each retried until etcd confirms it) while a watch,
 * another client, reads the prefix: every confirmed key must reach the watch.
 */
async function watchedWrites(cluster: string): Promise<{
  stop(): Promise<{ written: number; failedWrites: number; missed: string[]; resets: number }>;
}> {
  const prefix = `/fan/${cluster}/probe/`;
  const reader = new EtcdRegistry(ETCD_CLUSTER.slice("etcd://".length), { callTimeoutMs: 3000 });
  const writer = new EtcdRegistry(ETCD_CLUSTER.slice("etcd://".length), { callTimeoutMs: 3000 });
  const seen = new Set<string>();
  let resets = 0;
  const { revision } = await reader.list(prefix);
  const watch = await reader.watch(prefix, revision, (ev) => {
    if (ev.type === "put") seen.add(ev.kv.key);
    else if (ev.type === "reset") resets++;
  });
  const written: string[] = [];
  let failedWrites = 0;
  let running = true;
  const loop = (async () => {
    for (let i = 1; running; i++) {
      const key = `${prefix}${String(i).padStart(6, "0")}`;
      for (;;) {
        try {
          await writer.put(key, String(i));
          written.push(key);
          break;
        } catch {
          failedWrites++;
          await sleep(100);
        }
      }
      await sleep(50);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      await until(() => written.every((k) => seen.has(k)), 10_000, "every written key watched").catch(() => undefined);
      await watch.close();
      await Promise.all([reader.close(), writer.close()]);
      return { written: written.length, failedWrites, missed: written.filter((k) => !seen.has(k)), resets };
    },
  };
}
