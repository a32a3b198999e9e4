/**
 * A reviewer's second read of amqp rpc batching, against the real RabbitMQ: a confirm channel
 * that closes (a channel error, a lost connection) is not a nack — its unconfirmed frames are not
 * sent again (they may have been enqueued and run: a non-idempotent call would run twice) and
 * the calls whose frames it had sent fail at once instead of waiting for their deadline; and a
 * server whose backlog of frame calls never empties does not keep the calls it already started.
 */
import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";
import type amqplib from "amqplib";
import { expect, it } from "vitest";
import type { CallSignal } from "../../src/runtime/transports/abort.js";
import type { Envelope } from "../../src/runtime/transports/transport.js";
import { formatEndpoint, rpcQueue } from "../../src/runtime/transports/amqp/names.js";
import {
  AMQP_URL,
  channelsOf,
  describeWithBroker,
  queueDepth,
  reachable,
  suiteTransports,
  withChannel,
} from "./amqp-broker.js";
import { envelope, rejection, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";

const url = new URL(AMQP_URL);
const up = await reachable(url.hostname, Number(url.port || 5672));
const cluster = `abrev-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;

describeWithBroker(
  up,
  "RabbitMQ",
  "amqp batching review",
)("amqp rpc batching, second read (real RabbitMQ)", () => {
  const make = suiteTransports(cluster);

  it("a confirm channel closing is no nack: unconfirmed frames are not sent again, frames in flight fail at once", async () => {
    const server = make(captureLog(), { rpcQueueType: "quorum" });
    const clientLog = captureLog();
    const client = make(clientLog, { rpcQueueType: "quorum" });
    const inbound = new TestInbound("c1");
    const { endpoint } = await server.serve({ ...ConformanceDescriptor, version: "1.0.0" }, "c1", inbound);
    // Warm up: the rpc channel is open and set up.
    expect((await client.call(endpoint, envelope("echo", { n: 0 }), within(5000))).kind).toBe("reply");
    // A frame confirmed and running on the server.
    const running = envelope("sleep", { ms: 3000 });
    const a = rejection(() => client.call(endpoint, running, within(20_000)));
    await until(() => inbound.calls.some((c) => c.id === running.id));
    await new Promise((r) => setTimeout(r, 200));
    const [rch] = channelsOf(client);
    expect(rch).toBeDefined();
    // A frame published, then the broker closes the channel (a passive declare of no queue)
    // before its confirm: it is enqueued and served, but the client never hears of it.
    const once = envelope("echo", { n: 1 }); // not idempotent
    const b = client.call(endpoint, once, within(20_000)).then(
      (r) => r,
      (e: unknown) => e,
    );
    process.nextTick(() => {
      (rch as amqplib.Channel).checkQueue(`fan.${cluster}.no-such-queue`).catch(() => undefined);
    });
    const bOut = await b;
    const aErr = await a;
    // The call running when its channel closed fails now (not at its deadline).
    expect(aErr.code).toBe("UNAVAILABLE");
    // The unconfirmed one fails too (it may have run), and is not sent a second time.
    expect((bOut as { code?: string }).code).toBe("UNAVAILABLE");
    expect(clientLog.find("amqp broker nacked a call frame")).toEqual([]);
    await until(() => inbound.calls.some((c) => c.id === once.id));
    expect((await client.call(endpoint, envelope("echo", { n: 2 }), within(10_000))).kind).toBe("reply");
    await new Promise((r) => setTimeout(r, 500));
    expect(inbound.calls.filter((c) => c.id === once.id).length).toBe(1);
  }, 40_000);
  it("a server whose backlog never empties keeps no call it already started", async () => {
    /** The signal objects of the calls it ran (each call's own; a waiting call's sits in the backlog entry). */
    class Tracking extends TestInbound {
      readonly refs = new Map<string, WeakRef<object>>();
      override call(env: Envelope, signal: CallSignal): Promise<Envelope> {
        this.refs.set(env.id, new WeakRef(signal as object));
        return super.call(env, signal);
      }
    }
    const t = make(captureLog(), { rpcPrefetch: 2 });
    const inbound = new Tracking("m1");
    const { endpoint } = await t.serve({ ...ConformanceDescriptor, version: "2.0.0" }, "m1", inbound);
    const client = make();
    expect((await client.call(endpoint, envelope("echo", { n: 0 }), within(5000))).kind).toBe("reply");
    // Frame X: two sleepers take both slots, 30 quick calls wait for a turn.
    const quick = Array.from({ length: 30 }, (_, n) => envelope("echo", { n }));
    const x = [envelope("sleep", { ms: 300 }), envelope("sleep", { ms: 300 }), ...quick].map((e) =>
      client.call(endpoint, e, within(15_000)),
    );
    await until(() => inbound.active === 2);
    // Frame Y, behind X's quick calls: two long sleepers, then one call that waits while they run.
    const y = [envelope("sleep", { ms: 10_000 }), envelope("sleep", { ms: 10_000 }), envelope("echo", { n: 99 })].map(
      (e) => client.call(endpoint, e, within(15_000)).catch(() => undefined),
    );
    for (const r of await Promise.all(x)) expect(r.kind).toBe("reply");
    await until(() => inbound.active === 2 && inbound.calls.length === 35);
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    await new Promise((r) => setImmediate(r));
    gc();
    await new Promise((r) => setImmediate(r));
    const alive = quick.filter((e) => inbound.refs.get(e.id)?.deref() !== undefined).length;
    expect(inbound.refs.size).toBe(35);
    // The 30 quick calls are done and answered: nothing of them is kept while Y waits.
    expect(alive).toBeLessThan(5);
    await t.close();
    await Promise.all(y);
  }, 40_000);
  it("close answers the calls still waiting for a turn when a running call ignores its abort", async () => {
    /** `sleep` with `stubborn` runs to its end whatever the signal says. */
    class Stubborn extends TestInbound {
      override call(env: Envelope, signal: CallSignal): Promise<Envelope> {
        const p = env.payload as { stubborn?: boolean; ms?: number };
        if (p?.stubborn !== true) return super.call(env, signal);
        this.calls.push(env);
        return new Promise((r) => setTimeout(() => r({ ...env, kind: "reply", payload: {} }), p.ms));
      }
    }
    const t = make(captureLog(), { rpcPrefetch: 1 });
    const inbound = new Stubborn("s1");
    const { endpoint } = await t.serve({ ...ConformanceDescriptor, version: "3.0.0" }, "s1", inbound);
    const client = make();
    const settle = (e: Envelope, ms = 20_000): Promise<string> =>
      client.call(endpoint, e, within(ms)).then(
        (r) => (r.kind === "error" ? String((r.payload as { code: string }).code) : r.kind),
        (err: unknown) => String((err as { code?: string }).code ?? err),
      );
    // One frame: the stubborn call takes the only slot, the quick ones wait for a turn.
    // (It outlives the close: its frame goes back to the queue, so it waits for another instance.)
    const stubborn = settle(envelope("sleep", { ms: 3000, stubborn: true }), 5000);
    const waiting = Array.from({ length: 5 }, (_, n) => settle(envelope("echo", { n })));
    await until(() => inbound.calls.length === 1);
    await t.close(); // gives the running call 1 s, then closes the channel
    // Never started here: answered (another instance may take them), not left to their deadline.
    const codes = await Promise.all(waiting);
    expect(codes).toEqual(Array(5).fill("UNAVAILABLE"));
    expect(inbound.calls.length).toBe(1);
    await stubborn;
  }, 60_000);
  it("a call waiting for its reply does not keep its request's bytes once its frame left", async () => {
    const a = { cluster, service: ConformanceDescriptor.name, version: "4.0.0", instance: "x" };
    const queue = rpcQueue(a);
    // A request queue nobody consumes: the calls wait for replies that never come.
    await withChannel((c) => c.assertQueue(queue, { durable: true, arguments: { "x-expires": 300_000 } }));
    const t = make(captureLog(), {}, 4 << 20);
    const big = "x".repeat(2_000_000);
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    gc();
    const before = process.memoryUsage().heapUsed;
    const calls = Array.from({ length: 16 }, (_, n) =>
      t.call(formatEndpoint(a), envelope("echo", { n, big }), within(30_000)).catch(() => undefined),
    );
    // Two calls to a frame (4 MB at most).
    await until(async () => (await queueDepth(queue)) === 8, 15_000);
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    // 16 requests of 2 MB each would be 32 MB; sent, they are the broker's to keep.
    expect(grown).toBeLessThan(8_000_000);
    await t.close();
    await Promise.all(calls);
  }, 40_000);
});
