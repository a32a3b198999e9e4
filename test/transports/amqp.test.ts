/**
 * The amqp transport against the real RabbitMQ: the shared conformance suite (transport level
 * and end to end through Apps), with raw probes of the request queue and the dead-letter queue
 * of pushes.
 */
import { afterAll, beforeAll } from "vitest";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { deadLetterQueue, parseEndpoint, pushQueue, rpcQueue } from "../../src/runtime/transports/amqp/names.js";
import type { Envelope, TransportFactory } from "../../src/runtime/transports/transport.js";
import { decodeEnvelope } from "../../src/runtime/codec/wire.js";
import {
  AMQP_URL,
  deleteByPrefix,
  deleteStaleRuns,
  describeWithBroker,
  peekQueue,
  publishRaw,
  reachable,
} from "./amqp-broker.js";
import { conformance } from "./conformance.js";

const url = new URL(AMQP_URL);
const up = await reachable(url.hostname, Number(url.port || 5672));
const prefix = `fan.conf-${process.pid}`;

/**
 * The suite's long-lived server shares its service with the instances that single cases start
 * (a crashing consumer, a draining server). On a broker those instances consume the same
 * per-service queues, so the long-lived server would take their work; the first side the suite
 * creates (that server) therefore gets a cluster of its own. Clients address servers through
 * the endpoint, which names the cluster.
 */
function isolating(): TransportFactory {
  let sides = 0;
  const make = amqpTransport({ url: AMQP_URL, maxDeliveries: 3, retryDelayMs: 50 });
  return (ctx) => make(sides++ === 0 ? { ...ctx, cluster: `${ctx.cluster}-main` } : ctx);
}

describeWithBroker(
  up,
  "RabbitMQ",
  "amqp transport",
)("amqp transport (real RabbitMQ)", () => {
  const prefixes = [prefix, `fan.conf-amqp-${process.pid}`];
  beforeAll(async () => {
    await deleteStaleRuns();
    for (const p of prefixes) await deleteByPrefix(p);
  });
  afterAll(async () => {
    // Twice: a transport still closing may declare a queue again just after the first sweep.
    for (const p of prefixes) await deleteByPrefix(p);
    await new Promise((r) => setTimeout(r, 500));
    for (const p of prefixes) await deleteByPrefix(p);
  });

  conformance("amqp", {
    app: { transports: { amqp: isolating() } },
    events: true,
    pushRedelivery: "broker",
    unknownService: ["NOT_FOUND"],
    deadLetter: {
      after: 3,
      read: async (service) => {
        const q = deadLetterQueue(
          pushQueue({ cluster: `conf-${process.pid}-main`, service: service.name, version: service.version }),
        );
        const msgs = await peekQueue(q);
        return msgs.map((m) => decodeEnvelope(m.content, { maxBytes: 1 << 20 }) as Envelope);
      },
    },
    raw: {
      garbage: async (endpoint) => {
        await publishRaw(rpcQueue(parseEndpoint(endpoint)), Buffer.from([0x00, 0xff, 0x13, 0x37]), {
          replyTo: "amq.rabbitmq.reply-to.nobody",
          correlationId: "g",
        });
      },
      proto: async (endpoint) => {
        const body = `{"v":1,"id":"p1","kind":"call","service":"fan.conformance.Conformance","method":"echo","headers":{},"payload":{"n":1,"__proto__":{"polluted":true}}}`;
        await publishRaw(rpcQueue(parseEndpoint(endpoint)), Buffer.from(body));
        return undefined; // the suite checks the server's warn record
      },
    },
  });
});
