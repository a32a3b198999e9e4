/**
 * A client's subscription on nats (`client.events.x.subscribe`, a state view, `fanc subscribe`:
 * `ephemeral`) is nobody else's: its JetStream consumer expires when its process is gone
 * (inactive_threshold) and closing deletes it, as a broadcast's. A durable one left behind would
 * hold every event of the stream (Interest retention) for a reader that never comes back.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { eventStream, subscriptionConsumer } from "../../src/runtime/transports/nats/names.js";
import type { EventSubscription } from "../../src/runtime/transports/transport.js";
import { describeWithBroker } from "./amqp-broker.js";
import { ConformanceDescriptor } from "./fixtures/generated/fan/conformance.js";
import { captureLog } from "./fixtures/log.js";
import { deleteStreams, NATS_URL, natsUp, withNats } from "./nats-server.js";

const cluster = `eph-${process.pid}-${shortId()}`;
const ctx = { cluster, log: captureLog().log, maxPayloadBytes: 1 << 20 };

describeWithBroker(await natsUp(), "NATS", "nats ephemeral")("nats: a client's subscription", () => {
  afterAll(async () => {
    await deleteStreams(eventStream(cluster, ConformanceDescriptor.name).name).catch(() => undefined);
  });

  it("has an inactive_threshold while open and is deleted on close", async () => {
    const t = natsTransport({ url: NATS_URL })(ctx);
    const id = `client-${shortId()}`;
    const sub: EventSubscription = { source: ConformanceDescriptor, event: "ping", group: id, instanceId: id, broadcast: false, ephemeral: true };
    const stream = eventStream(cluster, ConformanceDescriptor.name).name;
    const name = subscriptionConsumer(sub);
    const info = () => withNats(async (nc) => (await jetstreamManager(nc)).consumers.info(stream, name).catch(() => undefined));
    try {
      const u = await t.subscribe(sub, async () => undefined);
      const open = await info();
      expect(open?.config.inactive_threshold).toBeGreaterThan(0);
      await u.close();
      expect(await info()).toBeUndefined();
    } finally {
      await t.close();
    }
  }, 60_000);
});
