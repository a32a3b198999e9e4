/**
 * amqp between processes: what the callers of a server SIGKILLed mid-call get. The broker puts
 * the requests the dead connection held back on the request queue, marked redelivered: another
 * instance of the version answers them UNAVAILABLE at once (the methods are not `@idempotent`:
 * they are not run a second time); with no other instance they wait in the queue and the
 * callers get DEADLINE_EXCEEDED at their deadline, as on nats and redis.
 */
import { afterEach, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import type { FanError } from "../../src/runtime/errors.js";
import { shortId } from "../../src/runtime/ids.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { AMQP_URL, deleteByPrefix, describeWithBroker } from "./amqp-broker.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { ConformanceService } from "./fixtures/handlers.js";
import { captureLog } from "./fixtures/log.js";
import { type Peer, startPeer } from "./fixtures/peers.js";
import { up } from "./processes.js";

const ETCD = "etcd://127.0.0.1:2379";

describeWithBroker(
  up.amqp && up.etcd,
  "RabbitMQ and etcd",
  "amqp processes",
)("amqp: a server SIGKILLed mid-call", () => {
  const peers: Peer[] = [];
  const apps: App[] = [];
  const clusters: string[] = [];
  afterEach(async () => {
    await Promise.allSettled(peers.splice(0).map((p) => p.kill()));
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
    for (const c of clusters.splice(0)) await deleteByPrefix(`fan.${c}`);
  });

  const newApp = (cluster: string): App => {
    const app = createApp({
      cluster,
      discovery: ETCD,
      logger: captureLog().log,
      transports: { amqp: amqpTransport({ url: AMQP_URL }) },
    });
    apps.push(app);
    return app;
  };

  /** A peer serving Conformance in `cluster`, five 20 s `sleep` calls running in it, and the outcome of each. */
  const callsRunningInPeer = async (cluster: string) => {
    clusters.push(cluster);
    const peer = await startPeer({
      TRANSPORT: "amqp",
      CLUSTER: cluster,
      TRANSPORT_OPTIONS: JSON.stringify({ url: AMQP_URL }),
    });
    peers.push(peer);
    const caller = newApp(cluster);
    await caller.start();
    const client = caller.client(Conformance, { transport: "amqp", policy: { breaker: false, retry: false } });
    const sentAt = Date.now();
    const outcomes = Array.from({ length: 5 }, (_, n) =>
      client.sleep({ ms: 20_000 }, { timeout: 4000, headers: { "x-call": `c${n}` } }).then(
        () => ({ code: "OK", message: "", at: Date.now() }),
        (e: FanError) => ({ code: e.code, message: e.message, at: Date.now() }),
      ),
    );
    await peer.waitFor(() => peer.lines.filter((l) => "sleeping" in l).length === 5, 10_000);
    return { peer, outcomes, sentAt };
  };

  it("another instance of the version answers the redelivered calls UNAVAILABLE at once, without running them", async () => {
    const cluster = `amqpp-${process.pid}-${shortId()}`;
    const { peer, outcomes } = await callsRunningInPeer(cluster);
    const other = new ConformanceService();
    await newApp(cluster)
      .serve(Conformance, other, { transports: ["amqp"] })
      .start();
    const killedAt = Date.now();
    await peer.kill();
    const done = await Promise.all(outcomes);
    for (const o of done) {
      expect(o.code).toBe("UNAVAILABLE");
      expect(o.message).toMatch(/server handling this call was lost/);
      expect(o.at - killedAt).toBeLessThan(2000);
    }
    expect(other.started).toEqual([]);
  }, 60_000);

  it("with no other instance the calls wait in the queue and end DEADLINE_EXCEEDED at their deadline", async () => {
    const cluster = `amqpp-${process.pid}-${shortId()}`;
    const { peer, outcomes, sentAt } = await callsRunningInPeer(cluster);
    await peer.kill();
    const done = await Promise.all(outcomes);
    for (const o of done) {
      expect(o.code).toBe("DEADLINE_EXCEEDED");
      expect(o.at - sentAt).toBeGreaterThanOrEqual(3900);
    }
  }, 60_000);
});
