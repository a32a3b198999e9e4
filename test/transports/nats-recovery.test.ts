/**
 * nats: a push or event its consumers took too often and never acknowledged (they died holding
 * it) is dead-lettered with a warning, as on redis (redis-recovery.test.ts). A first instance
 * declares the stream and durable consumer and goes away; a ghost takes the message through
 * that consumer `maxDeliveries` times without acknowledging it, each time until its ack wait
 * ran out; the next instance gets it once more, over the limit, and dead-letters it unhandled.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, afterEach, expect, it } from "vitest";
import { decodeEnvelope } from "../../src/runtime/codec/wire.js";
import { shortId } from "../../src/runtime/ids.js";
import { natsTransport, type NatsTransportOptions } from "../../src/runtime/transports/nats/index.js";
import {
  deadLetterStream,
  deadLetterSubject,
  eventStream,
  formatEndpoint,
  PUSH_CONSUMER,
  pushStream,
  subscriptionConsumer,
  token,
} from "../../src/runtime/transports/nats/names.js";
import type { Envelope, EventSubscription, Transport } from "../../src/runtime/transports/transport.js";
import { describeWithBroker } from "./amqp-broker.js";
import { envelope, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { type CapturedLog, captureLog } from "./fixtures/log.js";
import { deleteStreams, NATS_URL, natsUp, readStream, withNats } from "./nats-server.js";

const run = `nrec-${process.pid}-${shortId()}`;
let cases = 0;

/** Deliveries before a message is dead-lettered. */
const LIMIT = 2;
/** Each delivery held at most 300 ms without an ack: a ghost uses them all up in well under a second. */
const FAST: NatsTransportOptions = { url: NATS_URL, maxDeliveries: LIMIT, ackWaitMs: 300, retryDelayMs: 20 };
const sides: Transport[] = [];

function make(cluster: string): { t: Transport; log: CapturedLog } {
  const log = captureLog();
  const t = natsTransport(FAST)({ cluster, log: log.log, maxPayloadBytes: 1 << 20 });
  sides.push(t);
  return { t, log };
}

/** Takes the message waiting on `stream`'s durable `consumer` `times` times and never acknowledges it. */
async function hold(stream: string, consumer: string, times: number): Promise<number> {
  return withNats(async (nc) => {
    const c = await jetstream(nc).consumers.get(stream, consumer);
    let seq = 0;
    for (let n = 1; n <= times; n++) {
      const m = await c.next({ expires: 5000 });
      expect(m?.info.deliveryCount, `the ghost's delivery ${n}`).toBe(n);
      seq = m?.seq ?? 0;
    }
    return seq;
  });
}

/** The `Fan-Reason` header of the last dead letter on `subject`. */
function reasonOf(cluster: string, subject: string): Promise<string | undefined> {
  return withNats(async (nc) => {
    const jsm = await jetstreamManager(nc);
    const m = await jsm.streams.getMessage(deadLetterStream(cluster).name, { last_by_subj: subject });
    return m?.header.get("Fan-Reason");
  });
}

/** Records the ids of the pushes handed to it. */
class SeenInbound extends TestInbound {
  readonly seen: string[] = [];
  override push(env: Envelope): Promise<void> {
    this.seen.push(env.id);
    return super.push(env);
  }
}

const address = (cluster: string) => ({
  cluster,
  service: ConformanceDescriptor.name,
  version: ConformanceDescriptor.version,
  instance: "i1",
});
const subscription: EventSubscription = {
  source: ConformanceDescriptor,
  event: "flush",
  group: "svc.ghosted",
  instanceId: "s1",
  broadcast: false,
};

/** One way a message reaches its handlers: a push through the service's work queue, or an event through a subscription. */
interface Path {
  readonly kind: "push" | "event";
  readonly stream: (cluster: string) => string;
  readonly consumer: string;
  readonly message: () => Envelope;
  /** Declares the stream and consumer, as every instance does, and reads them until `close`. */
  readonly read: (t: Transport, seen: string[]) => Promise<{ close(): Promise<void> }>;
  readonly send: (t: Transport, cluster: string, env: Envelope) => Promise<void>;
}

const paths: readonly Path[] = [
  {
    kind: "push",
    stream: (cluster) => pushStream(address(cluster)).name,
    consumer: PUSH_CONSUMER,
    message: () => envelope("record", { id: "cursed" }),
    read: async (t, seen) => {
      const inbound = new SeenInbound();
      const served = await t.serve(ConformanceDescriptor, "i1", inbound);
      return {
        close: async () => {
          await served.stop();
          seen.push(...inbound.seen);
        },
      };
    },
    send: (t, cluster, env) => t.push(formatEndpoint(address(cluster)), env, within(5000)),
  },
  {
    kind: "event",
    stream: (cluster) => eventStream(cluster, ConformanceDescriptor.name).name,
    consumer: subscriptionConsumer(subscription),
    message: () => ({ ...envelope("flush", { n: 1 }), kind: "event" }),
    read: (t, seen) => t.subscribe(subscription, async (env) => void seen.push(env.id)),
    send: (t, _cluster, env) => t.publish(env, within(5000)),
  },
];

describeWithBroker(
  await natsUp(),
  "NATS",
  "nats recovery",
)("nats: messages its consumers never acknowledged", () => {
  afterEach(async () => {
    await Promise.all(sides.splice(0).map((t) => t.close()));
  });
  afterAll(async () => {
    await deleteStreams(`fan_${token(run)}`);
  });

  for (const p of paths)
    it(`dead-letters, with a warning, ${p.kind === "push" ? "a push" : "an event"} its consumers took too often and never acknowledged`, async () => {
      const cluster = `${run}-${++cases}`;
      const stream = p.stream(cluster);
      // A first instance declares the stream and its durable consumer, then goes away.
      const first = make(cluster);
      await (await p.read(first.t, [])).close();
      await first.t.close();
      sides.splice(sides.indexOf(first.t), 1);
      const sender = make(cluster);
      const env = p.message();
      await p.send(sender.t, cluster, env);
      // Consumers that died holding it took it as often as it may be delivered.
      const seq = await hold(stream, p.consumer, LIMIT);

      const heir = make(cluster);
      const seen: string[] = [];
      const reading = await p.read(heir.t, seen);
      const subject = deadLetterSubject(cluster, stream, p.consumer);
      await until(async () => (await readStream(deadLetterStream(cluster).name, subject)).length === 1, 5000);
      const [dead] = await readStream(deadLetterStream(cluster).name, subject);
      expect(decodeEnvelope(dead as Uint8Array, { maxBytes: 1 << 20 }).id).toBe(env.id);
      expect(await reasonOf(cluster, subject)).toBe(`not acknowledged after ${LIMIT} deliveries`);
      const warned = heir.log.find("(its consumers went away holding it); dead-lettered");
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatchObject({ level: 40, transport: "nats", stream, seq, deliveries: LIMIT });
      // It names the message, as every dead-letter line does (docs/runtime.md, "Logging").
      expect(warned[0]).toMatchObject(
        p.kind === "push"
          ? { targetService: ConformanceDescriptor.name, targetMethod: "record" }
          : { targetService: ConformanceDescriptor.name, event: "flush" },
      );
      await reading.close();
      expect(seen, "the heir's handler never ran").toEqual([]);
      // Acknowledged once dead-lettered: no consumer gets it again.
      await until(() =>
        withNats(async (nc) => {
          const info = await (await jetstreamManager(nc)).consumers.info(stream, p.consumer);
          return info.num_ack_pending + info.num_pending === 0;
        }),
      );
    });
});
