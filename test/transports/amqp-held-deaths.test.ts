/**
 * amqp: a push or event whose consumers died holding it. RabbitMQ dead-letters it itself
 * (reason `delivery_limit`), which no fan process sees; every dead letter is also copied to the
 * dead-letter queue's watch queue, and the fan consumer that reads the copy logs it, naming the
 * message. The copy of a message a fan consumer rejected (its handler failed at the last
 * delivery, reason `rejected`) says nothing more, and a message that is handled at its last
 * delivery is no warning at all. Pushes between processes (each consumer SIGKILLed in its
 * handler), an event in this process (the broker closes the subscriber's connection under its
 * handler).
 */
import { afterEach, expect, it } from "vitest";
import { createApp } from "../../src/runtime/app/app.js";
import { decodeEnvelope } from "../../src/runtime/codec/wire.js";
import { shortId } from "../../src/runtime/ids.js";
import { type AmqpTransport, amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import {
  deadLetterQueue,
  deadLetterWatch,
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
/** The warning for a message RabbitMQ dead-lettered by itself. */
const WARNING =
  "(its consumers went away holding it: a process died, or its channel or connection closed); dead-lettered by RabbitMQ";

/** Log records at warn or above that name `id` or the push `record({ id })` carried. */
const warningsAbout = (lines: readonly Record<string, unknown>[], id: string): Record<string, unknown>[] =>
  lines.filter((l) => typeof l.level === "number" && l.level >= 40 && JSON.stringify(l).includes(id));

/** What RabbitMQ's own dead-lettering of `queue`'s message looks like (`reason`: why). */
function expectBrokerDeadLetter(
  msg: { properties: { headers?: Record<string, unknown> } },
  queue: string,
  reason = "delivery_limit",
): void {
  const headers = msg.properties.headers ?? {};
  expect(headers["x-first-death-reason"]).toBe(reason);
  expect(headers["x-first-death-queue"]).toBe(queue);
  expect(headers["x-death"]).toEqual([expect.objectContaining({ count: 1, reason, queue })]);
}

describeWithBroker(
  up.amqp && up.etcd,
  "RabbitMQ and etcd",
  "amqp held deaths",
)("amqp: a message whose consumers died holding it", () => {
  const { peers, apps, clusters } = undoAfterEach((c) => deleteByPrefix(`fan.${c}`));
  const transports: AmqpTransport[] = [];
  // Registered after undoAfterEach's hook, so it runs before it (vitest's after hooks stack):
  // the transports close before their queues are deleted.
  afterEach(async () => {
    await Promise.allSettled(transports.splice(0).map((t) => t.close()));
  });

  /**
   * A transport in `cluster` on a connection named `name`, dead-lettering after LIMIT
   * deliveries; the dead letters it counts (`fan_dead_letters_total`) go to `deadLetters`.
   */
  const make = (
    cluster: string,
    name: string,
    logger = captureLog().log,
    deadLetters: string[] = [],
  ): AmqpTransport => {
    const t = amqpTransport({
      url: AMQP_URL,
      maxDeliveries: LIMIT,
      retryDelayMs: 20,
      reconnectMinDelayMs: 20,
      reconnectMaxDelayMs: 200,
      connectionName: name,
    })({
      cluster,
      log: logger,
      maxPayloadBytes: 1 << 20,
      deadLetter: (service, method) => deadLetters.push(`${service}.${method}`),
    }) as AmqpTransport;
    transports.push(t);
    return t;
  };

  /** A new cluster, a starter of peers serving Conformance in it, and a started App that sends to it. */
  const pushCluster = async (maxDeliveries: number) => {
    const cluster = `amqph-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const options = JSON.stringify({ url: AMQP_URL, maxDeliveries });
    /** A peer whose push handler takes `pushMs` (long: it is SIGKILLed holding the push). */
    const peer = async (pushMs = 600_000): Promise<Peer> => {
      const p = await startPeer({
        TRANSPORT: "amqp",
        CLUSTER: cluster,
        TRANSPORT_OPTIONS: options,
        PUSH_MS: String(pushMs),
        LOG: "1",
      });
      peers.push(p);
      return p;
    };
    const sender = createApp({
      cluster,
      discovery: "etcd://127.0.0.1:2379",
      logger: captureLog().log,
      transports: { amqp: amqpTransport({ url: AMQP_URL, maxDeliveries }) },
    });
    apps.push(sender);
    await sender.start();
    const queue = pushQueue({ cluster, service: ConformanceDescriptor.name, version: ConformanceDescriptor.version });
    return { peer, client: sender.client(Conformance, { transport: "amqp" }), queue, dlq: deadLetterQueue(queue) };
  };

  /** The one dead letter in `dlq`, decoded, after checking RabbitMQ dead-lettered it from `queue` (`reason`). */
  const theDeadLetter = async (dlq: string, queue: string, reason = "delivery_limit") => {
    await until(async () => (await peekQueue(dlq)).length === 1, 10_000);
    const [dead] = await peekQueue(dlq);
    expectBrokerDeadLetter(dead as { properties: { headers?: Record<string, unknown> } }, queue, reason);
    return decodeEnvelope((dead as { content: Buffer }).content, { maxBytes: 1 << 20 });
  };

  it("a push whose consumers were SIGKILLed at every delivery: the next instance warns, naming it, once RabbitMQ dead-lettered it", async () => {
    const { peer, client, queue, dlq } = await pushCluster(LIMIT);
    let p = await peer(); // declares the push queue
    await client.record({ id: "held" }, { timeout: 10_000 });
    const killed: Peer[] = [];
    for (let delivery = 1; delivery <= LIMIT; delivery++) {
      if (delivery > 1) p = await peer();
      await p.waitFor((l) => l.received === "held");
      await p.kill(); // in its handler, holding the push
      killed.push(p);
    }
    const env = await theDeadLetter(dlq, queue);
    expect(env.payload).toMatchObject({ id: "held" });
    expect(await queueDepth(queue)).toBe(0);
    // No instance was left when RabbitMQ dead-lettered it: the copy waited for the next one.
    const reporter = await peer();
    const line = await reporter.waitFor((l) => typeof l.msg === "string" && l.msg.includes(WARNING), 15_000);
    expect(line).toMatchObject({
      level: 40,
      msg: `not acknowledged after ${LIMIT} deliveries ${WARNING}`,
      queue,
      id: env.id,
      targetService: ConformanceDescriptor.name,
      targetMethod: "record",
      deliveries: LIMIT,
      reason: "delivery_limit",
      deadLetters: dlq,
    });
    await until(async () => (await queueDepth(deadLetterWatch(dlq))) === 0, 5000);
    expect(
      killed.flatMap((p) => warningsAbout(p.lines, env.id)),
      "the killed instances said nothing",
    ).toEqual([]);
    expect(warningsAbout(reporter.lines, env.id)).toHaveLength(1);
  }, 120_000);

  it("a push handled at its last delivery after its consumers died holding it is no warning", async () => {
    const { peer, client, queue, dlq } = await pushCluster(LIMIT);
    let p = await peer(); // declares the push queue
    await client.record({ id: "survivor" }, { timeout: 10_000 });
    const all: Peer[] = [];
    for (let delivery = 1; delivery < LIMIT; delivery++) {
      if (delivery > 1) p = await peer();
      all.push(p);
      await p.waitFor((l) => l.received === "survivor");
      await p.kill();
    }
    const last = await peer(0);
    all.push(last);
    await last.waitFor((l) => l.push === "survivor" && l.attempt === LIMIT);
    await until(async () => (await queueDepth(queue)) === 0, 5000);
    // Whatever was to be said at the last delivery has been: the handler resolved and was acked.
    await new Promise((r) => setTimeout(r, 500));
    expect(await queueDepth(dlq)).toBe(0);
    expect(all.flatMap((p) => warningsAbout(p.lines, "survivor"))).toEqual([]);
    expect(all.flatMap((p) => p.lines.filter((l) => typeof l.level === "number" && l.level >= 40))).toEqual([]);
  }, 120_000);

  it("maxDeliveries 1: a push whose consumer was SIGKILLed holding it is dead-lettered, and another instance warns, naming it", async () => {
    const { peer, client, queue, dlq } = await pushCluster(1);
    const a = await peer();
    const b = await peer();
    await client.record({ id: "once" }, { timeout: 10_000 });
    const holder = await Promise.race([a, b].map((p) => p.waitFor((l) => l.received === "once").then(() => p)));
    const other = holder === a ? b : a;
    await holder.kill();
    const env = await theDeadLetter(dlq, queue);
    const line = await other.waitFor((l) => typeof l.msg === "string" && l.msg.includes(WARNING), 15_000);
    expect(line).toMatchObject({
      level: 40,
      msg: `not acknowledged after 1 deliveries ${WARNING}`,
      queue,
      id: env.id,
      targetService: ConformanceDescriptor.name,
      targetMethod: "record",
      deliveries: 1,
      reason: "delivery_limit",
      deadLetters: dlq,
    });
    expect(
      other.lines.filter((l) => l.received === "once"),
      "never delivered again",
    ).toEqual([]);
  }, 120_000);

  it("an event whose subscriber's connection was lost at every delivery: the subscriber, connected again, warns, naming it", async () => {
    const cluster = `amqph-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const connectionName = `fan-test-${cluster}-sub`;
    const log = captureLog();
    const counted: string[] = [];
    const sub = make(cluster, connectionName, log.log, counted);
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
      expect(log.find(WARNING), "no warning while it is not dead-lettered").toEqual([]);
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
    expect((await theDeadLetter(dlq, queue)).id).toBe(sent.id);
    expect(attempts).toEqual([1, 2, 3]);
    await until(() => log.find(WARNING).length > 0, 15_000);
    const warned = log.find(WARNING);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({
      level: 40,
      queue,
      id: sent.id,
      targetService: ConformanceDescriptor.name,
      event: "flush",
      deliveries: LIMIT,
      reason: "delivery_limit",
      deadLetters: dlq,
    });
    expect(counted).toEqual([`${ConformanceDescriptor.name}.flush`]);
  }, 90_000);

  it("a handler failing at the last delivery: one warning, its consumer's, none for the copy it rejected; none for a late success", async () => {
    const cluster = `amqph-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const log = captureLog();
    const counted: string[] = [];
    const server = make(cluster, `fan-test-${cluster}-server`, log.log, counted);
    const client = make(cluster, `fan-test-${cluster}-client`);
    const inbound = new TestInbound();
    const { endpoint } = await server.serve(ConformanceDescriptor, "i1", inbound);
    const doomed = envelope("record", { id: "doomed", failures: 10 });
    await client.push(endpoint, envelope("record", { id: "late", failures: LIMIT - 1 }), within(5000));
    await client.push(endpoint, doomed, within(5000));
    const queue = pushQueue(parseEndpoint(endpoint));
    const dlq = deadLetterQueue(queue);
    await until(async () => inbound.delivered("late").length === 1 && (await peekQueue(dlq)).length === 1, 10_000);
    expect((await theDeadLetter(dlq, queue, "rejected")).id).toBe(doomed.id);
    expect(inbound.pushes.filter((p) => p.id === "doomed").map((p) => p.attempt)).toEqual([1, 2, 3]);
    // The server read the copy in the watch queue (and said nothing of it).
    await until(async () => (await queueDepth(deadLetterWatch(dlq))) === 0, 5000);
    const warnings = log.records().filter((r) => r.level >= 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      msg: `delivery failed ${LIMIT} times; dead-lettered`,
      id: doomed.id,
      deadLetters: dlq,
    });
    expect(counted, "counted once, not again from its copy").toEqual([`${ConformanceDescriptor.name}.record`]);
  }, 30_000);
});
