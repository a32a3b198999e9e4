/**
 * The retry budget over redis (two server Apps and a caller, talking through the broker): a
 * dependency failing every call still gets its retries throttled. Counting an instance's death
 * once (call/lost.ts) and the floor of retries a second leave that protection whole: of 60 calls
 * failing at once with two retries each, the budget lets a few retries through, the floor ten
 * more (and ten a second after that), not the 120 the calls' policy asks for.
 */
import { expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import type { FanError } from "../../src/runtime/errors.js";
import { shortId } from "../../src/runtime/ids.js";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { Conformance } from "../transports/fixtures/generated/fan/conformance.js";
import { ConformanceService } from "../transports/fixtures/handlers.js";
import { captureLog } from "../transports/fixtures/log.js";
import { undoAfterEach } from "../transports/fixtures/process-cleanup.js";
import { up } from "../transports/processes.js";
import { deleteKeys, REDIS_URL } from "../transports/redis-server.js";

const ETCD = "etcd://127.0.0.1:2379";

/** Fails every `fail` call with the code asked for, counting them. */
class Failing extends ConformanceService {
  attempts = 0;
  override fail(req: { code: string; message: string }, ctx: Parameters<ConformanceService["fail"]>[1]) {
    this.attempts++;
    return super.fail(req, ctx);
  }
}

describeWithBroker(
  up.redis && up.etcd,
  "Redis and etcd",
  "retry budget",
)("the retry budget against a dependency failing every call", () => {
  const { apps, clusters } = undoAfterEach((c) => deleteKeys(`fan.${c}.*`));

  const newApp = (cluster: string): App => {
    const app = createApp({
      cluster,
      discovery: ETCD,
      logger: captureLog().log,
      transports: { redis: { url: REDIS_URL } },
    });
    apps.push(app);
    return app;
  };

  it("throttles the retries of calls failing UNAVAILABLE on both instances: a few, then the floor's ten a second", async () => {
    const cluster = `budget-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const servers = [new Failing(), new Failing()];
    for (const s of servers)
      await newApp(cluster)
        .serve(Conformance, s, { transports: ["redis"] })
        .start();
    const caller = newApp(cluster);
    await caller.start();
    const set = await caller.watch(Conformance.descriptor.name);
    const deadline = Date.now() + 10_000;
    while (set.instances().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const client = caller.client(Conformance, { transport: "redis", policy: { breaker: false } });
    const attempts = (): number => servers[0].attempts + servers[1].attempts;
    const burst = async (n: number): Promise<FanError[]> =>
      Promise.all(
        Array.from({ length: n }, () =>
          client.fail({ code: "UNAVAILABLE", message: "down" }, { retry: 2, timeout: 8000 }).then(
            () => {
              throw new Error("a call to a dependency failing every call succeeded");
            },
            (e: FanError) => e,
          ),
        ),
      );

    const t0 = Date.now();
    const first = await burst(60);
    const took = (Date.now() - t0) / 1000;
    // Unthrottled: 180. The bucket: 4 retries (10 tokens, retries while more than half are left);
    // the floor: 10 at once, 10 a second after.
    expect(attempts()).toBeGreaterThan(60 + 4);
    expect(attempts()).toBeLessThanOrEqual(60 + 4 + 10 + Math.ceil(10 * took));
    expect(first.every((e) => e.code === "UNAVAILABLE")).toBe(true);
    expect(first.filter((e) => e.message.endsWith("(not retried: retry budget spent)")).length).toBeGreaterThan(40);

    // The bucket stays empty (failures only): a later burst gets the floor's retries, no more.
    await new Promise((r) => setTimeout(r, 1500));
    const before = attempts();
    const t1 = Date.now();
    await burst(30);
    const retries = attempts() - before - 30;
    expect(retries).toBeGreaterThan(0);
    expect(retries).toBeLessThanOrEqual(10 + Math.ceil((10 * (Date.now() - t1)) / 1000));
  }, 60_000);
});
