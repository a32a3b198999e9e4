/**
 * The nats transport across a nats-server restart, on a server of this test's own (JetStream
 * storing in a temporary folder; the shared one is never restarted), killed with SIGKILL
 * mid-traffic and started again on its store: calls in flight fail with UNAVAILABLE at once
 * (the connection dropped, their replies cannot come), calls made while NATS is down fail with
 * UNAVAILABLE at their deadline, pushes sent during the outage wait for it, later calls succeed
 * on the same transports, and no push NATS acknowledged is lost.
 */
import { expect, it } from "vitest";
import { FanError } from "../../src/runtime/errors.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import type { Envelope, Transport } from "../../src/runtime/transports/transport.js";
import { describeWithBroker } from "./amqp-broker.js";
import { envelope, rejection, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { natsServerAvailable, suiteNats } from "./nats-server.js";

/** Handles pushes slowly, so a backlog of acknowledged pushes sits in the stream when it goes down. */
class SlowPushes extends TestInbound {
  override async push(env: Envelope): Promise<void> {
    await new Promise((r) => setTimeout(r, 40));
    return super.push(env);
  }
}

const possible = await natsServerAvailable();

function transport(url: string): Transport {
  const make = natsTransport({ url, retryDelayMs: 50, ackWaitMs: 2000, pushPrefetch: 1 });
  return make({ cluster: "restart", log: captureLog().log, maxPayloadBytes: 1 << 20 });
}

describeWithBroker(
  possible,
  "a private nats-server",
  "nats restart",
)("nats across a restart (private nats-server)", () => {
  const nats = suiteNats();

  it("fails calls by their deadline while NATS is down, recovers without restarting, and loses no acknowledged push", async () => {
    const server = transport(nats.url);
    const client = transport(nats.url);
    const inbound = new SlowPushes();
    const { endpoint } = await server.serve(ConformanceDescriptor, "r1", inbound);
    expect((await client.call(endpoint, envelope("echo", { n: 0 }), within(3000))).payload).toMatchObject({ n: 0 });

    const acknowledged: string[] = [];
    let pushing = true;
    const pusher = (async () => {
      for (let i = 0; pushing; i++) {
        const id = `p-${i}`;
        await client.push(endpoint, envelope("record", { id }), within(500)).then(
          () => acknowledged.push(id),
          () => undefined,
        );
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await until(() => acknowledged.length >= 20);

    // Pushes are handled slowly (40 ms each, one at a time): wait for a backlog rather than expect one.
    await until(() => acknowledged.length - inbound.pushes.length >= 5, 30_000);
    const slow = client.call(endpoint, envelope("sleep", { ms: 10_000 }), within(8000)).then(
      () => "answered",
      (e: unknown) => FanError.from(e).code,
    );
    await until(() => inbound.active > 0);
    expect(
      acknowledged.length - inbound.pushes.length,
      "acknowledged pushes still queued when the server goes down",
    ).toBeGreaterThan(0);
    const killed = Date.now();
    await nats.kill();
    expect(await slow).toBe("UNAVAILABLE");
    expect(Date.now() - killed, "the call in flight failed when the connection dropped").toBeLessThan(5000);

    const t0 = Date.now();
    const gap = await rejection(() => client.call(endpoint, envelope("echo", { n: 1 }), within(600)));
    expect(gap.code).toBe("UNAVAILABLE");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(550); // it waited for the server until its deadline
    expect(Date.now() - t0).toBeLessThan(600 + 5000);

    const waiting = client.push(endpoint, envelope("record", { id: "during-outage" }), within(60_000));
    await nats.start();
    await waiting;
    pushing = false;
    acknowledged.push("during-outage");

    const restarted = Date.now();
    await until(async () => {
      const reply = await client.call(endpoint, envelope("echo", { n: 2 }), within(1000)).catch(() => undefined);
      return reply?.kind === "reply";
    }, 30_000);
    console.log(`nats: calls answered ${Date.now() - restarted} ms after the restart`);
    await pusher;
    await until(() => acknowledged.every((id) => inbound.delivered(id).length >= 1), 30_000);
    expect(acknowledged.length).toBeGreaterThan(20);

    await client.close();
    await server.close();
  }, 120_000);

  it("declares streams and consumers again when the server comes back without its store", async () => {
    const server = transport(nats.url);
    const client = transport(nats.url);
    const inbound = new TestInbound();
    const { endpoint } = await server.serve(ConformanceDescriptor, "w1", inbound);
    await client.push(endpoint, envelope("record", { id: "before" }), within(5000));
    await until(() => inbound.delivered("before").length === 1);
    await nats.kill();
    nats.wipe();
    await nats.start();
    await client.push(endpoint, envelope("record", { id: "after" }), within(10_000));
    await until(() => inbound.delivered("after").length === 1, 15_000);
    expect((await client.call(endpoint, envelope("echo", { n: 3 }), within(3000))).payload).toMatchObject({ n: 3 });
    await client.close();
    await server.close();
  }, 60_000);
});
