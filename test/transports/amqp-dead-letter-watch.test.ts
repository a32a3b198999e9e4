/**
 * amqp: the watch queue of a dead-letter queue (`….dlq.watch`), which the consumers of its work
 * queue read to log what RabbitMQ dead-lettered by itself. Its arguments are fixed (a count and
 * a byte bound, oldest dropped) and the same from every process; a watch deleted under a server
 * is consumed again without closing the channel its calls and pushes run on; ephemeral
 * subscribers sharing a group (every `fanc subscribe` of an event) each have a dead-letter queue
 * and watch of their own, so one closing deletes nothing the others read.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterEach, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { type AmqpTransport, amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import {
  deadLetterQueue,
  deadLetterWatch,
  parseEndpoint,
  pushQueue,
  subscriptionQueue,
} from "../../src/runtime/transports/amqp/names.js";
import type { Envelope } from "../../src/runtime/transports/transport.js";
import { AMQP_URL, deleteByPrefix, describeWithBroker, publishRaw, withChannel } from "./amqp-broker.js";
import { envelope, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { undoAfterEach } from "./fixtures/process-cleanup.js";
import { up } from "./processes.js";

const run = promisify(execFile);

/** The warning of a copy RabbitMQ dead-lettered by itself. */
const WARNING = "dead-lettered by RabbitMQ";
/** The warning of a watch the broker cancelled. */
const CANCELLED = "dead-letter watch cancelled";

/** The arguments of `queue` as RabbitMQ holds them. */
async function argumentsOf(queue: string): Promise<Record<string, unknown>> {
  const { stdout } = await run("rabbitmqctl", ["-q", "list_queues", "name", "arguments", "--formatter", "json"]);
  // Each argument as [key, AMQP type, value].
  const rows = JSON.parse(stdout) as { name: string; arguments: [string, string, unknown][] }[];
  const row = rows.find((r) => r.name === queue);
  if (row === undefined) throw new Error(`no queue ${queue}`);
  return Object.fromEntries(row.arguments.map(([k, , v]) => [k, v]));
}

/** Consumers of `queue` (0 when it does not exist). */
const consumersOf = (queue: string): Promise<number> =>
  withChannel(async (ch) => (await ch.checkQueue(queue)).consumerCount).catch(() => 0);

/** Publishes into `watch` a copy as RabbitMQ would dead-letter `env` from `queue` by itself. */
async function brokerCopy(watch: string, queue: string, env: Envelope): Promise<void> {
  await publishRaw(watch, Buffer.from(JSON.stringify(env)), {
    headers: {
      "x-first-death-reason": "delivery_limit",
      "x-first-death-queue": queue,
      "x-death": [{ count: 1, reason: "delivery_limit", queue, exchange: "" }],
    },
  });
}

