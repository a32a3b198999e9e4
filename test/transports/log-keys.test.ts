/**
 * Issue 9 item 14: one key, one meaning in log records. Two Apps over Redis (calls, a failing
 * push delivered again, a push to a member the server does not have, events), every record
 * both wrote read as text: none repeats a key (log stores keep only the last of duplicates,
 * which attributed a dropped message to the wrong service).
 */
import { afterAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { defineService } from "../../src/runtime/descriptor.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import { describeWithBroker } from "./amqp-broker.js";
import { until } from "./conformance.js";
import { ConformanceService, Listener } from "./fixtures/handlers.js";
import { Conformance, ConformanceDescriptor, ListenerA } from "./fixtures/generated/fan/conformance.js";
import { type CapturedLog, captureLog, duplicateKeys } from "./fixtures/log.js";
import { uniqueCluster, up } from "./processes.js";
import { deleteKeys, REDIS_URL } from "./redis-server.js";

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

describeWithBroker(
  up.redis,
  "Redis",
  "log keys",
)("log records over a real call path", () => {
  const cluster = uniqueCluster("logkeys");
  const logs: CapturedLog[] = [];
  const apps: App[] = [];
  const newApp = (): App => {
    const log = captureLog();
    logs.push(log);
    const app = createApp({
      cluster,
      discovery: "memory",
      transports: { redis: redisTransport({ url: REDIS_URL, retryDelayMs: 20 }) },
      logger: log.log,
    });
    apps.push(app);
    return app;
  };
  afterAll(async () => {
    for (const a of apps.reverse()) await a.stop();
    await deleteKeys(`fan.${cluster}*`);
  });

  it("no record repeats a key, and a dropped push names its target as targetService/targetMethod", async () => {
    const impl = new ConformanceService();
    const listener = new Listener();
    const server = newApp()
      .serve(Conformance, impl, { transports: ["redis"] })
      .serve(ListenerA, listener, {
        transports: ["redis"],
      });
    await server.start();
    const caller = newApp();
    await caller.start();
    const client = caller.client(Conformance, { transport: "redis" });
    await client.echo({ n: 1 });
    await client.fail({ code: "TEAPOT", message: "no" }).catch(() => undefined);
    await client.record({ id: "twice", failures: 1 });
    await caller.client(Extended, { transport: "redis" }).nope({ id: "x" });
    // Fails on every attempt: dead-lettered after the transport's 5 deliveries.
    await client.record({ id: "dead", failures: 100 });
    await server.publisher(Conformance).emit("ping", { n: 7 });
    await until(() => impl.delivered("twice") === 1 && listener.pings.includes(7));
    const deadLettered = () => logs.flatMap((l) => l.find("delivery failed 5 times; dead-lettered"));
    await until(() => deadLettered().length > 0, 10_000);
    const dropped = () => logs.flatMap((l) => l.find("no push nope"));
    await until(() => dropped().length > 0);
    const lines = logs.flatMap((l) => l.lines());
    expect(lines.length).toBeGreaterThan(5);
    const repeated = lines.flatMap((l) => duplicateKeys(l).map((k) => `${k} in ${l}`));
    expect(repeated).toEqual([]);
    // The dead-lettering names the push as another service's message; the handler's failure
    // lines never promise a delivery the transport will not make.
    expect(deadLettered()[0]).toMatchObject({
      targetService: Conformance.descriptor.name,
      targetMethod: "record",
      attempt: 5,
    });
    const failures = logs.flatMap((l) => l.find("push handler record failed"));
    expect(failures.length).toBeGreaterThanOrEqual(5);
    for (const f of failures)
      expect(String(f.msg)).toMatch(
        /failed on attempt [1-5]; the transport delivers it again up to its delivery limit/,
      );
    expect(deadLettered()[0]).not.toHaveProperty("method");
    expect(dropped()[0]).toMatchObject({
      service: Conformance.descriptor.name,
      targetService: Conformance.descriptor.name,
      targetMethod: "nope",
    });
  });
});
