/**
 * nats between processes: calls spread over the instances of a version in separate processes
 * (one queue group), the pushes a SIGKILLed consumer held go to another instance after the ack
 * wait, and garbage published on the transport's JetStream subjects (push and event) is
 * dead-lettered with a warn line while the server keeps serving; only services with push members
 * leave a stream behind; a redelivery after a push's `@ttl` is dropped and counted.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { afterEach, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import {
  deadLetterStream,
  deadLetterSubject,
  eventSubject,
  PUSH_CONSUMER,
  parseEndpoint,
  pushStream,
  pushSubject,
  subscriptionConsumer,
  eventStream,
} from "../../src/runtime/transports/nats/names.js";
import type { Transport } from "../../src/runtime/transports/transport.js";
import { CatalogImpl, catalogConfig } from "../runtime/fixtures/impl.js";
import { Catalog } from "../runtime/fixtures/shop.js";
import { describeWithBroker } from "./amqp-broker.js";
import { envelope, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { type Peer, startPeer } from "./fixtures/peers.js";
import { deleteStreams, NATS_URL, natsUp, publishRaw, readStream, withNats } from "./nats-server.js";
import { up } from "./processes.js";

const ETCD = "etcd://127.0.0.1:2379";
const natsIsUp = await natsUp();

describeWithBroker(
  natsIsUp && up.etcd,
  "NATS and etcd",
  "nats processes",
)("nats between processes", () => {
  const peers: Peer[] = [];
  const apps: App[] = [];
  const clusters: string[] = [];
  afterEach(async () => {
    await Promise.allSettled(peers.splice(0).map((p) => p.kill()));
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
    for (const c of clusters.splice(0)) await deleteStreams(`fan_${c}`);
  });

  const clientApp = async (cluster: string): Promise<App> => {
    const app = createApp({
      cluster,
      discovery: ETCD,
      logger: captureLog().log,
      transports: { nats: natsTransport({ url: NATS_URL }) },
    });
    apps.push(app);
    await app.start();
    return app;
  };

  it("calls are shared by the instances of a version in two processes (one queue group)", async () => {
    const cluster = `natsp-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const env = { TRANSPORT: "nats", CLUSTER: cluster, TRANSPORT_OPTIONS: JSON.stringify({ url: NATS_URL }) };
    peers.push(await startPeer(env), await startPeer(env));
    const app = await clientApp(cluster);
    const set = await app.watch(Conformance.descriptor.name);
    await until(() => set.instances().length === 2, 20_000);
    const client = app.client(Conformance, { transport: "nats" });
    const replies = await Promise.all(Array.from({ length: 200 }, (_, n) => client.echo({ n }, { timeout: 10_000 })));
    const pids = new Set(replies.map((r) => r.text));
    expect(replies.map((r) => r.n)).toEqual(Array.from({ length: 200 }, (_, n) => n));
    expect(pids.size).toBe(2);
  }, 120_000);

  it("the pushes a SIGKILLed consumer held go to another instance after the ack wait", async () => {
    const cluster = `natsp-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const options = JSON.stringify({ url: NATS_URL, ackWaitMs: 3000 });
    const env = { TRANSPORT: "nats", CLUSTER: cluster, TRANSPORT_OPTIONS: options, LEASE_TTL_MS: "3000" };
    const stuck = await startPeer({ ...env, PUSH_MS: "600000" });
    peers.push(stuck);
    const app = await clientApp(cluster);
    const client = app.client(Conformance, { transport: "nats" });
    const ids = ["d1", "d2", "d3", "d4", "d5"];
    for (const id of ids) await client.record({ id }, { timeout: 20_000 });
    for (const id of ids) await stuck.waitFor((l) => l.received === id, 20_000);

    await stuck.kill();
    const killedAt = Date.now();
    const healthy = await startPeer(env);
    peers.push(healthy);
    for (const id of ids) await healthy.waitFor((l) => l.push === id, 60_000);
    const after = Date.now() - killedAt;
    console.log(`nats: pushes of a SIGKILLed consumer redelivered ${after} ms after the kill (ack wait 3 s)`);
    expect(after).toBeLessThan(30_000);
    const attempts = healthy.lines.filter((l) => typeof l.push === "string").map((l) => l.attempt as number);
    expect(attempts.every((a) => a >= 2)).toBe(true);
  }, 180_000);
});

describeWithBroker(
  natsIsUp,
  "NATS",
  "nats garbage",
)("garbage on the nats JetStream subjects", () => {
  const cluster = `conf-nats-${process.pid}-g${shortId()}`;
  const sides: Transport[] = [];
  afterEach(async () => {
    await Promise.all(sides.splice(0).map((t) => t.close()));
    await deleteStreams(`fan_${cluster}`);
  });
  const side = () => {
    const log = captureLog();
    const t = natsTransport({ url: NATS_URL, retryDelayMs: 20 })({ cluster, log: log.log, maxPayloadBytes: 1 << 20 });
    sides.push(t);
    return { t, log };
  };
  const warned = (log: ReturnType<typeof captureLog>, text: string) =>
    log.records().some((r) => r.level >= 40 && JSON.stringify(r).includes(text));

  it("a malformed push is dead-lettered with a warn line; the next push is handled", async () => {
    const server = side();
    const client = side();
    const inbound = new TestInbound();
    const { endpoint } = await server.t.serve(ConformanceDescriptor, "g1", inbound);
    const addr = parseEndpoint(endpoint);
    await publishRaw(pushSubject(addr), Uint8Array.from([0x00, 0xff, 0x13, 0x37]));
    await publishRaw(pushSubject(addr), '{"v":1,"id":"x","kind":"push","service":"s","method":"m","headers":{},"payload":{"__proto__":{}}}');
    await until(() => warned(server.log, "undecodable nats message dead-lettered"));
    await client.t.push(endpoint, envelope("record", { id: "after-garbage" }), within(5000));
    await until(() => inbound.delivered("after-garbage").length === 1);
    const dead = await readStream(
      deadLetterStream(cluster).name,
      deadLetterSubject(cluster, pushStream(addr).name, PUSH_CONSUMER),
    );
    expect(dead.length).toBe(2);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("a malformed event is dead-lettered with a warn line; the next event is delivered", async () => {
    const sub = side();
    const pub = side();
    const got: number[] = [];
    const s = { source: ConformanceDescriptor, event: "ping", group: "svc.A", instanceId: "a1", broadcast: false };
    await sub.t.subscribe(s, async (env) => void got.push((env.payload as { n: number }).n));
    await publishRaw(eventSubject(cluster, ConformanceDescriptor.name, "ping"), "not json at all");
    await until(() => warned(sub.log, "undecodable nats message dead-lettered"));
    await pub.t.publish({ ...envelope("ping", { n: 7 }), kind: "event" }, within(5000));
    await until(() => got.includes(7));
    const dead = await readStream(
      deadLetterStream(cluster).name,
      deadLetterSubject(cluster, eventStream(cluster, ConformanceDescriptor.name).name, subscriptionConsumer(s)),
    );
    expect(dead.length).toBe(1);
  });
});

describeWithBroker(
  natsIsUp,
  "NATS",
  "nats leftovers",
)("what a served service leaves on the nats server", () => {
  const cluster = `conf-nats-${process.pid}-l${shortId()}`;
  afterEach(async () => {
    await deleteStreams(`fan_${cluster}`);
  });

  it("a service without push members declares no stream; one with pushes gets its work-queue stream", async () => {
    const t = natsTransport({ url: NATS_URL })({ cluster, log: captureLog().log, maxPayloadBytes: 1 << 20 });
    const listener = { ...ConformanceDescriptor, name: "fan.conformance.NoPushes", methods: {} };
    await (await t.serve(listener, "n1", new TestInbound())).stop();
    expect(await streamsOf(cluster)).toEqual([]);
    await (await t.serve(ConformanceDescriptor, "p1", new TestInbound())).stop();
    const addr = { cluster, service: ConformanceDescriptor.name, version: ConformanceDescriptor.version };
    expect(await streamsOf(cluster)).toEqual([pushStream(addr).name]);
    await t.close();
  });
});

async function streamsOf(cluster: string): Promise<string[]> {
  return withNats(async (nc) => {
    const names: string[] = [];
    for await (const n of (await jetstreamManager(nc)).streams.names()) if (n.startsWith(`fan_${cluster}_`)) names.push(n);
    return names.sort();
  });
}

describeWithBroker(
  natsIsUp,
  "NATS",
  "nats push ttl",
)("push @ttl over nats", () => {
  const cluster = `conf-nats-${process.pid}-t${shortId()}`;
  afterEach(async () => {
    await deleteStreams(`fan_${cluster}`);
  });

  it("a redelivery after the push's @ttl is dropped by the App and counted, not handled", async () => {
    const catalog = new CatalogImpl();
    catalog.failPushes = 1;
    // The first delivery fails; the redelivery comes 300 ms later, after the 100 ms TTL.
    const app = createApp({
      cluster,
      discovery: "memory",
      logger: captureLog().log,
      transports: { nats: natsTransport({ url: NATS_URL, retryDelayMs: 300 }) },
    }).serve(Catalog, catalog, { config: catalogConfig, transports: ["nats"] });
    await app.start();
    try {
      await app.client(Catalog, { transport: "nats" }).invalidate({ id: "t1" });
      await until(() => app.counters.pushesExpired === 1, 5000);
      expect(catalog.pushes).toEqual([{ id: "t1", attempt: 1 }]);
    } finally {
      await app.stop();
    }
  });
});
