// CI only: deletes what test runs left on the brokers under the `fan.` prefix — RabbitMQ queues
// (without consumers) and exchanges, Redis keys, JetStream streams — before the suites run and
// between them. Push queues are durable quorum queues by design and outlive their test; each
// holds file handles in RabbitMQ, whose limit here is ~900, and a broker at its limit accepts
// TCP connections it never answers (every amqp test then waits for its deadline). In CI the
// brokers serve nothing else, so everything under `fan.` is a test's. Never run against brokers
// that serve real clusters. Prints what it deleted; a broker it cannot reach is skipped.
import { execFileSync } from "node:child_process";
import { connect as natsConnect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import amqplib from "amqplib";
import Redis from "ioredis";

const AMQP = process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const REDIS = process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379";
const NATS = process.env.FAN_NATS_URL ?? "nats://127.0.0.1:4222";

/** Rows of a `rabbitmqctl list_*` table. */
function rabbit(args) {
  const out = execFileSync("rabbitmqctl", ["-q", "--no-table-headers", ...args], { encoding: "utf8", timeout: 60_000 });
  return out
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => l.split("\t"));
}

async function sweepRabbit() {
  const queues = rabbit(["list_queues", "name", "consumers", "exclusive"])
    .filter(([name, consumers, exclusive]) => name.startsWith("fan.") && consumers === "0" && exclusive !== "true")
    .map(([name]) => name);
  const exchanges = rabbit(["list_exchanges", "name"])
    .map(([name]) => name)
    .filter((name) => name.startsWith("fan."));
  const c = await amqplib.connect(AMQP);
  try {
    const ch = await c.createChannel();
    for (const q of queues) await ch.deleteQueue(q);
    for (const x of exchanges) await ch.deleteExchange(x);
  } finally {
    await c.close();
  }
  return `rabbitmq: ${queues.length} queues, ${exchanges.length} exchanges`;
}

async function sweepRedis() {
  const r = new Redis(REDIS, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    let n = 0;
    let cursor = "0";
    do {
      const [next, keys] = await r.scan(cursor, "MATCH", "fan.*", "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) n += await r.unlink(...keys);
    } while (cursor !== "0");
    return `redis: ${n} keys`;
  } finally {
    r.disconnect();
  }
}

async function sweepNats() {
  const nc = await natsConnect({ servers: NATS, timeout: 5000 });
  try {
    const jsm = await jetstreamManager(nc);
    const names = [];
    for await (const name of jsm.streams.names()) if (name.startsWith("fan_")) names.push(name);
    for (const s of names) await jsm.streams.delete(s);
    return `nats: ${names.length} streams`;
  } finally {
    await nc.close();
  }
}

for (const [what, sweep] of [
  ["rabbitmq", sweepRabbit],
  ["redis", sweepRedis],
  ["nats", sweepNats],
]) {
  try {
    console.log(`sweep: ${await sweep()}`);
  } catch (e) {
    console.log(`sweep: ${what} skipped (${e instanceof Error ? e.message : String(e)})`);
  }
}
