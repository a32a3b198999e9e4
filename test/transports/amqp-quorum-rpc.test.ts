/**
 * `rpcQueueType: "quorum"` (for RabbitMQ clusters, docs/clusters.md) against the shared
 * RabbitMQ: the request queue is a quorum queue, calls go out on a confirm channel and are
 * answered, pushes still work. The failover itself is tested on a 3-node cluster in
 * test/clusters/rabbitmq.test.ts.
 */
import { afterAll, expect, it } from "vitest";
import { type AmqpTransport, amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { parseEndpoint, rpcQueue } from "../../src/runtime/transports/amqp/names.js";
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
});
