/**
 * `amqp: {}` defaults like `redis: {}` and `nats: {}`: `FAN_AMQP_URL` when set, else the
 * loopback broker (it crashed with "opts.url is not iterable").
 */
import { afterAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { deleteByPrefix, describeWithBroker, reachable } from "./amqp-broker.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { ConformanceService } from "./fixtures/handlers.js";
import { captureLog } from "./fixtures/log.js";

const up = await reachable("127.0.0.1", 5672);
const cluster = `amqp-defaults-${process.pid}`;

describeWithBroker(
  up,
  "RabbitMQ on 127.0.0.1:5672",
  "amqp defaults",
)("amqp: {} (the loopback broker)", () => {
  const apps: App[] = [];
  const saved = process.env.FAN_AMQP_URL;
  afterAll(async () => {
    await Promise.allSettled(apps.map((a) => a.stop()));
    if (saved === undefined) delete process.env.FAN_AMQP_URL;
    else process.env.FAN_AMQP_URL = saved;
    await deleteByPrefix(`fan.${cluster}`);
  });

  const newApp = (): App => {
    const app = createApp({ cluster, discovery: "memory", transports: { amqp: {} }, logger: captureLog().log });
    apps.push(app);
    return app;
  };

  it("serves and calls on amqp://127.0.0.1:5672 without FAN_AMQP_URL", async () => {
    delete process.env.FAN_AMQP_URL;
    const server = newApp().serve(Conformance, new ConformanceService(), { transports: ["amqp"] });
    await server.start();
    const caller = newApp();
    await caller.start();
    const r = await caller.client(Conformance, { transport: "amqp" }).unary({ payload: "x", responseSize: 3 });
    expect(r.payload).toBe("rrr");
  });

  it("FAN_AMQP_URL fills in the url: a broker that is not there fails the start, naming it", async () => {
    process.env.FAN_AMQP_URL = "amqp://127.0.0.1:1";
    const app = createApp({
      cluster,
      discovery: "memory",
      transports: { amqp: { connectTimeoutMs: 300 } },
      logger: captureLog().log,
    }).serve(Conformance, new ConformanceService(), { transports: ["amqp"] });
    apps.push(app);
    await expect(app.start()).rejects.toThrow(/127\.0\.0\.1:1/);
  });

  it("amqpTransport() takes no options", () => {
    expect(typeof amqpTransport()).toBe("function");
  });
});
