/**
 * Pushes made while no instance of their service is registered (call/parked.ts): over amqp,
 * redis and nats they wait in the service's queue and reach the first instance that starts, in
 * another process; the producer's log says where they wait. A push that cannot know its queue
 * (two broker transports, no pin), or whose queue the broker does not have, is refused saying so
 * and marked not delivered; an rpc with no instance is refused as before.
 */
import semver from "semver";
import { afterEach, describe, expect, it } from "vitest";
import { mayPark, parkingMajor } from "../../src/runtime/call/parked.js";
import type { InstanceInfo } from "../../src/runtime/discovery/types.js";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { FanError } from "../../src/runtime/errors.js";
import { shortId } from "../../src/runtime/ids.js";
import { AMQP_URL, deleteByPrefix, describeWithBroker, reachable } from "./amqp-broker.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { ConformanceService } from "./fixtures/handlers.js";
import { captureLog } from "./fixtures/log.js";
import { type Peer, startPeer } from "./fixtures/peers.js";
import { deleteStreams, NATS_URL, natsUp } from "./nats-server.js";
import { deleteKeys, REDIS_URL } from "./redis-server.js";

const ETCD = "etcd://127.0.0.1:2379";
const brokers = {
  amqp: { url: AMQP_URL },
  redis: { url: REDIS_URL },
  nats: { url: NATS_URL },
} as const;
type Broker = keyof typeof brokers;
const up =
  (await reachable("127.0.0.1", 5672)) &&
  (await reachable("127.0.0.1", 6379)) &&
  (await natsUp()) &&
  (await reachable("127.0.0.1", 2379));

