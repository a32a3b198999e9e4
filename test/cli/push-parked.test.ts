/**
 * `fanc push --via amqp|redis|nats` while no instance of the service is registered: it used to
 * refuse (exit 1), where an App's client leaves the push in the broker queue of the service's
 * major to wait for the first instance that starts (call/parked.ts). fanc now hands it to an App's
 * client, which does so and logs the warning naming the queue, which fanc prints. Between
 * processes: `bin/fanc.mjs` pushes with nothing registered, then a service starts in a process of
 * its own (test/transports/fixtures/child-app.ts) and handles the push. A push the runtime would
 * not park (`--version` naming part of the major, no `--via`) is still refused.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import { createApp } from "../../src/runtime/app/app.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { AMQP_URL, deleteByPrefix } from "../transports/amqp-broker.js";
import { Conformance } from "../transports/fixtures/generated/fan/conformance.js";
import { ConformanceService } from "../transports/fixtures/handlers.js";
import { deleteStreams, NATS_URL } from "../transports/nats-server.js";
import { deleteKeys, REDIS_URL } from "../transports/redis-server.js";
import { type CapturedChild, runFanc, spawnCaptured, until } from "./helpers.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const SERVICE = "fan.conformance.Conformance";
const urls = { amqp: AMQP_URL, redis: REDIS_URL, nats: NATS_URL } as const;

describeEtcd("fanc push with no instance registered (processes)", () => {
  const clusters: string[] = [];
  const children: CapturedChild[] = [];

  afterAll(async () => {
    for (const c of children) c.child.kill("SIGKILL");
    await Promise.allSettled(children.map((c) => c.exited));
    for (const c of clusters) {
      await deleteByPrefix(`fan.${c}`).catch(() => undefined);
      await deleteKeys(`fan.${c}.*`).catch(() => undefined);
      await deleteStreams(`fan_${c}`).catch(() => undefined);
    }
  }, 60_000);

  /** A cluster where the service ran once over `broker` and stopped: its queue exists, no instance is registered. */
  async function ranOnce(broker: keyof typeof urls): Promise<string> {
    const cluster = randomCluster();
    clusters.push(cluster);
    const app = createApp({
      cluster,
      discovery: `etcd://${SHARED_ETCD}`,
      logger: silentLogger(),
      transports: { [broker]: { url: urls[broker] } },
    }).serve(Conformance, new ConformanceService(), { transports: [broker] });
    await app.start();
    await app.stop();
    return cluster;
  }

  const args = (cluster: string, id: string, ...more: string[]): string[] => [
    "push",
    "Conformance.record",
    JSON.stringify({ id }),
    "--idl",
    "test/transports/fixtures/idl",
    "--discovery",
    `etcd://${SHARED_ETCD}`,
    "--cluster",
    cluster,
    ...more,
  ];

  for (const broker of ["amqp", "redis", "nats"] as const) {
    it(`--via ${broker}: the push waits in the major's queue, the runtime's warning naming it, and the first instance that starts handles it`, async () => {
      const cluster = await ranOnce(broker);
      const id = `parked-${broker}-${process.pid}`;
      const r = await runFanc(args(cluster, id, "--via", broker));
      expect(r.code, r.stderr).toBe(0);
      const [warning, outcome, ...more] = r.stderr.split("\n");
      expect(warning).toMatch(
        new RegExp(
          `^fanc: warning: no instance of ${SERVICE} v1 is registered: its pushes go to its ${broker} queue (\\S+), to wait until one starts \\(${broker}://\\S+\\)$`,
        ),
      );
      expect(outcome).toMatch(
        new RegExp(
          `^acknowledged · [\\d.]+ ms · ${SERVICE}@1\\.x \\(${broker} queue\\) over ${broker} \\(no instance is registered: the push waits there for the first that starts\\) · trace [0-9a-f]{32}$`,
        ),
      );
      expect(more).toEqual([""]);

      const server = spawnCaptured(join(repo, "node_modules/.bin/tsx"), ["test/transports/fixtures/child-app.ts"], {
        FAN_CHILD_SERVE: "Conformance",
        FAN_CHILD_TRANSPORTS: broker,
        FAN_CHILD_CLUSTER: cluster,
        FAN_ETCD: SHARED_ETCD,
      });
      children.push(server);
      // Handled as the instance starts (its record line may come before its `ready`).
      await until("the parked push is handled", () => server.stdout().includes(`"id":"${id}"`), 120_000);
      server.child.kill("SIGTERM");
      await server.exited;
    }, 180_000);
  }

  it("a push the runtime would not park is refused as before: --version naming part of the major, or no --via", async () => {
    const cluster = await ranOnce("redis");
    const part = await runFanc(args(cluster, "not-parked", "--via", "redis", "--version", "1.0.x"));
    expect(part.code).toBe(1);
    expect(part.stderr).toBe(
      `fanc push: no instance of ${SERVICE} (version 1.0.x) is registered in cluster "${cluster}"\n`,
    );
    const unpinned = await runFanc(args(cluster, "not-parked"));
    expect(unpinned.code).toBe(1);
    expect(unpinned.stderr).toBe(
      `fanc push: no instance of ${SERVICE} (version 1.x, the IDL's major: it is at 1.0.0) is registered in cluster "${cluster}"\n`,
    );
  }, 60_000);

  it("--via amqp where no instance ever ran: the warning and the error name the queue that is missing", async () => {
    const cluster = randomCluster();
    clusters.push(cluster);
    const r = await runFanc(args(cluster, "never-ran", "--via", "amqp"));
    expect(r.code).toBe(1);
    const queue = `fan.${cluster}.${SERVICE}.push.v1`;
    expect(r.stderr).toContain(`its pushes go to its amqp queue ${queue}, to wait until one starts`);
    expect(r.stderr).toContain(
      `no amqp queue takes push ${SERVICE}.record (the queue ${queue} does not exist: no consumer has declared it yet, or it was deleted)`,
    );
  }, 60_000);
});
