/**
 * The amqp transport across a broker restart, on a RabbitMQ node of this test's own (the
 * shared broker is never restarted): calls in flight fail with UNAVAILABLE by their deadline,
 * calls during the outage fail with UNAVAILABLE at their deadline, pushes sent during the
 * outage wait for the broker, later calls succeed on the same transports, and no push the
 * broker confirmed is lost.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { FanError } from "../../src/runtime/errors.js";
import type { Envelope, Transport } from "../../src/runtime/transport.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { canRunPrivateRabbit, describeWithBroker, PrivateRabbit } from "./amqp-broker.js";
import { envelope, rejection, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";

/** Handles pushes slowly, so a backlog of acknowledged pushes sits in the queue when it goes down. */
class SlowPushes extends TestInbound {
  override async push(env: Envelope): Promise<void> {
    await new Promise((r) => setTimeout(r, 15));
    return super.push(env);
  }
}

const possible = await canRunPrivateRabbit();

function transport(url: string, who: string): Transport {
  const make = amqpTransport({
    url,
    reconnectMinDelayMs: 50,
    reconnectMaxDelayMs: 400,
    retryDelayMs: 50,
    pushPrefetch: 1,
    connectionName: `fan-restart-${who}`,
  });
  return make({ cluster: "restart", log: captureLog().log, maxPayloadBytes: 1 << 20 });
}

describeWithBroker(
  possible,
  "a private RabbitMQ node (rabbitmq-server)",
  "amqp broker restart",
)("amqp across a broker restart (private node)", () => {
  const rabbit = new PrivateRabbit();
  beforeAll(async () => {
    await rabbit.start();
  }, 90_000);
  afterAll(async () => {
    await rabbit.destroy();
  }, 60_000);

  it("fails calls by their deadline while the broker is away, recovers without restarting, and loses no confirmed push", async () => {
    const server = transport(rabbit.url, "server");
    const client = transport(rabbit.url, "client");
    const inbound = new SlowPushes();
    const { endpoint } = await server.serve(ConformanceDescriptor, "r1", inbound);
    expect((await client.call(endpoint, envelope("echo", { n: 0 }), within(3000))).payload).toMatchObject({ n: 0 });

    const confirmed: string[] = [];
    const failed: string[] = [];
    let pushing = true;
    const pusher = (async () => {
      for (let i = 0; pushing; i++) {
        const id = `p-${i}`;
        await client.push(endpoint, envelope("record", { id }), within(1000)).then(
          () => confirmed.push(id),
          () => failed.push(id),
        );
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await until(() => confirmed.length >= 20);

    const slow = client.call(endpoint, envelope("sleep", { ms: 10_000 }), within(4000)).then(
      () => "answered",
      (e: unknown) => FanError.from(e).code,
    );
    await until(() => inbound.active > 0);
    const backlog = confirmed.length - inbound.pushes.length;
    expect(backlog, "confirmed pushes still queued when the server goes down").toBeGreaterThan(5);
    const stoppedAt = Date.now();
    await rabbit.stop();
    expect(await slow).toBe("UNAVAILABLE");
    expect(Date.now() - stoppedAt).toBeLessThan(4000 + 500);

    const t0 = Date.now();
    const gap = await rejection(() => client.call(endpoint, envelope("echo", { n: 1 }), within(600)));
    expect(gap.code).toBe("UNAVAILABLE");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(550);
    expect(Date.now() - t0).toBeLessThan(2000);

    const waiting = client.push(endpoint, envelope("record", { id: "during-outage" }), within(60_000));
    await rabbit.start();
    await waiting;
    pushing = false;
    confirmed.push("during-outage");

    await until(async () => {
      const reply = await client.call(endpoint, envelope("echo", { n: 2 }), within(1000)).catch(() => undefined);
      return reply?.kind === "reply";
    }, 30_000);
    await pusher;
    await until(() => confirmed.every((id) => inbound.delivered(id).length >= 1), 30_000);
    expect(confirmed.length).toBeGreaterThan(20);

    await client.close();
    await server.close();
  }, 120_000);
});