describeWithBroker(
  up,
  "RabbitMQ, Redis, NATS and etcd",
  "parked pushes",
)("pushes while no instance is registered (processes, etcd)", () => {
  const apps: App[] = [];
  const peers: Peer[] = [];
  const clusters: string[] = [];
  afterEach(async () => {
    await Promise.allSettled(peers.splice(0).map((p) => p.kill()));
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
    for (const c of clusters.splice(0)) {
      await deleteByPrefix(`fan.${c}`).catch(() => undefined);
      await deleteKeys(`fan.${c}.*`).catch(() => undefined);
      await deleteStreams(`fan_${c}`).catch(() => undefined);
    }
  });

  const app = (cluster: string, transports: Partial<Record<Broker, object>>, log = captureLog()): App => {
    const a = createApp({ cluster, discovery: ETCD, logger: log.log, transports });
    apps.push(a);
    return a;
  };

  for (const broker of ["amqp", "redis", "nats"] as const) {
    it(`${broker}: pushes wait in the service's queue and reach the first instance that starts, in another process`, async () => {
      const cluster = `parked-${broker}-${process.pid}-${shortId()}`;
      clusters.push(cluster);
      // The service ran once and stopped (deregistered): its queue exists, no instance is registered.
      const first = app(cluster, { [broker]: brokers[broker] }).serve(Conformance, new ConformanceService(), {
        transports: [broker],
      });
      await first.start();
      await first.stop();

      const log = captureLog();
      const producer = app(cluster, { [broker]: brokers[broker] }, log);
      await producer.start();
      // redis unpinned: the App's only broker transport is the queue (amqp and nats pinned).
      const client = producer.client(Conformance, broker === "redis" ? {} : { transport: broker });
      const ids = ["p1", "p2", "p3", "p4", "p5"];
      for (const id of ids) await client.record({ id }, { timeout: 10_000 });
      // Said once (a minute per service), naming where they wait.
      const said = log.find("its pushes go to its");
      expect(said).toHaveLength(1);
      expect(said[0]).toMatchObject({ level: 40, service: Conformance.descriptor.name, transport: broker });

      const consumer = await startPeer({
        TRANSPORT: broker,
        CLUSTER: cluster,
        TRANSPORT_OPTIONS: JSON.stringify(brokers[broker]),
      });
      peers.push(consumer);
      for (const id of ids) await consumer.waitFor((l) => l.push === id, 30_000);
      // An rpc is never parked: it needs an answer now (the consumer serves it, so it gets one).
      expect((await client.echo({ n: 3 }, { timeout: 10_000 })).n).toBe(3);
    }, 120_000);
  }

  it("a push that cannot know its queue (two broker transports, no pin) is refused saying how to name one", async () => {
    const cluster = `parked-two-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const producer = app(cluster, { redis: brokers.redis, nats: brokers.nats });
    await producer.start();
    const e = (await producer
      .client(Conformance)
      .record({ id: "x" }, { timeout: 3000 })
      .catch((x: unknown) => x)) as FanError;
    expect(e).toBeInstanceOf(FanError);
    expect(e.code).toBe("UNAVAILABLE");
    expect(e.message).toContain("no instance is registered");
    expect(e.message).toContain("{ transport }");
    expect((e.details as { maybeDelivered?: boolean }).maybeDelivered).toBe(false);
    // Pinned, it waits in that queue.
    await producer.client(Conformance, { transport: "redis" }).record({ id: "y" }, { timeout: 3000 });
  });

  it("an instance registered but out of the client's reach (it serves http only) is a refusal, not a parked push", async () => {
    const cluster = `parked-http-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    // In another process: an App of this process would share its in-process hub with the producer.
    peers.push(await startPeer({ TRANSPORT: "http", CLUSTER: cluster }));
    const producer = app(cluster, { redis: brokers.redis });
    await producer.start();
    const e = (await producer
      .client(Conformance)
      .record({ id: "h" }, { timeout: 3000 })
      .catch((x: unknown) => x)) as FanError;
    expect(e).toBeInstanceOf(FanError);
    expect(e.code).toBe("UNAVAILABLE");
    expect(e.message).toContain("no common transport");
  });

  it("amqp: a push to a service whose queue the broker does not have is refused, not delivered", async () => {
    const cluster = `parked-none-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const producer = app(cluster, { amqp: brokers.amqp });
    await producer.start();
    const client = producer.client(Conformance, { transport: "amqp" });
    const e = (await client.record({ id: "z" }, { timeout: 5000 }).catch((x: unknown) => x)) as FanError;
    expect(e).toBeInstanceOf(FanError);
    expect(e.code).toBe("UNAVAILABLE");
    expect((e.details as { maybeDelivered?: boolean }).maybeDelivered).toBe(false);
    // An rpc with no instance is refused at once, as before.
    const r = (await client.echo({ n: 1 }, { timeout: 3000 }).catch((x: unknown) => x)) as FanError;
    expect(r.code).toBe("UNAVAILABLE");
    expect(r.message).toContain("no instance is registered");
  });
});

describe("which major a push may wait in (parkingMajor), and whether it may now (mayPark)", () => {
  it("the client's range and the rule must admit every version of one major, and no other", () => {
    expect(parkingMajor(semverRange("1.x"), undefined, "1.2.0")).toBe(1);
    expect(parkingMajor(undefined, undefined, "2.4.0")).toBe(2);
    // Any instance of the major takes the push from the queue: a narrower range or pin would
    // have a 1.2 instance handle a push meant for 1.5 or later.
    expect(parkingMajor(semverRange("~1.5"), undefined, "1.5.0")).toBeUndefined();
    expect(parkingMajor(semverRange("1.x"), { pin: "1.5.0" }, "1.2.0")).toBeUndefined();
    expect(parkingMajor(semverRange("1.x"), { pin: "1.x" }, "1.2.0")).toBe(1);
    expect(parkingMajor(semverRange("1.x"), { pin: "2.x" }, "1.2.0")).toBeUndefined();
    expect(parkingMajor(semverRange("1.x"), { split: { "1.2.0": 50, "1.3.0": 50 } }, "1.2.0")).toBeUndefined();
    // Two majors: which contract would the push follow?
    expect(parkingMajor(semverRange("1.x || 2.x"), undefined, "1.2.0")).toBeUndefined();
    expect(parkingMajor(semverRange(">=1.0.0"), undefined, "1.2.0")).toBeUndefined();
    // Any version, however spelled: the generated code's major (mayPark says when).
    expect(parkingMajor(semverRange("x"), undefined, "2.4.0")).toBe(2);
    expect(parkingMajor(semverRange(">=0.0.0"), { pin: "2.x" }, "2.4.0")).toBe(2);
  });

  it("a registered instance the push could be meant for refuses it: its major's, or any for a client of any version (mayPark)", () => {
    const at = (version: string) => ({ version }) as InstanceInfo;
    expect(mayPark(semverRange("1.x"), 1, [at("2.0.0"), at("0.9.0")])).toBe(true);
    expect(mayPark(semverRange("1.x"), 1, [at("1.5.0-beta.1")])).toBe(false);
    expect(mayPark(undefined, 1, [])).toBe(true);
    expect(mayPark(undefined, 1, [at("2.0.0")])).toBe(false);
    expect(mayPark(semverRange("x"), 1, [at("2.0.0-beta.1")])).toBe(false);
  });
});

/** A range as the route keeps it (semver's form). */
function semverRange(r: string): string {
  return semver.validRange(r) as string;
}
