/**
 * Trial finding 1: a subscriber whose first event transport is not its publisher's. A ListenerA
 * started with amqp,nats subscribed on amqp only, its publisher (nats only) emitted on nats, and
 * the events never arrived, with no word from either process. A served subscription now follows
 * its publishers onto the transports discovery says they publish on (served.ts,
 * followed-events.ts; a client's `events.x.subscribe` too), and warns naming the service, the event and both transports when this
 * App has not got theirs. The subscriber runs in a process of its own (child-app.ts).
 */
import { afterEach, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { type ChildApp, childApp } from "./child.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { ConformanceService } from "./fixtures/handlers.js";
import { captureLog } from "./fixtures/log.js";
import { ETCD, factoryFor, forgetCluster, uniqueCluster, up } from "./processes.js";

const d =
  (up.etcd && up.amqp && up.nats && up.redis) || process.env.FAN_REQUIRE_BROKERS === "1" ? describe : describe.skip;

type Line = Record<string, unknown>;

d("a served subscription follows its publishers' event transport", () => {
  const children: ChildApp[] = [];
  const apps: App[] = [];
  const clusters: string[] = [];
  afterEach(async () => {
    for (const a of apps.splice(0)) await a.stop();
    for (const c of children.splice(0)) await c.stop();
    for (const c of clusters.splice(0)) await forgetCluster(c, ["amqp", "nats", "redis"]);
  });

  const cluster = (what: string): string => {
    const c = uniqueCluster(what);
    clusters.push(c);
    return c;
  };

  /** A ListenerA (it subscribes to Conformance.ping and the @broadcast flush) on amqp,nats, in a process of its own. */
  const subscriber = (c: string, log: "info" | "warn"): ChildApp => {
    const child = childApp({
      FAN_CHILD_TRANSPORTS: "amqp,nats",
      FAN_CHILD_CLUSTER: c,
      FAN_CHILD_SERVE: "ListenerA",
      FAN_CHILD_LOG: log,
      FAN_ETCD: ETCD,
    });
    children.push(child);
    return child;
  };

  /** The publisher, Conformance, served by an App in this process with one transport. */
  const publisher = async (c: string, transport: "nats" | "redis"): Promise<App> => {
    const app = createApp({
      cluster: c,
      discovery: `etcd://${ETCD}`,
      transports: { [transport]: factoryFor(transport) },
      logger: captureLog().log,
    }).serve(Conformance, new ConformanceService());
    apps.push(app);
    await app.start();
    return app;
  };

  /** The first line of `child` that `pred` accepts, failing after `ms`. */
  const line = async (child: ChildApp, pred: (l: Line) => boolean, what: string, ms = 15_000): Promise<Line> => {
    const until = Date.now() + ms;
    for (;;) {
      const hit = child.events.find(pred);
      if (hit !== undefined) return hit;
      if (Date.now() > until)
        throw new Error(`no ${what} from the child in ${ms} ms; it printed ${JSON.stringify(child.events)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const log =
    (level: string, ...words: string[]) =>
    (l: Line) =>
      l.event === "log" && l.level === level && words.every((w) => String(l.msg).includes(w));

  it("publisher on nats only, subscriber on amqp,nats: its events and @broadcast events arrive", async () => {
    const c = cluster("follow-nats");
    const app = await publisher(c, "nats");
    const child = subscriber(c, "warn");
    await child.next("ready");
    await app.publisher(Conformance).emit("ping", { n: 1 });
    await app.publisher(Conformance).emit("flush", { n: 2 });
    expect(await child.next("ping", 10_000)).toMatchObject({ n: 1 });
    expect(await child.next("flush", 10_000)).toMatchObject({ n: 2 });
    expect(child.events.filter((l) => l.event === "log")).toEqual([]);
  });

  it("a client's events.ping.subscribe in an App on amqp,nats gets a nats-only publisher's events", async () => {
    const c = cluster("follow-client");
    const app = await publisher(c, "nats");
    const child = childApp({
      FAN_CHILD_TRANSPORTS: "amqp,nats",
      FAN_CHILD_CLUSTER: c,
      FAN_CHILD_SERVE: "none",
      FAN_ETCD: ETCD,
    });
    children.push(child);
    await child.next("subscribed");
    await app.publisher(Conformance).emit("ping", { n: 5 });
    expect(await child.next("ping", 10_000)).toMatchObject({ n: 5 });
  });

  it("a publisher on nats that starts after the subscriber is followed there too", async () => {
    const c = cluster("follow-late");
    const child = subscriber(c, "info");
    await child.next("ready");
    const app = await publisher(c, "nats");
    const followed = await line(
      child,
      log("info", "subscribed to fan.conformance.Conformance.ping on nats as well"),
      "subscription on nats",
    );
    expect(followed.msg).toContain("instances of fan.conformance.Conformance publish it there (Conformance-");
    await line(child, log("info", "Conformance.flush on nats as well"), "flush subscription on nats");
    await app.publisher(Conformance).emit("ping", { n: 3 });
    await app.publisher(Conformance).emit("flush", { n: 4 });
    expect(await child.next("ping", 10_000)).toMatchObject({ n: 3 });
    expect(await child.next("flush", 10_000)).toMatchObject({ n: 4 });
  });

  it("publisher on redis only, subscriber on amqp,nats: a warning names the service, the event and both transports", async () => {
    const c = cluster("follow-redis");
    // Discovered after the subscriber started ...
    const before = subscriber(c, "warn");
    await before.next("ready");
    await publisher(c, "redis");
    const later = await line(before, log("warn", "Conformance.ping"), "warning on the publisher's arrival");
    // ... and already registered when it starts.
    const after = subscriber(c, "warn");
    await after.next("ready");
    const atStart = await line(after, log("warn", "Conformance.ping"), "warning at start");
    for (const w of [later, atStart]) {
      expect(w.msg).toMatch(
        /^fan\.conformance\.ListenerA does not receive fan\.conformance\.Conformance\.ping from instances that publish it on redis \(Conformance-[^)]+@1\.0\.0\): this app has no redis transport \(its event transports: amqp, nats; it subscribes on amqp\); add redis to its transports/,
      );
    }
    await line(after, log("warn", "Conformance.flush", "on redis"), "warning for the @broadcast event");
  });
});
