/**
 * A call to a method the served service does not have is an ordinary refusal
 * (UNIMPLEMENTED, as a newer client calling an older instance gets), not an undecodable
 * message: the redis, nats and amqp servers answer it without a warning in their log. (When
 * unknown methods became UNIMPLEMENTED instead of NOT_FOUND, these servers, which skipped the
 * warning for NOT_FOUND only, warned "undecodable … call" on every one.)
 */
import { afterAll, expect, it } from "vitest";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import type { Transport, TransportFactory } from "../../src/runtime/transports/transport.js";
import { AMQP_URL, deleteByPrefix, describeWithBroker, reachable } from "./amqp-broker.js";
import { envelope, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { deleteStreams, NATS_URL, natsUp } from "./nats-server.js";
import { deleteKeys, REDIS_URL } from "./redis-server.js";

const cluster = `quiet-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
const up = (await reachable("127.0.0.1", 5672)) && (await reachable("127.0.0.1", 6379)) && (await natsUp());
const factories: Record<string, TransportFactory> = {
  redis: redisTransport({ url: REDIS_URL }),
  nats: natsTransport({ url: NATS_URL }),
  amqp: amqpTransport({ url: AMQP_URL }),
};

describeWithBroker(
  up,
  "Redis, NATS and RabbitMQ",
  "unknown methods",
)("a call to an unknown method", () => {
  const open: Transport[] = [];
  afterAll(async () => {
    await Promise.all(open.map((t) => t.close()));
    await deleteKeys(`fan.${cluster}*`);
    await deleteStreams(`fan_${cluster}`);
    await deleteByPrefix(`fan.${cluster}`);
  });

  for (const [name, factory] of Object.entries(factories)) {
    it(`${name}: is answered UNIMPLEMENTED, and the server warns nothing`, async () => {
      const log = captureLog();
      const server = factory({ cluster, log: log.log, maxPayloadBytes: 1 << 20 });
      const client = factory({ cluster, log: captureLog().log, maxPayloadBytes: 1 << 20 });
      open.push(server, client);
      const { endpoint } = await server.serve(ConformanceDescriptor, `quiet-${name}`, new TestInbound());
      for (let i = 0; i < 3; i++) {
        const reply = await client.call(endpoint, envelope("made_up", { n: i }), within(5000));
        expect(reply.kind).toBe("error");
        expect((reply.payload as { code: string }).code).toBe("UNIMPLEMENTED");
      }
      expect(log.records().filter((r) => r.level >= 40)).toEqual([]);
    });
  }
});
