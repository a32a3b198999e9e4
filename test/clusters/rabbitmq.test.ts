/**
 * The RabbitMQ node that leads the push queue (a quorum queue) killed under traffic, in the
 * 3-node cluster of scripts/clusters.sh: client and server are given the three nodes' URLs.
 * No acknowledged push is lost (a publisher confirm from a quorum queue means a majority
 * wrote it) and calls resume on a surviving node.
 */
import { afterAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { pushQueue } from "../../src/runtime/transports/amqp/names.js";
import { Conformance } from "../transports/fixtures/generated/fan/conformance.js";
import { type Peer, startPeer } from "../transports/fixtures/peers.js";
import { clusters, describeCluster, ETCD_CLUSTER, PORTS, report, sleep, Traffic, until } from "./harness.js";

const urls = PORTS.rabbit.map((p) => `amqp://guest:guest@127.0.0.1:${p}`);

/** The node (rabbit1..3) a queue's leader lives on, asking a node other than `dead`. */
async function queueLeader(queue: string, dead?: string): Promise<string> {
  const ask = dead === "rabbit1" ? "2" : "1";
  const out = await clusters("rabbitmqctl", ask, "list_queues", "name", "leader", "-q", "--no-table-headers");
  const line = out.split("\n").find((l) => l.split(/\s+/)[0] === queue);
  const m = /rabbit-fan(\d)@/.exec(line ?? "");
  if (m === null) throw new Error(`no leader of ${queue} in: ${out}`);
  return `rabbit${m[1]}`;
}

(await describeCluster("the RabbitMQ cluster", PORTS.rabbit))(
  "RabbitMQ quorum queue leader's node killed under traffic",
  () => {
    const peers: Peer[] = [];
    const apps: App[] = [];
    let killed: string | undefined;
    afterAll(async () => {
      await Promise.allSettled(apps.map((a) => a.stop()));
      await Promise.allSettled(peers.map((p) => p.kill()));
      if (killed !== undefined) await clusters("start", killed);
    }, 180_000);

    it("loses no acknowledged push and calls resume on a surviving node", async () => {
      const cluster = `clu-amqp-${process.pid}-${shortId()}`;
      const options = { url: urls, rpcQueueType: "quorum", reconnectMinDelayMs: 50, reconnectMaxDelayMs: 1000 };
      const env = {
        TRANSPORT: "amqp",
        CLUSTER: cluster,
        DISCOVERY: ETCD_CLUSTER,
        TRANSPORT_OPTIONS: JSON.stringify(options),
      };
      const server = await startPeer(env, 60_000);
      peers.push(server);
      const app = createApp({
        cluster,
        discovery: ETCD_CLUSTER,
        logger: silentLogger(),
        transports: { amqp: options },
      });
      apps.push(app);
      await app.start();
      const traffic = new Traffic(app.client(Conformance, { transport: "amqp" }), cluster);
      await traffic.flowing(20, 30_000, "calls before the kill");

      const queue = pushQueue({ cluster, service: "fan.conformance.Conformance", version: "1.0.0" });
      killed = await queueLeader(queue);
      await clusters("kill", killed);
      const killedAt = Date.now();
      await traffic.flowing(50, 60_000, "calls after the kill").catch(async (e) => {
        const ask = killed === "rabbit1" ? "2" : "1";
        const queues = await clusters(
          "rabbitmqctl",
          ask,
          "list_queues",
          "name",
          "type",
          "leader",
          "consumers",
          "messages",
          "-q",
        );
        const ours = queues.split("\n").filter((l) => l.includes(cluster));
        throw new Error(`${(e as Error).message}; killed ${killed}; queues:\n${ours.join("\n")}`);
      });
      const resumedMs = Date.now() - killedAt;
      const newLeader = await queueLeader(queue, killed);
      await sleep(3000);
      await traffic.stop();
      const acked = traffic.pushes.filter((p) => p.ok).map((p) => p.id);
      const handled = (): string[] => server.lines.filter((l) => l.push !== undefined).map((l) => String(l.push));
      await until(
        () => {
          const seen = new Set(handled());
          return acked.every((id) => seen.has(id));
        },
        30_000,
        "every acknowledged push handled",
      ).catch(() => undefined);
      const cost = traffic.cost(killedAt, handled());
      report("rabbitmq quorum leader node killed", cost, { killed, newLeader, resumedMs });
      const restartAt = Date.now();
      await clusters("start", killed);
      killed = undefined;
      console.log(`CLUSTER rabbitmq: the killed node was back in ${Date.now() - restartAt} ms`);
      expect(cost.lostPushes).toEqual([]);
      expect(cost.recoveryMs).toBeLessThan(30_000);
    }, 300_000);
  },
);
