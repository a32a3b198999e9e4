/**
 * Replicated states across a broker restart, owner and watcher processes apart: a redis-server
 * and a RabbitMQ node of this test's own (the shared ones are never restarted) go down while
 * the owner streams deltas and come back; over zmq the owner process itself is killed
 * mid-stream and started again. Updates published meanwhile are lost; the replicas must
 * converge to the owner anyway (heartbeats show the gap, watchers resubscribe and take a
 * snapshot), never apply a delta out of order, and say in their log that they resynced.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { type EventHub, startEventHub } from "../../src/runtime/transports/zmq/index.js";
import { canRunPrivateRabbit, describeWithBroker, PrivateRabbit } from "../transports/amqp-broker.js";
import { PrivateRedis, redisServerAvailable } from "../transports/redis-server.js";
import { Node, type Report, until } from "./processes.js";

const possible = await redisServerAvailable();
const rabbitPossible = await canRunPrivateRabbit();

/** The log records of a process with this message. */
const logged = (n: Node, msg: string): Record<string, unknown>[] =>
  n.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.msg === msg);

/**
 * Every watcher ends equal to the owner at its (epoch, seq), took a snapshot after the
 * disruption, never applied a delta that did not follow the one before (no gap, no reorder
 * within an epoch), and logged that it resynced and went live again.
 */
async function convergedAfterDisruption(
  owner: Node,
  watchers: readonly Node[],
  before: readonly Report[],
): Promise<void> {
  const want = await owner.report();
  for (const [i, w] of watchers.entries()) {
    const got = await until(
      "replica converged after the disruption",
      () => w.report(),
      (r) => r.status === "live" && r.epoch === want.epoch && r.seq === want.seq,
      60_000,
    );
    expect(got.value).toEqual(want.value);
    expect(got.violations, "deltas applied out of sequence").toBe(0);
    expect(got.snapshots ?? 0, "a new snapshot after the disruption").toBeGreaterThan(before[i]?.snapshots ?? 0);
    // The child's log lines reach this process through its stdout, after its report: wait for them.
    await until(
      "the watcher's 'state live again' line",
      async () => logged(w, "state live again").length,
      (n) => n > 0,
      10_000,
    ).catch(() => undefined);
    expect(logged(w, "state live again").length, `watcher log: ${w.logs.slice(-5).join("\n")}`).toBeGreaterThan(0);
    expect(
      logged(w, "state owner absent").length + logged(w, "state resyncing").length,
      "the watcher said why it resynced",
    ).toBeGreaterThan(0);
  }
}

/**
 * One owner and two watchers in processes of their own on `env`; the owner streams 1,500
 * deltas, and once the watchers applied some the broker goes `down` for a second and comes
 * back `up`: the stream completes and every watcher converges (`convergedAfterDisruption`).
 */
async function streamThroughOutage(
  env: Record<string, string>,
  nodes: Node[],
  broker: { down(): Promise<void>; up(): Promise<void> },
  streamMs: number,
): Promise<void> {
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
  const streaming = owner.send("deltas", { n: 1500, keys: 100, pace: 2 }, streamMs);
  await until(
    "some deltas applied",
    () => (watchers[0] as Node).report(),
    (r) => r.seq > 200,
  );
  const before = await Promise.all(watchers.map((w) => w.report()));
  await broker.down();
  await new Promise((r) => setTimeout(r, 1000));
  await broker.up();
  await streaming;
  expect((await owner.report()).seq).toBeGreaterThanOrEqual(1500);
  await convergedAfterDisruption(owner, watchers, before);
}

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
      FAN_LOG_LEVEL: "info",
    };
    await streamThroughOutage(env, nodes, { down: () => redis.kill(), up: () => redis.start() }, 120_000);
  }, 240_000);
});

describeWithBroker(
  rabbitPossible,
  "a private RabbitMQ node (rabbitmq-server)",
  "states across a RabbitMQ restart",
)("states across a RabbitMQ restart (private node)", () => {
  let rabbit: PrivateRabbit | undefined;
  const nodes: Node[] = [];
  beforeAll(async () => {
    rabbit = await PrivateRabbit.launch();
  }, 120_000);
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await rabbit?.destroy();
  }, 60_000);

  it("replicas converge, in order, after the broker is stopped and started mid-stream", async () => {
    const node = rabbit as PrivateRabbit;
    const env = {
      FAN_STATES_CLUSTER: `states-rabbit-${process.pid}-${shortId()}`,
      FAN_STATES_TRANSPORTS: JSON.stringify({
        amqp: { url: node.url, reconnectMinDelayMs: 50, reconnectMaxDelayMs: 400, retryDelayMs: 50 },
      }),
      FAN_LOG_LEVEL: "info",
    };
    await streamThroughOutage(env, nodes, { down: () => node.stop(), up: () => node.start() }, 180_000);
  }, 300_000);
});

describe("states across an owner restart over zmq", () => {
  let hub: EventHub;
  const nodes: Node[] = [];
  beforeAll(async () => {
    hub = await startEventHub();
  });
  afterEach(async () => {
    await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));
  });
  afterAll(async () => {
    await hub.close();
  });

  it("the owner is killed mid-stream and started again: watchers resync to its new epoch, then follow in order", async () => {
    const env = {
      FAN_STATES_CLUSTER: `states-zmq-restart-${process.pid}-${shortId()}`,
      FAN_STATES_TRANSPORTS: JSON.stringify({ zmq: { events: { publish: hub.publish, subscribe: hub.subscribe } } }),
      FAN_LOG_LEVEL: "info",
    };
    const first = await Node.start("owner", env);
    nodes.push(first);
    const watchers = [await Node.start("watcher", env), await Node.start("watcher", env)];
    nodes.push(...watchers);
    for (const w of watchers)
      await until(
        "watcher live",
        () => w.report(),
        (r) => r.status === "live",
      );
    const streaming = Promise.race([
      first.send("deltas", { n: 5000, keys: 100, pace: 2 }, 120_000),
      first.exited.then(() => "killed"),
    ]);
    await until(
      "some deltas applied",
      () => (watchers[0] as Node).report(),
      (r) => r.seq > 200,
    );
    const before = await Promise.all(watchers.map((w) => w.report()));
    first.kill();
    expect(await streaming).toBe("killed");
    const epoch = before[0]?.epoch ?? 0;
    // The watchers notice (no heartbeat) and say the owner is absent.
    for (const w of watchers)
      await until(
        "owner absent",
        () => w.report(),
        (r) => r.status === "owner-absent",
        30_000,
      );
    const second = await Node.start("owner", env);
    nodes.push(second);
    await second.send("deltas", { n: 800, keys: 50, pace: 1 }, 120_000);
    const now = await second.report();
    expect(now.epoch).toBeGreaterThan(epoch);
    await convergedAfterDisruption(second, watchers, before);
  }, 240_000);
});
