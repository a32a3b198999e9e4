/**
 * On a broker (amqp, redis, nats) a call goes to the version's shared queue and the broker picks
 * the instance, so the breaker guards the queue: one breaker for all the instances, named by the
 * queue's endpoint (`amqp://{cluster}/{service}/{version}`, no instance part) in
 * `breakerStates()` and `fan_breaker_*`, opened by failures whichever instance answered. Two
 * failing Flaky instances, each in its own App, and a caller App (memory discovery) on the
 * shared brokers. Sharded calls, which go to the owner's own queue, are keyed by it
 * (test/sharding/fallback.test.ts).
 */
import { pino } from "pino";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type App, type AppOptions, createApp } from "../../src/runtime/app/app.js";
import { Code } from "../../src/runtime/errors.js";
import { shortId } from "../../src/runtime/ids.js";
import { parse, sample } from "../telemetry/prom.js";
import { AMQP_URL, deleteByPrefix, reachable } from "../transports/amqp-broker.js";
import { rejection, until } from "../transports/conformance.js";
import { deleteStreams, NATS_URL, natsUp } from "../transports/nats-server.js";
import { deleteKeys, REDIS_URL } from "../transports/redis-server.js";
import { FlakyImpl } from "./fixtures/handlers.js";
import { Flaky } from "./fixtures/generated/fan/policytest.js";

const silent = pino({ level: "silent" });
const cluster = `pbrk-${process.pid}-${shortId()}`;
const service = Flaky.descriptor.name;
const brokers = {
  amqp: (await reachable("127.0.0.1", Number(new URL(AMQP_URL).port || 5672)))
    ? { amqp: { url: AMQP_URL } }
    : undefined,
  redis: (await reachable("127.0.0.1", Number(new URL(REDIS_URL).port || 6379)))
    ? { redis: { url: REDIS_URL } }
    : undefined,
  nats: (await natsUp()) ? { nats: { url: NATS_URL } } : undefined,
} as const;
const apps: App[] = [];

afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
});

afterAll(async () => {
  if (brokers.redis !== undefined) await deleteKeys(`fan.${cluster}*`);
  if (brokers.amqp !== undefined) await deleteByPrefix(`fan.${cluster}`).catch(() => undefined);
  if (brokers.nats !== undefined) await deleteStreams(`fan_${cluster}`).catch(() => undefined);
});

for (const name of ["amqp", "redis", "nats"] as const) {
  const transports = brokers[name];
  const suite = transports === undefined ? describe.skip : describe;
  if (transports === undefined && process.env.FAN_REQUIRE_BROKERS === "1") throw new Error(`${name} not reachable`);

  suite(`breakers over ${name}`, () => {
    it("one breaker per queue, named by the queue's endpoint, opened by failures of any instance", async () => {
      const c = `${cluster}-${name}`;
      const base: AppOptions = { cluster: c, discovery: "memory", logger: silent, transports: transports as never };
      const handlers = [new FlakyImpl("a"), new FlakyImpl("b")];
      for (const h of handlers) {
        h.mode = "internal";
        const app = createApp(base).serve(Flaky, h, { instanceId: h.name, transports: [name] });
        apps.push(app);
        await app.start();
      }
      const caller = createApp({ ...base, policy: { breaker: { failures: 3, openMs: 60_000 }, retry: false } });
      apps.push(caller);
      await caller.start();
      const set = await caller.watch(service);
      await until(() => set.instances().length === 2);
      const client = caller.client(Flaky, { transport: name, strategy: "round-robin" });

      for (let i = 0; i < 3; i++) expect((await rejection(() => client.read({ n: i }))).code).toBe(Code.INTERNAL);
      const queue = `${name}://${c}/${service}/1.0.0`;
      expect(caller.policy.breakerStates()).toEqual([
        expect.objectContaining({ service, instanceId: queue, state: "open", failures: 3 }),
      ]);
      // Open after three failures, wherever the broker sent them: the next call fails at once.
      const err = await rejection(() => client.read({ n: 9 }));
      expect(err.code).toBe(Code.UNAVAILABLE);
      expect(err.message).toContain(`circuit breaker of every instance is open (${queue} open)`);
      expect(handlers.reduce((n, h) => n + h.arrivals.length, 0)).toBe(3);
      const s = parse(await caller.metrics());
      expect(sample(s, "fan_breaker_state", { service, instance: queue })).toBe(2);
      expect(sample(s, "fan_breaker_transitions_total", { service, instance: queue, to: "open" })).toBe(1);
    }, 30_000);
  });
}
