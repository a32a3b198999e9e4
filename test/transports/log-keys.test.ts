/**
 * Issue 9 item 14: one key, one meaning in log records. Two Apps over each broker transport
 * (redis, amqp, nats: calls, a failing push delivered again, a push to a member the server does
 * not have, events, a push and an event whose handlers always fail), every record both wrote
 * read as text: none repeats a key (log stores keep only the last of duplicates, which
 * attributed a dropped message to the wrong service), and the dead-lettering names its message
 * as `targetService` with `targetMethod` (a push) or `event` (an event).
 */
import { afterAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { defineService } from "../../src/runtime/descriptor.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import type { TransportFactory } from "../../src/runtime/transports/transport.js";
import { AMQP_URL, describeWithBroker } from "./amqp-broker.js";
import { until } from "./conformance.js";
import { ConformanceService, Listener } from "./fixtures/handlers.js";
import { Conformance, ConformanceDescriptor, ListenerA } from "./fixtures/generated/fan/conformance.js";
import { type CapturedLog, captureLog, duplicateKeys } from "./fixtures/log.js";
import { NATS_URL } from "./nats-server.js";
import { forgetCluster, uniqueCluster, up } from "./processes.js";
import { REDIS_URL } from "./redis-server.js";

/** Conformance as a newer client sees it: one push more than the server has. */
const Extended = defineService<unknown, { nope(x: { id: string }): Promise<void> }>({
  descriptor: {
    ...ConformanceDescriptor,
    methods: {
      ...ConformanceDescriptor.methods,
      nope: {
        ...(ConformanceDescriptor.methods.record as NonNullable<(typeof ConformanceDescriptor.methods)["record"]>),
        name: "nope",
      },
    },
  },
  createClient: (c) => ({ nope: (x) => c.push("nope", x) }),
});

/** A listener whose `flush` handler fails on every delivery: the event is dead-lettered. */
class FailingFlush extends Listener {
  override onFlush(event: { n: number }): void {
    throw new Error(`flush ${event.n} fails on purpose`);
  }
}

/** The broker transports, each with its default 5 deliveries and quick redeliveries. */
const brokers: ReadonlyArray<{
  readonly name: "redis" | "amqp" | "nats";
  readonly broker: string;
  readonly factory: () => TransportFactory;
}> = [
  { name: "redis", broker: "Redis", factory: () => redisTransport({ url: REDIS_URL, retryDelayMs: 20 }) },
  { name: "amqp", broker: "RabbitMQ", factory: () => amqpTransport({ url: AMQP_URL, retryDelayMs: 20 }) },
  { name: "nats", broker: "NATS", factory: () => natsTransport({ url: NATS_URL, retryDelayMs: 20 }) },
];

for (const { name, broker, factory } of brokers)
  describeWithBroker(
    up[name],
    broker,
    `log keys over ${name}`,
  )(`log records over a real call path (${name})`, () => {
    const cluster = uniqueCluster("logkeys");
    const logs: CapturedLog[] = [];
    const apps: App[] = [];
    const newApp = (): App => {
      const log = captureLog();
      logs.push(log);
      const app = createApp({ cluster, discovery: "memory", transports: { [name]: factory() }, logger: log.log });
      apps.push(app);
      return app;
    };
    afterAll(async () => {
      for (const a of apps.reverse()) await a.stop();
      await forgetCluster(cluster, [name]);
    });

    it("no record repeats a key, and a dropped or dead-lettered message names its target as targetService/targetMethod or event", async () => {
      const impl = new ConformanceService();
      const listener = new FailingFlush();
      const server = newApp()
        .serve(Conformance, impl, { transports: [name] })
        .serve(ListenerA, listener, { transports: [name] });
      await server.start();
      const caller = newApp();
      await caller.start();
      const client = caller.client(Conformance, { transport: name });
      await client.echo({ n: 1 });
      await client.fail({ code: "TEAPOT", message: "no" }).catch(() => undefined);
      await client.record({ id: "twice", failures: 1 });
      await caller.client(Extended, { transport: name }).nope({ id: "x" });
      // Fail on every attempt: dead-lettered after the transport's 5 deliveries.
      await client.record({ id: "dead", failures: 100 });
      await server.publisher(Conformance).emit("flush", { n: 9 });
      await server.publisher(Conformance).emit("ping", { n: 7 });
      await until(() => impl.delivered("twice") === 1 && listener.pings.includes(7));
      const deadLettered = () => logs.flatMap((l) => l.find("delivery failed 5 times; dead-lettered"));
      const deadPush = () => deadLettered().filter((r) => r.targetMethod === "record");
      const deadEvent = () => deadLettered().filter((r) => r.event === "flush");
      await until(() => deadPush().length > 0 && deadEvent().length > 0, 10_000);
      const dropped = () => logs.flatMap((l) => l.find("no push nope"));
      await until(() => dropped().length > 0);
      const lines = logs.flatMap((l) => l.lines());
      expect(lines.length).toBeGreaterThan(5);
      const repeated = lines.flatMap((l) => duplicateKeys(l).map((k) => `${k} in ${l}`));
      expect(repeated).toEqual([]);
      // The dead-lettering names the push, and the event, as another service's message (a
      // warning); the handler's failure lines never promise a delivery the transport will not make.
      expect(deadLettered()).toHaveLength(2);
      expect(deadPush()[0]).toMatchObject({
        level: 40,
        transport: name,
        targetService: Conformance.descriptor.name,
        targetMethod: "record",
        attempt: 5,
      });
      expect(deadEvent()[0]).toMatchObject({
        level: 40,
        transport: name,
        targetService: Conformance.descriptor.name,
        event: "flush",
        attempt: 5,
      });
      // And says where the dead letters went: a queue, a stream, a dead-letter subject.
      const where = { redis: /\.dlq$/, amqp: /\.dlq$/, nats: /^stream fan_\S+_dlq, subject fan\.\S+\.dlq\./ }[name];
      for (const r of deadLettered()) expect(String(r.deadLetters), JSON.stringify(r)).toMatch(where);
      expect(deadPush()[0]).not.toHaveProperty("method");
      expect(deadPush()[0]).not.toHaveProperty("event");
      expect(deadEvent()[0]).not.toHaveProperty("method");
      expect(deadEvent()[0]).not.toHaveProperty("targetMethod");
      for (const [kind, handler] of [
        ["push", "record"],
        ["event", "onFlush"],
      ]) {
        const failures = logs.flatMap((l) => l.find(`${kind} handler ${handler} failed`));
        expect(failures.length, `${kind} handler failures`).toBeGreaterThanOrEqual(5);
        for (const f of failures)
          expect(String(f.msg)).toMatch(
            /failed on attempt [1-5]; the transport delivers it again up to its delivery limit/,
          );
      }
      expect(dropped()[0]).toMatchObject({
        service: Conformance.descriptor.name,
        targetService: Conformance.descriptor.name,
        targetMethod: "nope",
      });
    });
  });
