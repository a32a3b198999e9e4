/**
 * Stream consumers read many messages at once (read-gate.ts), but slow handlers holding most
 * of the prefetch must not stop the free slots from taking messages: redis streams and
 * JetStream pulls with prefetch 4, three handlers stuck, five more events.
 */
import { afterAll, describe, expect, it } from "vitest";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import type { Transport, TransportFactory } from "../../src/runtime/transports/transport.js";
import { reachable } from "./amqp-broker.js";
import { envelope, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { captureLog } from "./fixtures/log.js";
import { deleteStreams, NATS_URL as NATS } from "./nats-server.js";
import { deleteKeys, REDIS_URL as REDIS } from "./redis-server.js";

const run = `gate-${process.pid}-${Date.now().toString(36)}`;
const open: Transport[] = [];
afterAll(async () => {
  for (const t of open) await t.close().catch(() => undefined);
  await deleteKeys(`fan.${run}-redis.*`).catch(() => undefined);
  await deleteStreams(`fan_${run}-nats`).catch(() => undefined);
});

const brokers: [string, string, () => TransportFactory][] = [
  ["redis", REDIS, () => redisTransport({ url: REDIS, blockMs: 200, retryDelayMs: 50, eventPrefetch: 4 })],
  ["nats", NATS, () => natsTransport({ url: NATS, retryDelayMs: 50, eventPrefetch: 4 })],
];

for (const [name, url, factory] of brokers) {
  const u = new URL(url);
  const up = await reachable(u.hostname, Number(u.port));
  if (!up && process.env.FAN_REQUIRE_BROKERS === "1") throw new Error(`${name} is not reachable at ${url}`);
  describe.skipIf(!up)(`${name} event consumer, prefetch 4`, () => {
    it("three stuck handlers do not stop the fourth slot from taking events", async () => {
      const cluster = `${run}-${name}`;
      const make = (): Transport => {
        const t = factory()({ cluster, log: captureLog().log, maxPayloadBytes: 1 << 20 });
        open.push(t);
        return t;
      };
      const sub = make();
      const pub = make();
      const handled: number[] = [];
      let unstick!: () => void;
      const stuck = new Promise<void>((r) => {
        unstick = r;
      });
      await sub.subscribe(
        { source: ConformanceDescriptor, event: "ping", group: "events.Gate", instanceId: "g1", broadcast: false },
        async (env) => {
          const n = (env.payload as { n: number }).n;
          if (n < 3) await stuck;
          handled.push(n);
        },
      );
      for (let n = 0; n < 8; n++) await pub.publish({ ...envelope("ping", { n }), kind: "event" }, within(5000));
      try {
        await until(() => handled.length >= 5, 5000);
      } finally {
        unstick();
      }
      expect(handled.slice(0, 5)).toEqual([3, 4, 5, 6, 7]);
      await until(() => handled.length === 8, 5000);
    }, 30_000);
  });
}
