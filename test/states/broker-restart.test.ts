/**
 * Replicated states across a broker restart: owner and watcher processes on a redis-server of
 * this test's own (the shared one is never restarted), killed with SIGKILL while the owner
 * streams deltas and started again on its append-only file. Updates published while Redis is
 * down are lost; the replicas must converge to the owner anyway (heartbeats show the gap,
 * watchers resubscribe and take a snapshot).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { PrivateRedis, redisServerAvailable } from "../transports/redis-server.js";
import { Node, until } from "./processes.js";

const possible = await redisServerAvailable();

describeWithBroker(
  possible,
  "a private redis-server",
  "states across a redis restart",
)("states across a broker restart", () => {
  const redis = new PrivateRedis();
  const nodes: Node[] = [];
  beforeAll(async () => {
    await redis.start();
  }, 30_000);
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await redis.destroy();
  });

  it("replicas converge to the owner after Redis is killed and restarted mid-stream", async () => {
    const env = {
      FAN_STATES_CLUSTER: `states-restart-${process.pid}-${shortId()}`,
      FAN_STATES_TRANSPORTS: JSON.stringify({ redis: { url: redis.url, retryDelayMs: 50, blockMs: 200 } }),
    };
    const owner = await Node.start("owner", env);
    nodes.push(owner);
    const watchers = [await Node.start("watcher", env), await Node.start("watcher", env)];
    nodes.push(...watchers);
    for (const w of watchers)
      await until(
        "watcher live",
        () => w.report(),
        (r) => r.status === "live",
      );
    const streaming = owner.send("deltas", { n: 1500, keys: 100, pace: 2 }, 120_000);
    await until(
      "some deltas applied",
      () => (watchers[0] as Node).report(),
      (r) => r.seq > 200,
    );
    await redis.kill();
    await new Promise((r) => setTimeout(r, 1000));
    await redis.start();
    await streaming;
    const want = await owner.report();
    expect(want.seq).toBeGreaterThanOrEqual(1500);
    for (const w of watchers) {
      const got = await until(
        "replica converged after the restart",
        () => w.report(),
        (r) => r.status === "live" && r.epoch === want.epoch && r.seq === want.seq,
        60_000,
      );
      expect(got.value).toEqual(want.value);
    }
  }, 240_000);
});
