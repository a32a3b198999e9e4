/**
 * nats rpc batching when the connection drops (a private nats-server, killed): calls queued for
 * this tick's batch frame, not yet handed to the socket, fail at once with UNAVAILABLE marked
 * not delivered (so failover may send them anywhere) instead of waiting for their deadline.
 *
 * The calls have to be queued in the window between the socket closing and the transport
 * learning of it: they are made in a reaction to nats.js's transport `closed()` promise, which
 * runs before the status event that tells the transport (both come from the same close; the
 * transport's reaction is queued after ours). The test checks that the transport still thought
 * the connection up when the calls were made, so it cannot pass through the "link down" path.
 */
import { expect, it } from "vitest";
import { Code, FanError } from "../../src/runtime/errors.js";
import { isNotDelivered } from "../../src/runtime/transports/not-delivered.js";
import { type NatsTransport, natsTransport } from "../../src/runtime/transports/nats/index.js";
import type { Envelope } from "../../src/runtime/transports/transport.js";
import { describeWithBroker } from "./amqp-broker.js";
import { envelope, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { natsServerAvailable, suiteNats } from "./nats-server.js";

const possible = await natsServerAvailable();

describeWithBroker(
  possible,
  "a private nats-server",
  "nats batch disconnect",
)("nats rpc calls queued in a batch frame when the connection drops (private nats-server)", () => {
  const nats = suiteNats();

  it("fails the queued calls at once as not delivered, long before their deadline", async () => {
    const make = natsTransport({ url: nats.url });
    const cluster = `batch-drop-${process.pid}`;
    const server = make({ cluster, log: captureLog().log, maxPayloadBytes: 1 << 20 });
    const client = make({ cluster, log: captureLog().log, maxPayloadBytes: 1 << 20 }) as NatsTransport;
    try {
      const { endpoint } = await server.serve(ConformanceDescriptor, "d1", new TestInbound());
      // Warm: the rpc client exists and listens for the connection's loss.
      expect((await client.call(endpoint, envelope("echo", { n: 0 }), within(10_000))).payload).toMatchObject({ n: 0 });
      const transport = (client.link.nc as unknown as { protocol: { transport: { closed(): Promise<unknown> } } })
        .protocol.transport;
      // A deadline far beyond the test's timeout: a call left waiting for it fails the test.
      const deadline = 600_000;
      const queued = new Promise<{ upWhenQueued: boolean; calls: Promise<Envelope | unknown>[] }>((resolve) => {
        void transport.closed().then(() => {
          const upWhenQueued = client.link.up;
          const calls = Array.from({ length: 5 }, (_, n) =>
            client.call(endpoint, envelope("echo", { n }), within(deadline)).catch((e: unknown) => e),
          );
          resolve({ upWhenQueued, calls });
        });
      });
      await nats.kill();
      const { upWhenQueued, calls } = await queued;
      expect(upWhenQueued).toBe(true);
      const results = await Promise.all(calls);
      for (const e of results) {
        expect(FanError.is(e), String(e)).toBe(true);
        expect((e as FanError).code).toBe(Code.UNAVAILABLE);
        expect(isNotDelivered(e)).toBe(true);
        expect((e as FanError).message).toMatch(/before the call was sent|publish failed/);
      }
    } finally {
      await client.close();
      await server.close();
    }
  }, 30_000);
});
