/**
 * `fanc call --instance` and `fanc push --instance` over amqp, redis and nats: the call goes to
 * the named instance's own queue (amqp queue, redis list, nats subject: SendOptions.instance, as
 * `fanc health` asks one App), not the version's shared one, which any instance takes from. It
 * was refused ("--instance needs a direct transport"), though every instance has such a queue.
 * Two instances of the service on all three brokers (Apps in the test's process, registered in
 * the shared etcd); fanc in-process, as a user runs it but without the process start-up.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { run as call } from "../../src/cli/call.js";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { AMQP_URL, deleteByPrefix } from "../transports/amqp-broker.js";
import type { Echoed } from "../transports/fixtures/generated/fan/conformance.js";
import { Conformance } from "../transports/fixtures/generated/fan/conformance.js";
import { ConformanceService } from "../transports/fixtures/handlers.js";
import { deleteStreams, NATS_URL } from "../transports/nats-server.js";
import { deleteKeys, REDIS_URL } from "../transports/redis-server.js";
import { captureIo } from "./helpers.js";

const BROKERS = ["amqp", "redis", "nats"] as const;

/** The conformance service, counting the echoes it answered. */
class Counting extends ConformanceService {
  echoes = 0;
  override echo(req: { n: number; text?: string | undefined }): Echoed {
    this.echoes++;
    return super.echo(req);
  }
}

describeEtcd("fanc call --instance and fanc push --instance over the brokers", () => {
  const cluster = randomCluster();
  const C = ["--idl", "test/transports/fixtures/idl", "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  const handlers = { "a-1": new Counting(), "b-1": new Counting() };
  const apps: App[] = [];

  beforeAll(async () => {
    for (const [id, handler] of Object.entries(handlers)) {
      const app = createApp({
        cluster,
        discovery: `etcd://${SHARED_ETCD}`,
        logger: silentLogger(),
        transports: { amqp: { url: AMQP_URL }, redis: { url: REDIS_URL }, nats: { url: NATS_URL } },
      }).serve(Conformance, handler, { instanceId: id, transports: [...BROKERS] });
      apps.push(app);
    }
    await Promise.all(apps.map((a) => a.start()));
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(apps.map((a) => a.stop()));
    await deleteByPrefix(`fan.${cluster}`).catch(() => undefined);
    await deleteKeys(`fan.${cluster}.*`).catch(() => undefined);
    await deleteStreams(`fan_${cluster}`).catch(() => undefined);
  }, 60_000);

  it.each(BROKERS)(
    "over %s every call and push reaches the instance named, through its own queue",
    async (via) => {
      const [a, b] = [handlers["a-1"], handlers["b-1"]];
      const before = { a: a.echoes, b: b.echoes, pushes: b.pushes.length };
      // With the shared queue each call had one chance in two of reaching b-1.
      for (let n = 0; n < 8; n++) {
        const io = captureIo();
        const code = await call(
          ["Conformance.echo", JSON.stringify({ n }), ...C, "--instance", "a-1", "--via", via],
          io,
        );
        expect(code, io.errText()).toBe(0);
        expect(JSON.parse(io.outText())).toEqual({ n });
        expect(io.stderr).toHaveLength(1);
        expect(io.stderr[0]).toMatch(
          new RegExp(
            `^ok · [\\d.]+ ms · a-1 over ${via} \\(its own queue, named by --instance\\) · trace [0-9a-f]{32}$`,
          ),
        );
      }
      expect(a.echoes - before.a).toBe(8);
      expect(b.echoes - before.b).toBe(0);

      // --json has no sharedQueue: the instance named is the one that answered.
      const json = captureIo();
      expect(await call(["Conformance.echo", '{"n":9}', ...C, "--instance", "b-1", "--via", via, "--json"], json)).toBe(
        0,
      );
      const o = JSON.parse(json.outText()) as Record<string, unknown>;
      expect(o).toMatchObject({ ok: true, instance: "b-1", transport: via, value: { n: 9 } });
      expect(o.sharedQueue).toBeUndefined();
      expect(b.echoes - before.b).toBe(1);

      // A push is acknowledged by the instance named once it handled it.
      const id = `own-${via}-${process.pid}`;
      const push = captureIo();
      const code = await call(
        ["Conformance.record", JSON.stringify({ id }), ...C, "--instance", "b-1", "--via", via],
        push,
        "push",
      );
      expect(code, push.errText()).toBe(0);
      expect(push.errText()).toMatch(new RegExp(`^acknowledged · [\\d.]+ ms · b-1 over ${via} \\(its own queue`));
      expect(b.pushes.slice(before.pushes).map((x) => x.id)).toEqual([id]);
      expect(a.pushes.map((x) => x.id)).not.toContain(id);
    },
    120_000,
  );
});
