/**
 * amqp: a push or event whose consumers died holding it until its last delivery. RabbitMQ
 * dead-letters it itself when that consumer dies too, which no fan process sees; the consumer
 * taking the last delivery says so first, in a warning naming the message, and the dead letter
 * is the broker's, as before (reason `delivery_limit` in `x-death`). A push between processes
 * (each consumer SIGKILLed in its handler), an event in this process (the broker closes the
 * subscriber's connection under its handler).
 */
import { afterEach, expect, it } from "vitest";
import { createApp } from "../../src/runtime/app/app.js";
import { decodeEnvelope } from "../../src/runtime/codec/wire.js";
import { shortId } from "../../src/runtime/ids.js";
import { type AmqpTransport, amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import {
  deadLetterQueue,
  parseEndpoint,
  pushQueue,
  subscriptionQueue,
} from "../../src/runtime/transports/amqp/names.js";
import {
  AMQP_URL,
  closeConnectionsNamed,
  deleteByPrefix,
  describeWithBroker,
  peekQueue,
  queueDepth,
} from "./amqp-broker.js";
import { envelope, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { type Peer, startPeer } from "./fixtures/peers.js";
import { undoAfterEach } from "./fixtures/process-cleanup.js";
import { up } from "./processes.js";

/** Deliveries before a message is dead-lettered. */
const LIMIT = 3;
const WARNING = "last delivery: not acknowledged after";

/** What RabbitMQ's own dead-lettering of `queue`'s message at its delivery limit looks like. */
function expectBrokerDeadLetter(msg: { properties: { headers?: Record<string, unknown> } }, queue: string): void {
  const headers = msg.properties.headers ?? {};
  expect(headers["x-first-death-reason"]).toBe("delivery_limit");
  expect(headers["x-first-death-queue"]).toBe(queue);
  expect(headers["x-death"]).toEqual([expect.objectContaining({ count: 1, reason: "delivery_limit", queue })]);
}

describeWithBroker(
  up.amqp && up.etcd,
  "RabbitMQ and etcd",
  "amqp held deaths",
)("amqp: a message whose consumers died holding it", () => {
  const { peers, apps, clusters } = undoAfterEach((c) => deleteByPrefix(`fan.${c}`));
  const transports: AmqpTransport[] = [];
  // Registered after undoAfterEach's hook, so it runs before it (vitest's after hooks stack):
  // the transports close before their clusters' queues are deleted.
  afterEach(async () => {
    await Promise.allSettled(transports.splice(0).map((t) => t.close()));
  });

  /** A transport in `cluster` on a connection named `name`, dead-lettering after LIMIT deliveries. */
  const make = (cluster: string, name: string, logger = captureLog().log): AmqpTransport => {
    const t = amqpTransport({
      url: AMQP_URL,
      maxDeliveries: LIMIT,
      retryDelayMs: 20,
      reconnectMinDelayMs: 20,
      reconnectMaxDelayMs: 200,
      connectionName: name,
    })({ cluster, log: logger, maxPayloadBytes: 1 << 20 }) as AmqpTransport;
    transports.push(t);
    return t;
  };

  it("a push: the consumer of its last delivery warns, naming it; SIGKILLed too, RabbitMQ dead-letters it as before", async () => {
    const cluster = `amqph-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const options = JSON.stringify({ url: AMQP_URL, maxDeliveries: LIMIT });
    const holder = async (): Promise<Peer> => {
      const peer = await startPeer({
        TRANSPORT: "amqp",
        CLUSTER: cluster,
        TRANSPORT_OPTIONS: options,
        PUSH_MS: "600000",
        LOG: "1",
      });
      peers.push(peer);
      return peer;
    };
    let peer = await holder();
    const sender = createApp({
      cluster,
      discovery: "etcd://127.0.0.1:2379",
      logger: captureLog().log,
      transports: { amqp: amqpTransport({ url: AMQP_URL, maxDeliveries: LIMIT }) },
    });
    apps.push(sender);
    await sender.start();
    await sender.client(Conformance, { transport: "amqp" }).record({ id: "held" }, { timeout: 10_000 });
    const warnings: Record<string, unknown>[][] = [];
    for (let delivery = 1; delivery <= LIMIT; delivery++) {
      await peer.waitFor((l) => l.received === "held");
      if (delivery === LIMIT) await peer.waitFor((l) => typeof l.msg === "string" && l.msg.includes(WARNING));
      warnings.push(peer.lines.filter((l) => typeof l.msg === "string" && l.msg.includes(WARNING)));
      await peer.kill(); // in its handler, holding the push
      if (delivery < LIMIT) peer = await holder();
    }
    expect(warnings.slice(0, -1).flat(), "no warning before the last delivery").toEqual([]);

    const queue = pushQueue({ cluster, service: ConformanceDescriptor.name, version: ConformanceDescriptor.version });
    const dlq = deadLetterQueue(queue);
    await until(async () => (await peekQueue(dlq)).length === 1, 10_000);
    const [dead] = await peekQueue(dlq);
    const env = decodeEnvelope((dead as { content: Buffer }).content, { maxBytes: 1 << 20 });
    expect(env.payload).toMatchObject({ id: "held" });
    expectBrokerDeadLetter(dead as { properties: { headers?: Record<string, unknown> } }, queue);
    expect(await queueDepth(queue)).toBe(0);

    expect(warnings.at(-1)).toHaveLength(1);
    expect(warnings.at(-1)?.[0]).toMatchObject({
      level: 40,
      queue,
      id: env.id,
      targetService: ConformanceDescriptor.name,
      targetMethod: "record",
      deliveries: LIMIT - 1,
      deadLetters: dlq,
    });
  }, 120_000);

  it("an event: the subscriber of its last delivery warns, naming it; its connection lost too, RabbitMQ dead-letters it as before", async () => {
    const cluster = `amqph-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const connectionName = `fan-test-${cluster}-sub`;
    const log = captureLog();
    const sub = make(cluster, connectionName, log.log);
    const pub = make(cluster, `fan-test-${cluster}-pub`);
    const subscription = {
      source: ConformanceDescriptor,
      event: "flush",
      group: "events.Held",
      instanceId: "s1",
      broadcast: false,
    };
    const attempts: number[] = [];
    // Never settles: each delivery is held until the broker takes it back with the connection.
    await sub.subscribe(subscription, (e) => {
      attempts.push(Number(e.headers.attempt));
      return new Promise<void>(() => undefined);
    });
    const sent = { ...envelope("flush", { n: 1 }), kind: "event" as const };
    await pub.publish(sent, within(5000));
    for (let delivery = 1; delivery <= LIMIT; delivery++) {
      await until(() => attempts.length === delivery, 15_000);
      if (delivery < LIMIT) expect(log.find(WARNING), "no warning before the last delivery").toEqual([]);
      expect(await closeConnectionsNamed(connectionName)).toBe(1);
    }
    const queue = subscriptionQueue(cluster, {
      group: subscription.group,
      instanceId: subscription.instanceId,
      broadcast: false,
      service: ConformanceDescriptor.name,
      event: "flush",
    });
    const dlq = deadLetterQueue(queue);
    await until(async () => (await peekQueue(dlq)).length === 1, 10_000);
    const [dead] = await peekQueue(dlq);
    expect(decodeEnvelope((dead as { content: Buffer }).content, { maxBytes: 1 << 20 }).id).toBe(sent.id);
    expectBrokerDeadLetter(dead as { properties: { headers?: Record<string, unknown> } }, queue);
    expect(attempts).toEqual([1, 2, 3]);

    const warned = log.find(WARNING);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({
      level: 40,
      queue,
      id: sent.id,
      targetService: ConformanceDescriptor.name,
      event: "flush",
      deliveries: LIMIT - 1,
      deadLetters: dlq,
    });
  }, 60_000);

  it("says nothing more when the consumer saw the earlier failures itself: one line for a dead letter, none for a late success", async () => {
    const cluster = `amqph-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const log = captureLog();
    const server = make(cluster, `fan-test-${cluster}-server`, log.log);
    const client = make(cluster, `fan-test-${cluster}-client`);
    const inbound = new TestInbound();
    const { endpoint } = await server.serve(ConformanceDescriptor, "i1", inbound);
    await client.push(endpoint, envelope("record", { id: "late", failures: LIMIT - 1 }), within(5000));
    await client.push(endpoint, envelope("record", { id: "doomed", failures: 10 }), within(5000));
    const dlq = deadLetterQueue(pushQueue(parseEndpoint(endpoint)));
    await until(async () => inbound.delivered("late").length === 1 && (await peekQueue(dlq)).length === 1, 10_000);
    expect(inbound.pushes.filter((p) => p.id === "doomed").map((p) => p.attempt)).toEqual([1, 2, 3]);
    expect(log.find(`delivery failed ${LIMIT} times; dead-lettered`)).toHaveLength(1);
    expect(log.find(WARNING)).toEqual([]);
  }, 30_000);
});
