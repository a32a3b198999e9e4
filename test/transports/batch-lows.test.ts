/**
 * Low-severity defects a reviewer found in the shared rpc batch core (transports/batching/),
 * each against a real broker:
 * - a frame call refused because its deadline passed before it started is counted in
 *   `app.counters.callsExpired` and names service.method, as the dispatcher's own refusal does
 *   (nats and amqp: the frame pump is shared);
 * - closing a nats server answers the calls still waiting for a turn UNAVAILABLE naming the
 *   service (retried elsewhere), not CANCELLED (which says the caller gave up).
 */
import { connect } from "@nats-io/transport-node";
import { expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { encodeEnvelopeText, decodeEnvelope } from "../../src/runtime/codec/wire.js";
import { FrameBuilder, readBatch } from "../../src/runtime/transports/batch-frame.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { rpcQueue } from "../../src/runtime/transports/amqp/names.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { rpcSubject } from "../../src/runtime/transports/nats/names.js";
import type { Envelope, Inbound, TransportFactory } from "../../src/runtime/transports/transport.js";
import { AMQP_URL, describeWithBroker, reachable, suiteTransports, withChannel } from "./amqp-broker.js";
import { envelope, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { ConformanceService } from "./fixtures/handlers.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { NATS_URL, natsUp } from "./nats-server.js";
import { uniqueCluster } from "./processes.js";

const amqpUrl = new URL(AMQP_URL);
const up = (await reachable(amqpUrl.hostname, Number(amqpUrl.port || 5672))) && (await natsUp());
const cluster = uniqueCluster("lows");
const SERVICE = ConformanceDescriptor.name;

/** The items of reply frames, by seq. */
function items(frames: readonly Uint8Array[]): Map<number, Envelope> {
  const out = new Map<number, Envelope>();
  for (const f of frames) readBatch(f, { item: (s, b) => out.set(s, decodeEnvelope(b, { maxBytes: 1 << 20 })) });
  return out;
}

/** A frame of `envs` (seq 1, 2, ...). */
function frameOf(envs: readonly Envelope[]): string {
  const f = new FrameBuilder();
  envs.forEach((e, i) => {
    const json = encodeEnvelopeText(e);
    f.add(i + 1, json, Buffer.byteLength(json));
  });
  return f.text;
}

/** Publishes a frame to the served version's rpc subject or queue as a client does; the items of its replies, once all came. */
async function sendFrame(
  transport: "nats" | "amqp",
  app: string,
  envs: readonly Envelope[],
): Promise<Map<number, Envelope>> {
  const addr = { cluster: app, service: SERVICE, version: ConformanceDescriptor.version, instance: "x" };
  const got: Uint8Array[] = [];
  if (transport === "nats") {
    const nc = await connect({ servers: NATS_URL });
    try {
      const inbox = `lows.${app}.reply`;
      nc.subscribe(inbox, {
        callback: (_e, m) => {
          got.push(m.data);
        },
      });
      await nc.flush();
      nc.publish(rpcSubject(addr), frameOf(envs), { reply: inbox });
      await until(() => items(got).size === envs.length);
    } finally {
      await nc.close();
    }
    return items(got);
  }
  await withChannel(async (ch) => {
    const { queue } = await ch.assertQueue("", { exclusive: true, autoDelete: true });
    await ch.consume(queue, (m) => m !== null && got.push(m.content), { noAck: true });
    ch.sendToQueue(rpcQueue(addr), Buffer.from(frameOf(envs)), { replyTo: queue, correlationId: "lows.1" });
    await until(() => items(got).size === envs.length);
  });
  return items(got);
}

describeWithBroker(
  up,
  "RabbitMQ and NATS",
  "batch core lows",
)("the shared rpc batch core, four low-severity fixes (real RabbitMQ and nats-server)", () => {
  suiteTransports(cluster); // deletes the amqp App's queues after the suite

  const factories: Record<"nats" | "amqp", TransportFactory> = {
    nats: natsTransport({ url: NATS_URL }),
    amqp: amqpTransport({ url: AMQP_URL }),
  };

  for (const name of ["nats", "amqp"] as const)
    it(`${name}: a frame call whose deadline passed before it started is counted and names service.method`, async () => {
      const own = `${cluster}-${name}`;
      const app: App = createApp({
        cluster: own,
        discovery: "memory",
        transports: { [name]: factories[name] },
        logger: captureLog().log,
      }).serve(Conformance, new ConformanceService(), { transports: [name] });
      await app.start();
      try {
        const late = envelope("echo", { n: 1 }, { deadline: Date.now() - 1000 });
        const fresh = envelope("echo", { n: 2 }, { deadline: Date.now() + 10_000 });
        const got = await sendFrame(name, own, [late, fresh]);
        expect(app.counters.callsExpired).toBe(1);
        expect(got.get(1)?.payload).toMatchObject({
          code: "DEADLINE_EXCEEDED",
          message: `deadline of ${SERVICE}.echo passed before the call started`,
        });
        expect(got.get(2)?.payload).toMatchObject({ n: 2 });
      } finally {
        await app.stop();
      }
    });

  it("closing a nats server answers the calls still waiting for a turn UNAVAILABLE, naming the service", async () => {
    const own = `${cluster}-close`;
    const log = captureLog().log;
    const closing = factories.nats({ cluster: own, log, maxPayloadBytes: 4 << 20 });
    const caller = factories.nats({ cluster: own, log, maxPayloadBytes: 4 << 20 });
    const seen = new TestInbound();
    let closed: Promise<void> | undefined;
    const slow: Inbound = {
      call: (env, signal) => {
        closed ??= closing.close();
        // A turn of the server's loop (32 calls) takes ~32 ms: most calls still wait for a turn
        // when close, after draining the subscriptions, aborts what is in flight.
        const end = Date.now() + 1;
        while (Date.now() < end);
        return seen.call(env, signal);
      },
      push: (env) => seen.push(env),
    };
    const at = (await closing.serve(ConformanceDescriptor, "c1", slow)).endpoint;
    try {
      const sent = Array.from({ length: 1000 }, () => envelope("sleep", { ms: 3000 }));
      const outcomes = sent.map((e) => caller.call(at, e, within(20_000)));
      await until(() => closed !== undefined);
      await closed;
      const got = await Promise.all(outcomes);
      const ran = new Set(seen.calls.map((c) => c.id));
      const waited = got.filter((_, i) => !ran.has((sent[i] as Envelope).id));
      expect(waited.length).toBeGreaterThan(0);
      for (const r of waited)
        expect(r.payload).toMatchObject({ code: "UNAVAILABLE", message: expect.stringContaining(SERVICE) });
    } finally {
      await caller.close();
    }
  }, 30_000);
});
