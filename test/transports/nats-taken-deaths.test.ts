/**
 * nats between processes: what the callers of a server SIGKILLed mid-call get when the calls
 * went to the version's subject (unsharded: NATS handed each to one member of the queue group,
 * and cannot tell the caller that member died). The server tells the caller which instance took
 * a call still running after `TAKEN_NOTICE_MS` (a taken notice on the caller's reply subjects);
 * the caller's instance watch then fails the call UNAVAILABLE, maybe delivered, once that
 * instance's discovery lease is gone: a call that may be retried (`{ retry }`) is retried and
 * answered by the instance still alive, the others fail saying the call may have run, instead of
 * both waiting out their deadline. A server stopped gracefully keeps its lease while it finishes
 * its calls: their callers get the replies. On the wire: only a call still running gets a notice,
 * and only a client whose reply subjects say it reads them (an older client gets none).
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { encodeEnvelopeText } from "../../src/runtime/codec/wire.js";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { parseEndpoint, rpcSubject } from "../../src/runtime/transports/nats/names.js";
import type { Transport } from "../../src/runtime/transports/transport.js";
import { describeWithBroker } from "./amqp-broker.js";
import { envelope } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { ConformanceService } from "./fixtures/handlers.js";
import { callNames, killAndSettle, outcomeOf, sleepCalls, Survivor } from "./fixtures/killed-mid-call.js";
import { captureLog } from "./fixtures/log.js";
import { startPeer } from "./fixtures/peers.js";
import { undoAfterEach } from "./fixtures/process-cleanup.js";
import { deleteStreams, NATS_URL } from "./nats-server.js";
import { up } from "./processes.js";

const ETCD = "etcd://127.0.0.1:2379";
/** The killed server's discovery lease: etcd expires it within about this after the kill. */
const LEASE_MS = 1000;
const TIMEOUT_MS = 15_000;

describeWithBroker(
  up.nats && up.etcd,
  "NATS and etcd",
  "nats processes",
)("nats: a server SIGKILLed while it runs unsharded calls", () => {
  const { peers, apps, clusters } = undoAfterEach((c) => deleteStreams(`fan_${c}`));

  const newApp = (cluster: string): App => {
    const app = createApp({
      cluster,
      discovery: ETCD,
      leaseTtlMs: LEASE_MS,
      logger: captureLog().log,
      transports: { nats: { url: NATS_URL } },
    });
    apps.push(app);
    return app;
  };

  /**
   * A peer serving Conformance (lease `LEASE_MS`), `count` 20 s `sleep` calls (with `retry`
   * attempts each) running in it, a second instance in this process started after it took them
   * all, and the calls' outcomes.
   */
  const callsRunningInPeer = async (retry: number | false, count: number) => {
    const cluster = `natsk-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const peer = await startPeer({
      TRANSPORT: "nats",
      CLUSTER: cluster,
      LEASE_TTL_MS: String(LEASE_MS),
      TRANSPORT_OPTIONS: JSON.stringify({ url: NATS_URL }),
    });
    peers.push(peer);
    const caller = newApp(cluster);
    await caller.start();
    const set = await caller.watch(Conformance.descriptor.name);
    const client = caller.client(Conformance, { transport: "nats", policy: { breaker: false } });
    const outcomes = sleepCalls(client, count, retry, TIMEOUT_MS);
    await peer.waitFor(() => peer.lines.filter((l) => "sleeping" in l).length === count, 10_000);
    const survivor = new Survivor();
    await newApp(cluster)
      .serve(Conformance, survivor, { transports: ["nats"] })
      .start();
    const deadline = Date.now() + 10_000;
    while (set.instances().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // Past the notice delay (100-200 ms of running), so the caller knows who took them.
    await new Promise((r) => setTimeout(r, 400));
    return { peer, outcomes, survivor };
  };

  it("a call that may be retried is answered by the instance still alive once the dead one's lease ended", async () => {
    // Sixteen: the dead instance's calls take one token of the retry budget between them (its
    // death is one event), where one each left four of them retried and then, with the floor of
    // retries a second, fourteen.
    const { peer, outcomes, survivor } = await callsRunningInPeer(2, 16);
    const { done, killedAt } = await killAndSettle(peer, outcomes);
    for (const o of done) {
      expect(o).toMatchObject({ code: "OK", message: "" });
      expect(o.at - killedAt).toBeLessThan(LEASE_MS + 2500);
    }
    expect(survivor.started.sort()).toEqual(callNames(16));
  }, 60_000);

  it("a call that may not be retried fails UNAVAILABLE, maybe delivered, within the lease, and does not run again", async () => {
    const { peer, outcomes, survivor } = await callsRunningInPeer(false, 5);
    const { done, killedAt } = await killAndSettle(peer, outcomes);
    for (const o of done) {
      expect(o.code).toBe("UNAVAILABLE");
      expect(o.message).toMatch(/is gone \(its registration's lease ended\) while the call was in flight/);
      expect(o.maybeDelivered).toBe(true);
      expect(o.at - killedAt).toBeLessThan(LEASE_MS + 2500);
    }
    const last = Math.max(...done.map((o) => o.at - killedAt));
    console.log(
      `nats: unsharded calls of a SIGKILLed server failed within ${last} ms of the kill (lease ${LEASE_MS} ms)`,
    );
    expect(survivor.started).toEqual([]);
  }, 60_000);

  it("a server stopping gracefully keeps its callers waiting for the calls it still runs", async () => {
    const cluster = `natsk-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const server = newApp(cluster).serve(Conformance, new ConformanceService(), { transports: ["nats"] });
    await server.start();
    const caller = newApp(cluster);
    await caller.start();
    const client = caller.client(Conformance, { transport: "nats", policy: { breaker: false } });
    // Noticed, and longer than the lease would live once the stop removed the record.
    const call = outcomeOf(client.sleep({ ms: LEASE_MS * 3 }, { timeout: TIMEOUT_MS, retry: false }));
    await new Promise((r) => setTimeout(r, 500));
    const stopped = server.stop();
    expect(await call).toMatchObject({ code: "OK" });
    await stopped;
  }, 60_000);
});

