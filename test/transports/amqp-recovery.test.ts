/**
 * amqp-specific behaviour against the shared RabbitMQ, each case in a cluster of its own:
 * recovery from a connection the broker closed and from a channel-only close, a consumer the
 * broker cancelled, unroutable sends, undecodable pushes, a URL list with a dead node, calls
 * lost with a crashed server, and the round-trip latency that shows Nagle's algorithm is off.
 */
import { Socket } from "node:net";
import { afterAll, expect, it, vi } from "vitest";
import { FanError } from "../../src/runtime/errors.js";
import type { Envelope } from "../../src/runtime/transports/transport.js";
import {
  type AmqpTransport,
  amqpTransport,
  type AmqpTransportOptions,
} from "../../src/runtime/transports/amqp/index.js";
import {
  deadLetterQueue,
  formatEndpoint,
  parseEndpoint,
  pushQueue,
  rpcQueue,
} from "../../src/runtime/transports/amqp/names.js";
import { decodeEnvelope } from "../../src/runtime/codec/wire.js";
import {
  AMQP_URL,
  closeConnectionsNamed,
  deleteByPrefix,
  describeWithBroker,
  peekQueue,
  publishRaw,
  reachable,
  withChannel,
} from "./amqp-broker.js";
import { envelope, rejection, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { type CapturedLog, captureLog } from "./fixtures/log.js";

const url = new URL(AMQP_URL);
const up = await reachable(url.hostname, Number(url.port || 5672));
const run = `rec-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
let cases = 0;

interface Pair {
  readonly server: AmqpTransport;
  readonly client: AmqpTransport;
  readonly serverLog: CapturedLog;
  readonly inbound: TestInbound;
  readonly endpoint: string;
  readonly names: { server: string; client: string };
}

function make(
  cluster: string,
  name: string,
  extra: Partial<AmqpTransportOptions> = {},
): { t: AmqpTransport; log: CapturedLog } {
  const log = captureLog();
  const opts: AmqpTransportOptions = {
    url: AMQP_URL,
    reconnectMinDelayMs: 20,
    reconnectMaxDelayMs: 200,
    retryDelayMs: 20,
    connectionName: name,
    ...extra,
  };
  return { t: amqpTransport(opts)({ cluster, log: log.log, maxPayloadBytes: 1 << 20 }) as AmqpTransport, log };
}

/** A server and a client in a fresh cluster. */
async function pair(extra: Partial<AmqpTransportOptions> = {}): Promise<Pair> {
  const cluster = `${run}-${++cases}`;
  const names = { server: `fan-test-${cluster}-server`, client: `fan-test-${cluster}-client` };
  const s = make(cluster, names.server, extra);
  const c = make(cluster, names.client, extra);
  const inbound = new TestInbound();
  const { endpoint } = await s.t.serve(ConformanceDescriptor, "i1", inbound);
  return { server: s.t, client: c.t, serverLog: s.log, inbound, endpoint, names };
}

async function echo(p: Pair, n: number, ms = 2000): Promise<Envelope> {
  return p.client.call(p.endpoint, envelope("echo", { n }), within(ms));
}

describeWithBroker(
  up,
  "RabbitMQ",
  "amqp recovery",
)("amqp recovery and edge cases (real RabbitMQ)", () => {
  const open: Pair[] = [];
  afterAll(async () => {
    await Promise.all(open.flatMap((p) => [p.client.close(), p.server.close()]));
    await deleteByPrefix(`fan.${run}`);
  });

  it("reconnects after the broker closes the connections, redeclares, and serves again", async () => {
    const p = await pair();
    open.push(p);
    expect((await echo(p, 1)).payload).toMatchObject({ n: 1 });
    // A deadline far beyond the time rabbitmqctl takes to close the connections on a loaded
    // machine: the call must fail because its connection went, not because time ran out.
    const slow = p.client
      .call(p.endpoint, envelope("sleep", { ms: 60_000 }), within(30_000))
      .catch((e: unknown) => FanError.from(e).code);
    await until(() => p.inbound.active > 0);
    expect(await closeConnectionsNamed(p.names.client)).toBe(1);
    expect(await closeConnectionsNamed(p.names.server)).toBe(1);
    expect(await slow).toBe("UNAVAILABLE");
    await until(async () => (await echo(p, 2, 500).catch(() => undefined))?.kind === "reply", 10_000);
    await p.client.push(p.endpoint, envelope("record", { id: "after-reconnect" }), within(5000));
    await until(() => p.inbound.delivered("after-reconnect").length === 1);
  });

  it("reopens a channel the broker closed alone, and a consumer the broker cancelled", async () => {
    const p = await pair();
    open.push(p);
    await p.client.push(p.endpoint, envelope("record", { id: "before" }), within(5000));
    const ch = p.client.publisher.channel;
    await expect(ch?.checkQueue(`fan.${run}.no-such-queue`)).rejects.toThrow(/NOT_FOUND/);
    await p.client.push(p.endpoint, envelope("record", { id: "after-channel-close" }), within(5000));
    await until(() => p.inbound.delivered("after-channel-close").length === 1);
    await withChannel((c) => c.deleteQueue(rpcQueue(parseEndpoint(p.endpoint))));
    await until(() => p.serverLog.find("consumer cancelled by the broker").length > 0);
    await until(async () => (await echo(p, 3, 500).catch(() => undefined))?.kind === "reply", 10_000);
  });

  it("fails a send nobody can take with UNAVAILABLE at once", async () => {
    const p = await pair();
    open.push(p);
    const nobody = formatEndpoint({ ...parseEndpoint(p.endpoint), version: "9.9.9" });
    const t0 = Date.now();
    expect((await rejection(() => p.client.call(nobody, envelope("echo", { n: 1 }), within(5000)))).code).toBe(
      "UNAVAILABLE",
    );
    const gone = formatEndpoint({ ...parseEndpoint(p.endpoint), service: "fan.conformance.Nobody" });
    expect((await rejection(() => p.client.push(gone, envelope("record", { id: "x" }), within(5000)))).code).toBe(
      "UNAVAILABLE",
    );
    expect(Date.now() - t0).toBeLessThan(2000);
    expect((await echo(p, 4)).payload).toMatchObject({ n: 4 });
  });

  it("dead-letters an undecodable push with a log line and keeps serving", async () => {
    const p = await pair();
    open.push(p);
    const queue = pushQueue(parseEndpoint(p.endpoint));
    await publishRaw(
      queue,
      Buffer.from('{"v":1,"id":"x","kind":"push","service":"s","method":"m","payload":{"__proto__":{"a":1}}}'),
      { persistent: true },
    );
    await until(async () => (await peekQueue(deadLetterQueue(queue))).length === 1);
    expect(p.serverLog.find("undecodable amqp message dead-lettered")).toHaveLength(1);
    await p.client.push(p.endpoint, envelope("record", { id: "fine" }), within(5000));
    await until(() => p.inbound.delivered("fine").length === 1);
  });

  it("answers UNAVAILABLE instead of running a non-idempotent call again after its server crashed", async () => {
    const cluster = `${run}-${++cases}`;
    const a = make(cluster, `fan-test-${cluster}-a`);
    const b = make(cluster, `fan-test-${cluster}-b`);
    const c = make(cluster, `fan-test-${cluster}-c`);
    const hanging = new (class extends TestInbound {
      override call(): Promise<Envelope> {
        this.active++;
        return new Promise(() => undefined);
      }
    })();
    const { endpoint } = await a.t.serve(ConformanceDescriptor, "a", hanging);
    const pending = c.t.call(endpoint, envelope("echo", { n: 1 }), within(5000));
    await until(() => hanging.active > 0);
    const other = new TestInbound();
    await b.t.serve(ConformanceDescriptor, "b", other);
    await a.t.close();
    const reply = await pending;
    expect(reply.kind).toBe("error");
    expect(reply.payload).toMatchObject({ code: "UNAVAILABLE" });
    expect(other.calls).toHaveLength(0);
    await Promise.all([b.t.close(), c.t.close()]);
  });

  it("tries each URL of a list in turn", async () => {
    const p = await pair({ url: ["amqp://guest:guest@127.0.0.1:1", AMQP_URL] });
    open.push(p);
    expect((await echo(p, 5, 5000)).payload).toMatchObject({ n: 5 });
  });

  // Nagle's algorithm with delayed ACKs costs ~40 ms per small round trip; a median-latency
  // bound cannot tell that from a loaded CI machine, so the socket option itself is checked
  // (latency figures live in bench/transports.ts).
  it("turns Nagle's algorithm off on its sockets (setNoDelay(true)), and a small call is answered", async () => {
    const spy = vi.spyOn(Socket.prototype, "setNoDelay");
    try {
      const p = await pair();
      open.push(p);
      expect((await echo(p, 1)).payload).toMatchObject({ n: 1 });
      expect(spy.mock.calls.length).toBeGreaterThanOrEqual(2); // the server's and the client's connection
      expect(spy.mock.calls.every((args) => args[0] === true)).toBe(true);
    } finally {
      spy.mockRestore();
    }
  });

  it("dead-letters a push that fails every time after maxDeliveries, its envelope intact", async () => {
    const p = await pair({ maxDeliveries: 2 });
    open.push(p);
    await p.client.push(
      p.endpoint,
      envelope(
        "record",
        { id: "doomed", failures: 10 },
        { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
      ),
      within(5000),
    );
    const dlq = deadLetterQueue(pushQueue(parseEndpoint(p.endpoint)));
    await until(async () => (await peekQueue(dlq)).length === 1);
    const [msg] = await peekQueue(dlq);
    const env = decodeEnvelope((msg as { content: Buffer }).content, { maxBytes: 1 << 20 });
    expect(env.payload).toMatchObject({ id: "doomed" });
    expect(env.headers.traceparent).toBe("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    expect(p.inbound.pushes.filter((s) => s.id === "doomed").map((s) => s.attempt)).toEqual([1, 2]);
  });
  it("acknowledges pushes without covering a call frame still running on the same channel", async () => {
    // The server consumes its rpc and push queues on one channel, so delivery tags of both
    // interleave: a `multiple` ack of pushes must not take a running call's frame with it (it
    // would be acked before its reply, and its own ack later closes the channel).
    const p = await pair();
    open.push(p);
    const slow = p.client.call(p.endpoint, envelope("sleep", { ms: 400 }), within(10_000));
    await until(() => p.inbound.active === 1);
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        p.client.push(p.endpoint, envelope("record", { id: `tag-${i}` }), within(10_000)),
      ),
    );
    await until(() => p.inbound.pushes.filter((s) => s.id.startsWith("tag-")).length >= 30);
    const reply = await slow;
    expect(reply.kind).toBe("reply");
    await new Promise((r) => setTimeout(r, 300)); // a wrong ack closes the channel: redeliveries, a log line
    expect(p.serverLog.find("channel")).toEqual([]);
    const seen = p.inbound.pushes.filter((s) => s.id.startsWith("tag-"));
    expect(seen.length, "each push handled once").toBe(30);
    expect(p.inbound.calls.filter((c) => c.method === "sleep").length, "the call ran once").toBe(1);
  }, 30_000);
  it("acknowledges a burst of events together without covering one still in a handler or waiting for its nack", async () => {
    const cluster = `${run}-${++cases}`;
    const sub = make(cluster, `fan-test-${cluster}-sub`);
    const pub = make(cluster, `fan-test-${cluster}-pub`);
    const handled = new Map<number, number>();
    const attempts: string[] = [];
    await sub.t.subscribe(
      { source: ConformanceDescriptor, event: "ping", group: "events.Acks", instanceId: "a1", broadcast: false },
      async (env) => {
        const n = (env.payload as { n: number }).n;
        const attempt = Number(env.headers.attempt ?? 1);
        attempts.push(`${n}#${attempt}`);
        // Every 7th fails once (nacked after a backoff); every 5th is slow: both stay open
        // on the channel while later ones are acknowledged.
        if (n % 7 === 0 && attempt === 1) throw new Error("fails once");
        if (n % 5 === 0) await new Promise((r) => setTimeout(r, 100));
        handled.set(n, (handled.get(n) ?? 0) + 1);
      },
    );
    const N = 300;
    await Promise.all(
      Array.from({ length: N }, (_, n) => pub.t.publish({ ...envelope("ping", { n }), kind: "event" }, within(10_000))),
    );
    await until(() => handled.size === N, 20_000);
    await new Promise((r) => setTimeout(r, 500)); // a wrong ack would close the channel: redeliveries
    expect(
      [...handled.values()].every((c) => c === 1),
      "each event handled once",
    ).toBe(true);
    for (let n = 0; n < N; n += 7) expect(attempts).toContain(`${n}#2`);
    expect(attempts.filter((a) => a.endsWith("#3"))).toEqual([]);
    expect(sub.log.find("channel")).toEqual([]);
    await pub.t.close();
    await sub.t.close();
  }, 60_000);
});
