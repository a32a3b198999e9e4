/**
 * nats work consumers acknowledge the messages whose handlers settled in one turn together, at
 * the turn's end (work.ts `#ack`): one socket write for many acks instead of one each. What must
 * hold: every handled message is acknowledged (none left pending to come back after its ack
 * wait, none redelivered), also when the subscription closes right after its handlers settled.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { eventStream, subscriptionConsumer } from "../../src/runtime/transports/nats/names.js";
import type { EventSubscription } from "../../src/runtime/transports/transport.js";
import { describeWithBroker } from "./amqp-broker.js";
import { envelope, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/generated/fan/conformance.js";
import { captureLog } from "./fixtures/log.js";
import { deleteStreams, NATS_URL, natsUp, withNats } from "./nats-server.js";

const cluster = `acks-${process.pid}-${shortId()}`;
const ctx = { cluster, log: captureLog().log, maxPayloadBytes: 1 << 20 };

describeWithBroker(
  await natsUp(),
  "NATS",
  "nats acks",
)("nats: acknowledgements of a burst", () => {
  afterAll(async () => {
    await deleteStreams(eventStream(cluster, ConformanceDescriptor.name).name).catch(() => undefined);
  });

  it("acknowledges every event of a burst once, also when the subscription closes right after", async () => {
    const sub: EventSubscription = {
      source: ConformanceDescriptor,
      event: "ping",
      group: "svc.acks",
      instanceId: `i-${shortId()}`,
      broadcast: false,
    };
    const stream = eventStream(cluster, ConformanceDescriptor.name).name;
    const info = () =>
      withNats(async (nc) => (await jetstreamManager(nc)).consumers.info(stream, subscriptionConsumer(sub)));
    // The server applies acks to the consumer's state asynchronously: poll until none is pending.
    const allAcked = () =>
      until(async () => {
        const c = await info();
        return c.num_ack_pending === 0 && c.ack_floor.consumer_seq === c.delivered.consumer_seq;
      }, 10_000);
    const subscriber = natsTransport({ url: NATS_URL })(ctx);
    const publisher = natsTransport({ url: NATS_URL })(ctx);
    const got: number[] = [];
    try {
      const u = await subscriber.subscribe(sub, async (env) => {
        // Settle over a few microtask rounds, as handlers that await something do.
        await Promise.resolve();
        got.push((env.payload as { n: number }).n);
      });
      const burst = async (from: number, count: number) => {
        await Promise.all(
          Array.from({ length: count }, (_, i) =>
            publisher.publish({ ...envelope("ping", { n: from + i }), kind: "event" }, within(10_000)),
          ),
        );
      };
      await burst(0, 300);
      await until(() => got.length === 300, 15_000);
      await allAcked();
      const settled = await info();
      expect(settled.delivered.stream_seq).toBe(300);
      expect(settled.num_redelivered).toBe(0);

      // A close right after the handlers settled: acks still waiting for their turn's end go out first.
      await burst(300, 200);
      await until(() => got.length === 500, 15_000);
      await u.close();
      await allAcked();
      const closed = await info();
      expect(closed.delivered.stream_seq).toBe(500);
      expect(closed.num_redelivered).toBe(0);
      expect([...got].sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_, i) => i));
    } finally {
      await Promise.all([subscriber.close(), publisher.close()]);
    }
  }, 60_000);
});
