/**
 * Review 2 of the followed subscription (followed-events.ts `publishedOn`): with in-memory
 * discovery every App is in one process, and an App whose only network transport is zmq without
 * an event hub carries its events on local and registers no `events` (served.ts #eventsOn). The
 * subscriber guessed from the endpoints that it published on zmq (whatever its hub) and, while it
 * received every event over local, warned that it "does not receive" them and to add zmq, which it
 * had. Now a record without `events` publishes on local in one process, where every subscription
 * listens too, and zmq is never guessed. One process; the second case needs nats.
 */
import { afterEach, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { Conformance, ListenerA } from "./fixtures/generated/fan/conformance.js";
import { ConformanceService, Listener } from "./fixtures/handlers.js";
import { captureLog } from "./fixtures/log.js";
import { factoryFor, uniqueCluster, up } from "./processes.js";

const apps: App[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.stop();
});

const pinged = async (listener: Listener): Promise<void> => {
  for (let i = 0; i < 50 && listener.pings.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
};

it("a subscriber that gets a hubless zmq publisher's events over local does not warn that it does not", async () => {
  const cap = captureLog();
  const listener = new Listener();
  const app = createApp({
    cluster: uniqueCluster("follow-memory"),
    discovery: "memory",
    transports: { zmq: {} },
    logger: cap.log,
  })
    .serve(Conformance, new ConformanceService())
    .serve(ListenerA, listener);
  apps.push(app);
  await app.start();
  await app.publisher(Conformance).emit("ping", { n: 7 });
  await pinged(listener);
  expect(listener.pings).toEqual([7]); // delivered, over local
  expect(cap.find("does not receive").map((r) => r.msg)).toEqual([]);
});

it.skipIf(!up.nats)(
  "a subscriber on nats gets, over local, the events of a publisher in its process that has no event transport",
  async () => {
    const cluster = uniqueCluster("follow-memory-local");
    const cap = captureLog();
    const listener = new Listener();
    const sub = createApp({
      cluster,
      discovery: "memory",
      transports: { nats: factoryFor("nats") },
      logger: cap.log,
    }).serve(ListenerA, listener);
    apps.push(sub);
    await sub.start();
    const pub = createApp({ cluster, discovery: "memory", transports: { zmq: {} }, logger: captureLog().log }).serve(
      Conformance,
      new ConformanceService(),
    );
    apps.push(pub);
    await pub.start();
    await pub.publisher(Conformance).emit("ping", { n: 8 });
    await pinged(listener);
    expect(listener.pings).toEqual([8]);
    expect(cap.find("does not receive").map((r) => r.msg)).toEqual([]);
  },
);
