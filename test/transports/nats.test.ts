/**
 * The nats transport against the real nats-server (JetStream on): the shared conformance suite
 * (transport level and end to end through Apps), with raw probes of the rpc subject and the
 * dead-letter stream of pushes.
 */
import { afterAll, beforeAll } from "vitest";
import { decodeEnvelope } from "../../src/runtime/codec/wire.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import {
  deadLetterStream,
  deadLetterSubject,
  parseEndpoint,
  PUSH_CONSUMER,
  pushStream,
  rpcSubject,
} from "../../src/runtime/transports/nats/names.js";
import type { Envelope, TransportFactory } from "../../src/runtime/transports/transport.js";
import { describeWithBroker } from "./amqp-broker.js";
import { conformance } from "./conformance.js";
import { deleteStaleStreams, deleteStreams, NATS_URL, natsUp, publishRaw, readStream } from "./nats-server.js";

const up = await natsUp();
const cluster = `conf-${process.pid}`;

/**
 * The suite's long-lived server shares its service with the instances single cases start (a
 * crashing consumer, a draining server); on NATS those share the version's queue group and the
 * push consumer, so the first side the suite creates (that server) gets a cluster of its own.
 * Clients address servers through the endpoint, which names the cluster.
 */
function isolating(): TransportFactory {
  let sides = 0;
  const make = natsTransport({ url: NATS_URL, maxDeliveries: 3, retryDelayMs: 50, ackWaitMs: 2000 });
  return (ctx) => make(sides++ === 0 ? { ...ctx, cluster: `${ctx.cluster}-main` } : ctx);
}

describeWithBroker(
  up,
  "NATS",
  "nats transport",
)("nats transport (real nats-server)", () => {
  const prefixes = [`fan_${cluster}`, `fan_conf-nats-${process.pid}`];
  beforeAll(async () => {
    await deleteStaleStreams();
    for (const p of prefixes) await deleteStreams(p);
  });
  afterAll(async () => {
    for (const p of prefixes) await deleteStreams(p);
  });

  conformance("nats", {
    app: { transports: { nats: isolating() } },
    events: true,
    pushRedelivery: "broker",
    unknownService: ["NOT_FOUND"],
    deadLetter: {
      after: 3,
      read: async (service) => {
        const main = `${cluster}-main`;
        const stream = pushStream({ cluster: main, service: service.name, version: service.version });
        const raw = await readStream(
          deadLetterStream(main).name,
          deadLetterSubject(main, stream.name, PUSH_CONSUMER),
        );
        return raw.map((b) => decodeEnvelope(b, { maxBytes: 1 << 20 }) as Envelope);
      },
    },
    raw: {
      garbage: async (endpoint) => {
        await publishRaw(rpcSubject(parseEndpoint(endpoint)), Uint8Array.from([0x00, 0xff, 0x13, 0x37]), "nobody.here");
      },
      proto: async (endpoint) => {
        const body = `{"v":1,"id":"p1","kind":"call","service":"fan.conformance.Conformance","method":"echo","headers":{},"payload":{"n":1,"__proto__":{"polluted":true}}}`;
        await publishRaw(rpcSubject(parseEndpoint(endpoint)), body, "nobody.here");
        return undefined; // the suite checks the server's warn record
      },
    },
  });
});
