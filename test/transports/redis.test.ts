/**
 * The redis transport against the real Redis: the shared conformance suite (transport level
 * and end to end through Apps), with raw probes of the request list and the dead-letter stream
 * of pushes.
 */
import { afterAll, beforeAll } from "vitest";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import { deadLetterKey, parseEndpoint, pushKey, rpcKey } from "../../src/runtime/transports/redis/names.js";
import type { Envelope, TransportFactory } from "../../src/runtime/transports/transport.js";
import { decodeEnvelope } from "../../src/runtime/codec/wire.js";
import { describeWithBroker, reachable } from "./amqp-broker.js";
import { conformance } from "./conformance.js";
import { deleteKeys, deleteStaleRunKeys, readStream, REDIS_URL, withRedis } from "./redis-server.js";

const url = new URL(REDIS_URL);
const up = await reachable(url.hostname, Number(url.port || 6379));
const cluster = `conf-${process.pid}`;

/**
 * The suite's long-lived server shares its service with the instances single cases start (a
 * crashing consumer, a draining server); on Redis those read the same per-service list and
 * stream, so the first side the suite creates (that server) gets a cluster of its own.
 * Clients address servers through the endpoint, which names the cluster.
 */
function isolating(): TransportFactory {
  let sides = 0;
  const make = redisTransport({ url: REDIS_URL, maxDeliveries: 3, retryDelayMs: 50, claimIdleMs: 1000, blockMs: 200 });
  return (ctx) => make(sides++ === 0 ? { ...ctx, cluster: `${ctx.cluster}-main` } : ctx);
}

describeWithBroker(
  up,
  "Redis",
  "redis transport",
)("redis transport (real Redis)", () => {
  const patterns = [`fan.${cluster}*`, `fan.conf-redis-${process.pid}*`];
  beforeAll(async () => {
    await deleteStaleRunKeys();
    for (const p of patterns) await deleteKeys(p);
  });
  afterAll(async () => {
    for (const p of patterns) await deleteKeys(p);
  });

  conformance("redis", {
    app: { transports: { redis: isolating() } },
    events: true,
    pushRedelivery: "broker",
    unknownService: ["NOT_FOUND"],
    deadLetter: {
      after: 3,
      read: async (service) => {
        const key = deadLetterKey(
          pushKey({ cluster: `${cluster}-main`, service: service.name, version: service.version }),
        );
        const rows = await readStream(key);
        return rows.map(([, f]) => decodeEnvelope(f.e ?? "", { maxBytes: 1 << 20 }) as Envelope);
      },
    },
    raw: {
      garbage: async (endpoint) => {
        await withRedis((r) => r.lpush(rpcKey(parseEndpoint(endpoint)), Buffer.from([0x00, 0xff, 0x13, 0x37])));
      },
      proto: async (endpoint) => {
        const body = `{"v":1,"id":"p1","kind":"call","service":"fan.conformance.Conformance","method":"echo","headers":{},"payload":{"n":1,"__proto__":{"polluted":true}}}`;
        await withRedis((r) => r.lpush(rpcKey(parseEndpoint(endpoint)), `c1\nfan.${cluster}.reply.nobody\n${body}`));
        return undefined; // the suite checks the server's warn record
      },
    },
  });
});