describeWithBroker(
  up.amqp,
  "RabbitMQ",
  "amqp dead-letter watch",
)("amqp: the dead-letter watch", () => {
  const { clusters } = undoAfterEach((c) => deleteByPrefix(`fan.${c}`));
  const transports: AmqpTransport[] = [];
  afterEach(async () => {
    await Promise.allSettled(transports.splice(0).map((t) => t.close()));
  });

  const cluster = (): string => {
    const c = `amqpw-${process.pid}-${shortId()}`;
    clusters.push(c);
    return c;
  };

  const make = (c: string, logger = captureLog().log): AmqpTransport => {
    const t = amqpTransport({
      url: AMQP_URL,
      maxDeliveries: 3,
      retryDelayMs: 20,
      reconnectMinDelayMs: 20,
      reconnectMaxDelayMs: 200,
    })({ cluster: c, log: logger, maxPayloadBytes: 1 << 20 }) as AmqpTransport;
    transports.push(t);
    return t;
  };

  it("the watch is bounded by count and bytes, oldest dropped, quorum; a second instance declares it alike", async () => {
    const c = cluster();
    const { endpoint } = await make(c).serve(ConformanceDescriptor, "i1", new TestInbound());
    await make(c).serve(ConformanceDescriptor, "i2", new TestInbound()); // no 406
    const dlq = deadLetterQueue(pushQueue(parseEndpoint(endpoint)));
    expect(await argumentsOf(deadLetterWatch(dlq))).toEqual({
      "x-queue-type": "quorum",
      "x-max-length": 1000,
      "x-max-length-bytes": 16 * 1024 * 1024,
      "x-overflow": "drop-head",
    });
    await until(async () => (await consumersOf(deadLetterWatch(dlq))) === 2, 5000);
  }, 30_000);

  it("a watch deleted under a server: the push and the call it is running are not delivered again, and the watch is read again", async () => {
    const c = cluster();
    const log = captureLog();
    let release = (): void => undefined;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const inbound = new TestInbound();
    const attempts: number[] = [];
    const push = inbound.push.bind(inbound);
    inbound.push = async (env: Envelope): Promise<void> => {
      attempts.push(Number(env.headers.attempt));
      await held;
      await push(env);
    };
    const { endpoint } = await make(c, log.log).serve(ConformanceDescriptor, "i1", inbound);
    const client = make(c);
    const queue = pushQueue(parseEndpoint(endpoint));
    const watch = deadLetterWatch(deadLetterQueue(queue));
    await client.push(endpoint, envelope("record", { id: "busy" }), within(5000));
    const call = client.call(endpoint, envelope("sleep", { ms: 1500 }), within(10_000));
    await until(() => attempts.length === 1 && inbound.active === 1, 5000);

    await withChannel((ch) => ch.deleteQueue(watch));
    await until(() => log.find(CANCELLED).length === 1, 5000);
    expect((await call).kind).toBe("reply");
    expect(inbound.calls, "the call ran once").toHaveLength(1);
    release();
    await until(() => inbound.delivered("busy").length === 1, 5000);
    await new Promise((r) => setTimeout(r, 300));
    expect(attempts, "the push was not returned to its queue").toEqual([1]);
    expect(log.find("channel closed")).toEqual([]);

    // The watch is there again, consumed, and read.
    await until(async () => (await consumersOf(watch)) === 1, 5000);
    const lost = envelope("record", { id: "lost" });
    await brokerCopy(watch, queue, lost);
    await until(() => log.find(WARNING).length === 1, 5000);
    expect(log.find(WARNING)[0]).toMatchObject({ level: 40, id: lost.id, reason: "delivery_limit", queue });
    expect(log.find(CANCELLED), "said once").toHaveLength(1);
  }, 30_000);

  it("ephemeral subscribers in one group: one unsubscribing leaves the other's dead-letter queue and watch alone", async () => {
    const c = cluster();
    const logA = captureLog();
    const logB = captureLog();
    const a = make(c, logA.log);
    const b = make(c, logB.log);
    const names = { source: ConformanceDescriptor, event: "flush", group: "fanc.subscribe", broadcast: true };
    const seenB: number[] = [];
    let release = (): void => undefined;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const subA = await a.subscribe({ ...names, instanceId: "fanc-a", ephemeral: true }, async () => undefined);
    await b.subscribe({ ...names, instanceId: "fanc-b", ephemeral: true }, async (e) => {
      seenB.push(Number(e.headers.attempt));
      await held;
    });
    const queueOf = (instanceId: string): string =>
      subscriptionQueue(c, { ...names, instanceId, service: ConformanceDescriptor.name });
    const dlqA = deadLetterQueue(queueOf("fanc-a"));
    const dlqB = deadLetterQueue(queueOf("fanc-b"));
    expect(dlqA).not.toBe(dlqB);
    await make(c).publish({ ...envelope("flush", { n: 1 }), kind: "event" }, within(5000));
    await until(() => seenB.length === 1, 5000);

    await subA.close();
    expect(await consumersOf(deadLetterWatch(dlqA)), "A's watch deleted").toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    expect(logB.find(CANCELLED), "B's watch untouched").toEqual([]);
    expect(await consumersOf(deadLetterWatch(dlqB))).toBe(1);
    release();
    await new Promise((r) => setTimeout(r, 300));
    expect(seenB, "B's event was not delivered again").toEqual([1]);
  }, 30_000);
});
