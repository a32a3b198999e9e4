/**
 * A NATS node killed under traffic (3-node cluster with JetStream of scripts/clusters.sh):
 * JetStream consumers continue, no acknowledged push is lost (a JetStream publish ack means a
 * majority of the stream's replicas stored it), calls resume. Skipped while this checkout has
 * no NATS transport (src/runtime/transports/nats).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import type { TransportsConfig } from "../../src/runtime/app/infra.js";
import { shortId } from "../../src/runtime/ids.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { Conformance } from "../transports/fixtures/generated/fan/conformance.js";
import { type Peer, startPeer } from "../transports/fixtures/peers.js";
import { clusters, describeCluster, ETCD_CLUSTER, PORTS, report, sleep, Traffic, until } from "./harness.js";

const transportDir = fileURLToPath(new URL("../../src/runtime/transports/nats", import.meta.url));
const missing = existsSync(transportDir)
  ? undefined
  : "no NATS transport in this checkout (src/runtime/transports/nats does not exist)";

(await describeCluster("the NATS cluster", PORTS.nats, missing))("NATS node killed under traffic", () => {
  const peers: Peer[] = [];
  const apps: App[] = [];
  let killed: string | undefined;
  afterAll(async () => {
    await Promise.allSettled(apps.map((a) => a.stop()));
    await Promise.allSettled(peers.map((p) => p.kill()));
    if (killed !== undefined) await clusters("start", killed);
  }, 120_000);

  it("JetStream consumers continue, no acknowledged push lost, calls resume", async () => {
    const cluster = `clu-nats-${process.pid}-${shortId()}`;
    // Every node's URL (the client fails over between them) and streams replicated on all three.
    const options = { url: PORTS.nats.map((p) => `nats://127.0.0.1:${p}`), replicas: 3 };
    const env = {
      TRANSPORT: "nats",
      CLUSTER: cluster,
      DISCOVERY: ETCD_CLUSTER,
      TRANSPORT_OPTIONS: JSON.stringify(options),
    };
    const server = await startPeer(env, 60_000);
    peers.push(server);
    const transports = { nats: options } as unknown as TransportsConfig;
    const app = createApp({ cluster, discovery: ETCD_CLUSTER, logger: silentLogger(), transports });
    apps.push(app);
    await app.start();
    const client = app.client(Conformance, { transport: "nats" as "redis" });
    const traffic = new Traffic(client, cluster);
    await traffic.flowing(20, 30_000, "calls before the kill");
    // Both processes connect to the first URL: kill that node.
    killed = "nats1";
    await clusters("kill", killed);
    const killedAt = Date.now();
    await traffic.flowing(50, 60_000, "calls after the kill");
    const resumedMs = Date.now() - killedAt;
    await sleep(3000);
    await traffic.stop();
    const acked = traffic.pushes.filter((p) => p.ok).map((p) => p.id);
    const handled = (): string[] => server.lines.filter((l) => l.push !== undefined).map((l) => String(l.push));
    await until(() => acked.every((id) => new Set(handled()).has(id)), 20_000, "every acknowledged push handled").catch(
      () => undefined,
    );
    const cost = traffic.cost(killedAt, handled());
    report("nats node killed", cost, { killed, resumedMs });
    await clusters("start", killed);
    killed = undefined;
    expect(cost.lostPushes).toEqual([]);
    expect(cost.recoveryMs).toBeLessThan(30_000);
  }, 300_000);
});
