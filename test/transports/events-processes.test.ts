/**
 * Issue 9 item 8: events between processes. With only http (which carries no events) a
 * subscriber in another process used to start, the publisher to emit, and the event to
 * vanish without a word. Now `start` (a served subscription), `subscribe` and `emit` fail
 * naming what is missing; with a transport that carries events the same two processes do get
 * the event. Trial 2, finding 2: a publisher whose events cannot travel used to start without
 * a word and fail each emit after its handler's effects; its start now warns, naming the
 * service, its events, its transports and what would carry them (it may serve calls alone).
 */
import { afterEach, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { FanError } from "../../src/runtime/errors.js";
import { type ChildApp, childApp } from "./child.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { ConformanceService } from "./fixtures/handlers.js";
import { captureLog } from "./fixtures/log.js";
import { ETCD, factoryFor, uniqueCluster, up } from "./processes.js";

const d = up.etcd || process.env.FAN_REQUIRE_BROKERS === "1" ? describe : describe.skip;

d("events between processes", () => {
  const children: ChildApp[] = [];
  const apps: App[] = [];
  afterEach(async () => {
    for (const a of apps.splice(0)) await a.stop();
    for (const c of children.splice(0)) await c.stop();
  });

  /** A ListenerA instance (it subscribes to Conformance.ping) in a process of its own. */
  const subscriber = (cluster: string, transports: string): ChildApp => {
    const child = childApp({
      FAN_CHILD_TRANSPORTS: transports,
      FAN_CHILD_CLUSTER: cluster,
      FAN_CHILD_SERVE: "ListenerA",
      FAN_ETCD: ETCD,
    });
    children.push(child);
    return child;
  };

  const publisherApp = async (cluster: string, transport: "http" | "tcp" | "redis"): Promise<App> => {
    const app = createApp({
      cluster,
      discovery: `etcd://${ETCD}`,
      transports: { [transport]: factoryFor(transport) },
      logger: captureLog().log,
    }).serve(Conformance, new ConformanceService());
    apps.push(app);
    await app.start();
    return app;
  };

  it("with only http, the subscriber's start, a client's subscribe and the publisher's emit fail saying why", async () => {
    const cluster = uniqueCluster("ev-http");
    const child = subscriber(cluster, "http");
    const failed = await child.next(["start failed", "ready"]);
    expect(failed).toMatchObject({ event: "start failed", code: "FAILED_PRECONDITION" });
    expect(failed.message).toContain(
      "no configured transport can carry events of fan.conformance.Conformance between processes",
    );
    expect(failed.message).toContain("this app has http");
    expect(failed.message).toContain(
      "fan.conformance.ListenerA subscribes to fan.conformance.Conformance.ping, fan.conformance.Conformance.flush",
    );

    const app = await publisherApp(cluster, "http");
    const emitted = await app
      .publisher(Conformance)
      .emit("ping", { n: 1 })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(FanError.is(emitted) && emitted.code).toBe("FAILED_PRECONDITION");
    expect((emitted as Error).message).toContain("between processes");
    await expect(app.client(Conformance).events.ping.subscribe(() => undefined)).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
    });
  });

  it("with only tcp, the subscriber's start and the publisher's emit fail the same way, naming tcp", async () => {
    const cluster = uniqueCluster("tcp9-ev");
    const child = subscriber(cluster, "tcp");
    const failed = await child.next(["start failed", "ready"]);
    expect(failed).toMatchObject({ event: "start failed", code: "FAILED_PRECONDITION" });
    expect(failed.message).toContain("no configured transport can carry events of fan.conformance.Conformance");
    expect(failed.message).toContain("this app has tcp");
    const app = await publisherApp(cluster, "tcp");
    await expect(app.publisher(Conformance).emit("ping", { n: 1 })).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
    });
  });

  const withRedis = up.redis || process.env.FAN_REQUIRE_BROKERS === "1" ? it : it.skip;
  withRedis("with redis as well, the same subscriber in another process gets the event", async () => {
    const cluster = uniqueCluster("ev-redis");
    const child = subscriber(cluster, "http,redis");
    await child.next("ready");
    const app = await publisherApp(cluster, "redis");
    await app.publisher(Conformance).emit("ping", { n: 42 });
    expect(await child.next("ping")).toMatchObject({ n: 42 });
  });

  /** Conformance (it emits ping and flush) served in a process of its own, its warnings printed. */
  const publisherChild = async (cluster: string, transports: string): Promise<Record<string, unknown>[]> => {
    const child = childApp({
      FAN_CHILD_TRANSPORTS: transports,
      FAN_CHILD_CLUSTER: cluster,
      FAN_CHILD_SERVE: "Conformance",
      FAN_CHILD_LOG: "warn",
      FAN_ETCD: ETCD,
    });
    children.push(child);
    await child.next("ready");
    return child.events.filter((e) => e.event === "log" && String(e.msg).includes(" emits "));
  };

  it("a publisher on tcp and http starts with a warning naming its events and what would carry them", async () => {
    const warned = await publisherChild(uniqueCluster("ev-warn"), "tcp,http");
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: "warn" });
    const msg = String(warned[0]?.msg);
    expect(msg).toContain("fan.conformance.Conformance emits ping, flush, but no configured transport can carry");
    expect(msg).toContain("events travel on amqp, redis, nats, zmq; this app has tcp, http");
    expect(msg).toContain("createApp({ transports }) or FAN_TRANSPORTS");
    expect(msg).toContain("every emit of them fails with FAILED_PRECONDITION");
  });

  it("a publisher on zmq without an event hub is told about the hub and FAN_ZMQ_EVENTS_*", async () => {
    const warned = await publisherChild(uniqueCluster("ev-warnz"), "zmq");
    expect(String(warned[0]?.msg)).toContain(
      "zmq only with an event hub: its `events` or `hub` option, or FAN_ZMQ_EVENTS_PUBLISH and FAN_ZMQ_EVENTS_SUBSCRIBE",
    );
  });

  withRedis("a publisher with redis as well starts without that warning", async () => {
    expect(await publisherChild(uniqueCluster("ev-nowarn"), "tcp,redis")).toEqual([]);
  });

  /** A publisher App configured with options objects, as a user writes them (not test factories). */
  const configured = async (cluster: string, transports: Record<string, object>): Promise<App> => {
    const app = createApp({ cluster, discovery: `etcd://${ETCD}`, transports, logger: captureLog().log }).serve(
      Conformance,
      new ConformanceService(),
    );
    apps.push(app);
    await app.start();
    return app;
  };

  it("zmq without an event hub carries no events: emit fails naming the hub it lacks", async () => {
    const app = await configured(uniqueCluster("ev-zmq0"), { zmq: {} });
    await expect(app.publisher(Conformance).emit("ping", { n: 1 })).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
      message: expect.stringContaining("zmq only with an event hub"),
    });
  });

  withRedis("zmq without a hub and redis: events go on redis, and another process gets them", async () => {
    const cluster = uniqueCluster("ev-zmqr");
    const child = subscriber(cluster, "http,redis");
    await child.next("ready");
    const app = await configured(cluster, {
      zmq: {},
      redis: { url: process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379" },
    });
    await app.publisher(Conformance).emit("ping", { n: 43 });
    expect(await child.next("ping")).toMatchObject({ n: 43 });
  });
});
