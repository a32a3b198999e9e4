/**
 * What a served service leaves on the brokers: the durable push queue and its dead-letter
 * queue (amqp) and the push stream (redis) exist only for services with push members, so a
 * short-lived cluster of services without pushes leaves none of them behind.
 */
import { afterAll, expect, it } from "vitest";
import type { ServiceDescriptor } from "../../src/runtime/descriptor.js";
import { shortId } from "../../src/runtime/ids.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { deadLetterQueue, pushQueue } from "../../src/runtime/transports/amqp/names.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import { pushKey } from "../../src/runtime/transports/redis/names.js";
import type { Transport } from "../../src/runtime/transports/transport.js";
import { AMQP_URL, deleteByPrefix, reachable, describeWithBroker, withChannel } from "./amqp-broker.js";
import { TestInbound } from "./fixtures/inbound.js";
import { ConformanceDescriptor, ListenerADescriptor } from "./fixtures/generated/fan/conformance.js";
import { captureLog } from "./fixtures/log.js";
import { deleteKeys, REDIS_URL, withRedis } from "./redis-server.js";

const cluster = `left-${process.pid}-${shortId()}`;
const ctx = { cluster, log: captureLog().log, maxPayloadBytes: 1 << 20 };
const addr = (s: ServiceDescriptor) => ({ cluster, service: s.name, version: s.version });

const brokers = (await reachable("127.0.0.1", 5672)) && (await reachable("127.0.0.1", 6379));

describeWithBroker(
  brokers,
  "RabbitMQ and Redis",
  "broker leftovers",
)("broker leftovers", () => {
  afterAll(async () => {
    await deleteByPrefix(`fan.${cluster}`);
    await deleteKeys(`fan.${cluster}.*`);
  });

  async function serveBoth(t: Transport, service: ServiceDescriptor): Promise<void> {
    const served = await t.serve(service, `i-${shortId()}`, new TestInbound());
    await served.stop();
  }

  const queueExists = (name: string) =>
    withChannel((ch) =>
      ch.checkQueue(name).then(
        () => true,
        () => false,
      ),
    );

  it("amqp: no push queue or dead-letter queue for a service without push members", async () => {
    const t = amqpTransport({ url: AMQP_URL })(ctx);
    try {
      await serveBoth(t, ListenerADescriptor);
      await serveBoth(t, ConformanceDescriptor);
    } finally {
      await t.close();
    }
    const none = pushQueue(addr(ListenerADescriptor));
    expect(await queueExists(none)).toBe(false);
    expect(await queueExists(deadLetterQueue(none))).toBe(false);
    // The check can see them: the service with a push member has both.
    const some = pushQueue(addr(ConformanceDescriptor));
    expect(await queueExists(some)).toBe(true);
    expect(await queueExists(deadLetterQueue(some))).toBe(true);
  });

  it("redis: no push stream for a service without push members", async () => {
    const t = redisTransport({ url: REDIS_URL })(ctx);
    try {
      await serveBoth(t, ListenerADescriptor);
      await serveBoth(t, ConformanceDescriptor);
    } finally {
      await t.close();
    }
    const exists = (key: string) => withRedis((r) => r.exists(key));
    expect(await exists(pushKey(addr(ListenerADescriptor)))).toBe(0);
    expect(await exists(pushKey(addr(ConformanceDescriptor)))).toBe(1);
  });
});
