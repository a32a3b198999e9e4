/**
 * `rpcQueueType: "quorum"` (for RabbitMQ clusters, docs/clusters.md) against the shared
 * RabbitMQ: the request queue is a quorum queue, calls go out on a confirm channel and are
 * answered, pushes still work; and a nacked push is retried after a pause on a reopened
 * channel. The failover itself is tested on a 3-node cluster in test/clusters/rabbitmq.test.ts.
 */
import { afterAll, expect, it } from "vitest";
import { type AmqpTransport, amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { formatEndpoint, parseEndpoint, rpcQueue } from "../../src/runtime/transports/amqp/names.js";
import { AMQP_URL, deleteByPrefix, describeWithBroker, reachable, withChannel } from "./amqp-broker.js";
import { envelope, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";

const url = new URL(AMQP_URL);
const up = await reachable(url.hostname, Number(url.port || 5672));
const cluster = `qrpc-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;

describeWithBroker(
  up,
  "RabbitMQ",
  "amqp quorum rpc",
)("amqp rpcQueueType quorum (real RabbitMQ)", () => {
  const open: AmqpTransport[] = [];
  afterAll(async () => {
    await Promise.all(open.map((t) => t.close()));
    await deleteByPrefix(`fan.${cluster}`);
  });

  it("declares a quorum request queue and answers calls sent on a confirm channel", async () => {
    const make = (): AmqpTransport =>
      amqpTransport({ url: AMQP_URL, rpcQueueType: "quorum" })({
        cluster,
        log: captureLog().log,
        maxPayloadBytes: 1 << 20,
      }) as AmqpTransport;
    const server = make();
    const client = make();
    open.push(server, client);
    const inbound = new TestInbound();
    const { endpoint } = await server.serve(ConformanceDescriptor, "i1", inbound);
    for (let n = 1; n <= 20; n++) {
      expect((await client.call(endpoint, envelope("echo", { n }), within(5000))).payload).toMatchObject({ n });
    }
    await client.push(endpoint, envelope("record", { id: "q1" }), within(5000));
    await until(() => inbound.delivered("q1").length === 1);
    // Redeclaring it as a classic queue is refused: it is a quorum queue.
    const queue = rpcQueue(parseEndpoint(endpoint));
    await expect(
      withChannel((ch) =>
        ch.assertQueue(queue, { durable: true, arguments: { "x-expires": 300_000, "x-queue-type": "classic" } }),
      ),
    ).rejects.toThrow(/PRECONDITION_FAILED/);
  });

  it("a nacked call moves to a fresh channel without failing the other calls in flight on the old one", async () => {
    const log = captureLog();
    const make = (l = captureLog()): AmqpTransport =>
      amqpTransport({ url: AMQP_URL, rpcQueueType: "quorum" })({
        cluster,
        log: l.log,
        maxPayloadBytes: 1 << 20,
      }) as AmqpTransport;
    const server = make();
    const client = make(log);
    open.push(server, client);
    const { endpoint } = await server.serve(ConformanceDescriptor, "n1", new TestInbound());
    // Another version's request queue refuses every message (max-length 0, reject-publish): a call to it is nacked.
    const { cluster: c, service: svc } = parseEndpoint(endpoint);
    const full = { cluster: c, service: svc, version: "9.9.9" };
    await withChannel((ch) =>
      ch.assertQueue(rpcQueue(full), {
        durable: true,
        arguments: { "x-expires": 300_000, "x-max-length": 0, "x-overflow": "reject-publish" },
      }),
    );
    expect((await client.call(endpoint, envelope("echo", { n: 0 }), within(5000))).payload).toMatchObject({ n: 0 });
    // In flight on the rpc channel (its server is running it) while the other call is nacked.
    const slow = client.call(endpoint, envelope("sleep", { ms: 1500 }), within(10_000)).then(
      (r) => r.kind,
      (e: unknown) => String(e),
    );
    await new Promise((r) => setTimeout(r, 300));
    const nacked = await client.call(formatEndpoint(full), envelope("echo", { n: 1 }), within(1000)).then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    expect(["UNAVAILABLE", "DEADLINE_EXCEEDED"]).toContain(nacked?.code);
    expect(log.find("amqp broker nacked a call").length).toBeGreaterThanOrEqual(1);
    expect(await slow).toBe("reply");
    // New calls go out on the fresh channel.
    expect((await client.call(endpoint, envelope("echo", { n: 2 }), within(5000))).payload).toMatchObject({ n: 2 });
  });

  it("a push the broker nacks is sent again after a pause on a reopened channel, not in a tight loop", async () => {
    // A queue that refuses every message (max-length 0, reject-publish): each publish is nacked.
    const queue = `fan.${cluster}.full`;
    await withChannel((ch) =>
      ch.assertQueue(queue, { durable: true, arguments: { "x-max-length": 0, "x-overflow": "reject-publish" } }),
    );
    const log = captureLog();
    const t = amqpTransport({ url: AMQP_URL })({ cluster, log: log.log, maxPayloadBytes: 1 << 20 }) as AmqpTransport;
    open.push(t);
    const started = Date.now();
    const err = await t.publisher
      .publish(
        { exchange: "", routingKey: queue, body: Buffer.from("x"), props: {}, mandatory: true, what: "push to full" },
        within(2000),
      )
      .then(
        () => undefined,
        (e: unknown) => e as { code?: string },
      );
    expect(["UNAVAILABLE", "DEADLINE_EXCEEDED"]).toContain(err?.code);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    // 50, 100, 200, 400, 800 ms pauses fit in 2 s: a handful of attempts, each on a new channel.
    const reopened = log.find("amqp broker nacked a publish").length;
    expect(reopened).toBeGreaterThanOrEqual(2);
    expect(reopened).toBeLessThanOrEqual(10);
  });
});