describeWithBroker(
  up.nats,
  "NATS",
  "nats taken notices",
)("nats taken notices on the wire", () => {
  const cluster = `natsn-${process.pid}-${shortId()}`;
  let server: Transport;
  let nc: NatsConnection;
  let subject = "";

  beforeAll(async () => {
    server = natsTransport({ url: NATS_URL })({ cluster, log: captureLog().log, maxPayloadBytes: 4 << 20 });
    subject = rpcSubject(parseEndpoint((await server.serve(ConformanceDescriptor, "w1", new TestInbound())).endpoint));
    nc = await connect({ servers: NATS_URL });
  });
  afterAll(async () => {
    await server.close();
    await nc.close();
  });

  /** What arrives on `client`'s reply subjects for a `%` frame of `calls` sent from it, within `ms`. */
  const framesTo = async (client: string, calls: ReturnType<typeof envelope>[], ms: number) => {
    const prefix = `fan.${cluster}.reply.${client}`;
    const got: { subject: string; text: string }[] = [];
    const sub = nc.subscribe(`${prefix}.*`, {
      callback: (_e, m) => void got.push({ subject: m.subject, text: m.string() }),
    });
    await nc.flush();
    const items = calls.map((c, n) => `${n + 1}\n${encodeEnvelopeText(c)}`).join("\n");
    nc.publish(subject, `%${items}`, { reply: `${prefix}.1` });
    await new Promise((r) => setTimeout(r, ms));
    sub.unsubscribe();
    return got;
  };

  it("a call still running is announced once to a client that reads notices, a quick one never", async () => {
    const got = await framesTo("t0123abcd", [envelope("sleep", { ms: 600 }), envelope("echo", { n: 1 })], 900);
    expect(got.map((g) => g.text.split("\n")[0])).toEqual(["#2", "#0", "#1"]);
    expect(got[1]).toEqual({ subject: `fan.${cluster}.reply.t0123abcd.0`, text: '#0\n@["w1",1]' });
  });

  it("a client from before notices (a bare hex id) gets none", async () => {
    const got = await framesTo("0123abcd", [envelope("sleep", { ms: 600 })], 900);
    expect(got.map((g) => g.text.split("\n")[0])).toEqual(["#1"]);
  });
});
