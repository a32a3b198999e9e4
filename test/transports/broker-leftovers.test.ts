/**
 * What a served service leaves on the brokers: the durable push queue, its dead-letter queue
 * and that queue's watch (amqp) and the push stream (redis) exist only for services with push
 * members, so a short-lived cluster of services without pushes leaves none of them behind. A
 * client-only subscriber (`client.events.x.subscribe` in an App that serves nothing) is no
 * service: its amqp queues go when its process exits, and expire when it is killed.
 */
import { afterAll, describe, expect, it } from "vitest";
import type { ServiceDescriptor } from "../../src/runtime/descriptor.js";
import { shortId } from "../../src/runtime/ids.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { deadLetterQueue, deadLetterWatch, pushQueue } from "../../src/runtime/transports/amqp/names.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import { pushKey } from "../../src/runtime/transports/redis/names.js";
import type { Transport } from "../../src/runtime/transports/transport.js";
import { AMQP_URL, deleteByPrefix, listQueues, reachable, describeWithBroker, withChannel } from "./amqp-broker.js";
import { childApp } from "./child.js";
import { TestInbound } from "./fixtures/inbound.js";
import { ConformanceDescriptor, ListenerADescriptor } from "./fixtures/generated/fan/conformance.js";
import { captureLog } from "./fixtures/log.js";
import { deleteKeys, REDIS_URL, withRedis } from "./redis-server.js";

const cluster = `left-${process.pid}-${shortId()}`;
const ctx = { cluster, log: captureLog().log, maxPayloadBytes: 1 << 20 };
const addr = (s: ServiceDescriptor) => ({ cluster, service: s.name, version: s.version });

const brokers =
  (await reachable("127.0.0.1", 5672)) && (await reachable("127.0.0.1", 6379)) && (await reachable("127.0.0.1", 2379));

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
    expect(await queueExists(deadLetterWatch(deadLetterQueue(none)))).toBe(false);
    // The check can see them: the service with a push member has all three.
    const some = pushQueue(addr(ConformanceDescriptor));
    expect(await queueExists(some)).toBe(true);
    expect(await queueExists(deadLetterQueue(some))).toBe(true);
    expect(await queueExists(deadLetterWatch(deadLetterQueue(some)))).toBe(true);
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

  describe("amqp: a client-only subscriber's queues", () => {
    const queuesOf = async (run: string) => (await listQueues(`fan.${run}.`)).sort();

    it("are deleted when its process exits (SIGTERM)", async () => {
      const run = `${cluster}-sub`;
      const child = childApp({ FAN_CHILD_SERVE: "none", FAN_CHILD_TRANSPORTS: "amqp", FAN_CHILD_CLUSTER: run });
      try {
        await child.next("subscribed", 60_000);
        const while_ = await queuesOf(run);
        expect(while_.some((q) => q.includes(".on.fan.conformance.Conformance.ping"))).toBe(true);
      } finally {
        await child.stop();
      }
      expect(await queuesOf(run)).toEqual([]);
    }, 90_000);

    it("expire after its process is killed (x-expires)", async () => {
      const run = `${cluster}-kill`;
      const child = childApp({
        FAN_CHILD_SERVE: "none",
        FAN_CHILD_TRANSPORTS: "amqp",
        FAN_CHILD_CLUSTER: run,
        FAN_CHILD_AMQP_EXPIRES_MS: "1500",
      });
      const ready = await child.next("ready", 60_000);
      await child.next("subscribed", 60_000);
      // Twice the expiry later all three queues are still there: the subscription queue and the
      // dead-letter queue's watch have a consumer, and the dead-letter queue (which has none) is
      // declared again while the subscriber lives, so its dead letters still have somewhere to go.
      await new Promise((r) => setTimeout(r, 3000));
      const before = await queuesOf(run);
      expect(before.filter((q) => q.includes(".on.fan.conformance.Conformance.ping"))).toHaveLength(3);
      process.kill(ready.pid as number, "SIGKILL"); // the App's own process (tsx runs it in a child of its own)
      await child.stop();
      await expect.poll(() => queuesOf(run), { timeout: 30_000, interval: 500 }).toEqual([]);
    }, 120_000);
  });
});
