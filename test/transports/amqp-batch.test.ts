/**
 * amqp rpc batching against the real RabbitMQ: the calls of one tick to one queue travel as one
 * message (at most 32), a lone call is still one message of its own, the replies of one tick
 * come back as one message, the server's running calls stay within rpcPrefetch, a frame lives
 * until its latest call's deadline while each call's own deadline still holds, a redelivered
 * frame refuses its non-idempotent calls only, a returned frame fails all its calls as never
 * delivered, a nacked frame's calls are sent again as one frame, a queued call cancelled never
 * leaves, a broken frame is answered or logged while the server keeps serving, and a server
 * that cannot read frames (an older fan) fails the calls loudly.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import amqplib from "amqplib";
import { afterAll, beforeAll, expect, it } from "vitest";
import { decodeEnvelope, encodeEnvelopeText } from "../../src/runtime/codec/wire.js";
import { Code, FanError } from "../../src/runtime/errors.js";
import { LazyAbort } from "../../src/runtime/transports/abort.js";
import { FrameBuilder, isBatch, readBatch } from "../../src/runtime/transports/batch-frame.js";
import { formatEndpoint, parseEndpoint, rpcQueue } from "../../src/runtime/transports/amqp/names.js";
import { isNotDelivered } from "../../src/runtime/transports/not-delivered.js";
import { decodeFrameReply, errorEnvelope } from "../../src/runtime/transports/replies.js";
import type { Envelope, Inbound, Transport } from "../../src/runtime/transports/transport.js";
import { AMQP_URL, describeWithBroker, queueDepth, reachable, suiteTransports, withChannel } from "./amqp-broker.js";
import { envelope, rejection, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { type CapturedLog, captureLog } from "./fixtures/log.js";

const url = new URL(AMQP_URL);
const up = await reachable(url.hostname, Number(url.port || 5672));
const cluster = `abatch-${process.pid}`;

/** A TestInbound that remembers the most calls it ran at once. */
class CountingInbound extends TestInbound {
  most = 0;
  override call(env: Envelope, signal: Parameters<Inbound["call"]>[1]): Promise<Envelope> {
    const p = super.call(env, signal);
    this.most = Math.max(this.most, this.active);
    return p;
  }
}

/** One message a raw consumer took from a request queue. */
interface Taken {
  readonly seqs: number[];
  readonly redelivered: boolean;
  readonly expiration: string | undefined;
  readonly replyTo: string | undefined;
}

describeWithBroker(
  up,
  "RabbitMQ",
  "amqp batching",
)("amqp rpc batching (real RabbitMQ)", () => {
  let conn: amqplib.ChannelModel;
  let ch: amqplib.Channel;
  let serverLog: CapturedLog;
  let server: Transport;
  let client: Transport;
  let inbound: TestInbound;
  let endpoint: string;

  const make = suiteTransports(cluster);

  beforeAll(async () => {
    conn = await amqplib.connect(AMQP_URL);
    conn.on("error", () => undefined);
    ch = await conn.createChannel();
    ch.on("error", () => undefined);
    serverLog = captureLog();
    server = make(serverLog);
    client = make();
    inbound = new TestInbound();
    endpoint = (await server.serve(ConformanceDescriptor, "b1", inbound)).endpoint;
  });
  afterAll(async () => {
    await conn.close().catch(() => undefined);
  });

  /** An endpoint of a version nobody serves, and its request queue. */
  function version(v: string): { endpoint: string; queue: string } {
    const a = { ...parseEndpoint(endpoint), version: v, instance: "x" };
    return { endpoint: formatEndpoint(a), queue: rpcQueue(a) };
  }

  /**
   * A raw consumer of `queue` standing in for a server: records each message's items and answers
   * them with one reply frame (echo), or, `old`, the way a fan server from before frames did
   * (one error envelope: the bytes are not an envelope).
   */
  async function rawServer(
    queue: string,
    how: "frame" | "old" = "frame",
    args: Record<string, unknown> = {},
  ): Promise<{ taken: Taken[]; stop(): Promise<void> }> {
    const taken: Taken[] = [];
    const rch = await conn.createChannel();
    rch.on("error", () => undefined);
    await rch.assertQueue(queue, { durable: true, arguments: { "x-expires": 300_000, ...args } });
    const echo = new TestInbound("raw");
    const { consumerTag } = await rch.consume(queue, (m) => {
      if (m === null) return;
      const seqs: number[] = [];
      const bodies: Uint8Array[] = [];
      if (isBatch(m.content))
        readBatch(m.content, {
          item: (s, b) => {
            seqs.push(s);
            bodies.push(b);
          },
        });
      taken.push({
        seqs,
        redelivered: m.fields.redelivered,
        expiration: m.properties.expiration,
        replyTo: m.properties.replyTo as string | undefined,
      });
      const props = { correlationId: m.properties.correlationId };
      if (how === "old") {
        let err: FanError;
        try {
          decodeEnvelope(m.content, { maxBytes: 1 << 20 });
          err = new FanError(Code.INTERNAL, "decoded");
        } catch (e) {
          err = FanError.from(e, Code.INVALID_ARGUMENT);
        }
        rch.publish(
          "",
          m.properties.replyTo,
          Buffer.from(encodeEnvelopeText(errorEnvelope("?", undefined, err))),
          props,
        );
        rch.ack(m);
        return;
      }
      void Promise.all(bodies.map((b) => echo.call(decodeEnvelope(b, { maxBytes: 1 << 20 }), new LazyAbort()))).then(
        (outs) => {
          const f = new FrameBuilder();
          outs.forEach((o, i) => {
            const json = encodeEnvelopeText(o);
            f.add(seqs[i] as number, json, Buffer.byteLength(json));
          });
          rch.publish("", m.properties.replyTo, Buffer.from(f.text), props);
          rch.ack(m);
        },
      );
    });
    return {
      taken,
      stop: async () => {
        await rch.cancel(consumerTag);
        await rch.close().catch(() => undefined);
      },
    };
  }

  /** Publishes a frame of `items` (seq, envelope JSON) to the served version's queue with replies to `replyQueue`. */
  function publishFrame(
    items: Array<[number, string]>,
    replyQueue: string | undefined,
    corr = "raw.1",
    mark: "#" | "%" = "#",
  ): void {
    const f = new FrameBuilder(mark);
    for (const [s, json] of items) f.add(s, json, Buffer.byteLength(json));
    const props = replyQueue === undefined ? {} : { replyTo: replyQueue, correlationId: corr };
    ch.sendToQueue(rpcQueue(parseEndpoint(endpoint)), Buffer.from(f.text), props);
  }

  /** An exclusive queue collecting what a server replies to raw frames. */
  async function replies(): Promise<{ queue: string; got: amqplib.ConsumeMessage[] }> {
    const got: amqplib.ConsumeMessage[] = [];
    const { queue } = await ch.assertQueue("", { exclusive: true, autoDelete: true });
    await ch.consume(queue, (m) => m !== null && got.push(m), { noAck: true });
    return { queue, got };
  }

  /** The items of reply frames, by seq. */
  function items(msgs: amqplib.ConsumeMessage[]): Map<number, Envelope> {
    const out = new Map<number, Envelope>();
    for (const m of msgs)
      readBatch(m.content, { item: (s, b) => out.set(s, decodeEnvelope(b, { maxBytes: 1 << 20 }) as Envelope) });
    return out;
  }

  it("16 calls made in one tick leave as one message; a lone call leaves alone; more than 32 are split", async () => {
    const v = version("2.0.1");
    const raw = await rawServer(v.queue);
    const all = await Promise.all(
      Array.from({ length: 16 }, (_, n) => client.call(v.endpoint, envelope("echo", { n }), within(5000))),
    );
    for (const [n, r] of all.entries()) expect(r.payload).toMatchObject({ n });
    expect(raw.taken.map((t) => t.seqs.length)).toEqual([16]);
    // A lone call is not held back for company: each is its own message.
    expect((await client.call(v.endpoint, envelope("echo", { n: 1 }), within(5000))).payload).toMatchObject({ n: 1 });
    expect((await client.call(v.endpoint, envelope("echo", { n: 2 }), within(5000))).payload).toMatchObject({ n: 2 });
    expect(raw.taken.map((t) => t.seqs.length)).toEqual([16, 1, 1]);
    await Promise.all(
      Array.from({ length: 40 }, (_, n) => client.call(v.endpoint, envelope("echo", { n }), within(5000))),
    );
    expect(raw.taken.slice(3).map((t) => t.seqs.length)).toEqual([32, 8]);
    await raw.stop();
  });

  it("replies come to a queue of the client's own (not direct reply-to), which goes when the client closes", async () => {
    const v = version("2.0.9");
    const raw = await rawServer(v.queue);
    const own = make();
    expect((await own.call(v.endpoint, envelope("echo", { n: 7 }), within(5000))).payload).toMatchObject({ n: 7 });
    const replyTo = raw.taken[0]?.replyTo ?? "";
    // Named under the cluster's prefix (RabbitMQ permissions on `fan.` cover it), not amq.rabbitmq.reply-to.
    expect(replyTo).toMatch(new RegExp(`^fan\\.${cluster}\\.replies\\.[0-9a-f]{12}\\.1$`));
    // Another connection may not touch it while the client lives (exclusive), and it is gone after.
    const probe = (): Promise<string> =>
      withChannel(async (c) => {
        await c.checkQueue(replyTo);
        return "open to others";
      }).catch((e: unknown) => String(e));
    expect(await probe()).toContain("RESOURCE_LOCKED");
    await own.close();
    await until(async () => (await probe()).includes("NOT_FOUND"), 5000);
    await raw.stop();
  });

  it("a client whose user may not declare its reply queue gets the broker's refusal, not a bare deadline", async () => {
    const ctl = (...args: string[]) => promisify(execFile)("rabbitmqctl", ["-q", ...args], { timeout: 30_000 });
    const user = `${cluster}-narrow`;
    await ctl("add_user", user, "pw");
    try {
      // Enough for the client before its reply queue: it declares the control exchange only.
      await ctl("set_permissions", "-p", "/", user, `^fan\\.${cluster}\\.control$`, ".*", ".*");
      const u = new URL(AMQP_URL);
      u.username = user;
      u.password = "pw";
      const narrow = make(captureLog(), { url: u.toString() });
      const e = await rejection(() => narrow.call(version("2.0.12").endpoint, envelope("echo", {}), within(1500)));
      expect(e.code).toBe(Code.UNAVAILABLE);
      expect(e.message).toMatch(/rpc-client channel setup failed.*ACCESS_REFUSED.*replies/);
      await narrow.close();
    } finally {
      await ctl("delete_user", user);
    }
  });

  it("a reply queue deleted under the client (an operator, rabbitmqctl delete_queue) fails the calls waiting on it at once, and the next calls get a new one", async () => {
    const v = version("2.0.10");
    const raw = await rawServer(v.queue);
    const own = make();
    expect((await own.call(v.endpoint, envelope("echo", { n: 1 }), within(5000))).payload).toMatchObject({ n: 1 });
    const first = raw.taken[0]?.replyTo ?? "";
    // A call whose frame nobody answers (a server still running it) when the queue goes.
    const silent = version("2.0.11");
    const sch = await conn.createChannel();
    sch.on("error", () => undefined);
    await sch.assertQueue(silent.queue, { durable: true, arguments: { "x-expires": 300_000 } });
    let heard = 0;
    await sch.consume(silent.queue, () => heard++, { noAck: true });
    const t0 = Date.now();
    const waiting = own.call(silent.endpoint, envelope("echo", { n: 2 }), within(8000)).then(
      () => "answered",
      (e: unknown) => e as FanError,
    );
    await until(() => heard === 1, 3000);
    // Only the owning connection may delete an exclusive queue (rabbitmqctl may too).
    const owner = await (own.connection.model as amqplib.ChannelModel).createChannel();
    await owner.deleteQueue(first);
    await owner.close();
    const lost = await waiting;
    expect(lost).toBeInstanceOf(FanError);
    expect((lost as FanError).code).toBe(Code.UNAVAILABLE);
    expect(Date.now() - t0).toBeLessThan(4000);
    // Later calls are answered again, through a reply queue of a new channel.
    await until(
      () =>
        own.call(v.endpoint, envelope("echo", { n: 3 }), within(1000)).then(
          () => true,
          () => false,
        ),
      6000,
    );
    expect(raw.taken.at(-1)?.replyTo).not.toBe(first);
    await sch.close().catch(() => undefined);
    await raw.stop();
  });
  it("a fan server answers one frame's calls with one reply message, and acks the frame once all are answered", async () => {
    const r = await replies();
    const calls = Array.from({ length: 12 }, (_, n) =>
      envelope(n === 5 ? "sleep" : "echo", n === 5 ? { ms: 200 } : { n }),
    );
    publishFrame(
      calls.map((c, n) => [n + 1, encodeEnvelopeText(c)]),
      r.queue,
    );
    await until(() => items(r.got).size === 12);
    // The 11 quick ones in one message, the sleeper in another.
    expect(r.got.length).toBe(2);
    const got = items(r.got);
    for (let n = 0; n < 12; n++) if (n !== 5) expect(got.get(n + 1)?.payload).toMatchObject({ n });
    expect(got.get(6)?.kind).toBe("reply");
    await until(async () => (await queueDepth(rpcQueue(parseEndpoint(endpoint)))) === 0);
    // End to end too.
    const all = await Promise.all(
      Array.from({ length: 16 }, (_, n) => client.call(endpoint, envelope("echo", { n }), within(5000))),
    );
    for (const [n, x] of all.entries()) expect(x.payload).toMatchObject({ n });
  });

  it("the server runs at most rpcPrefetch calls of frames at once, and answers them all", async () => {
    const t = make(captureLog(), { rpcPrefetch: 4 });
    const counting = new CountingInbound("p");
    const e = (await t.serve({ ...ConformanceDescriptor, version: "3.0.0" }, "p1", counting)).endpoint;
    const all = await Promise.all(
      Array.from({ length: 40 }, () => client.call(e, envelope("sleep", { ms: 20 }), within(10_000))),
    );
    for (const r of all) expect(r.kind).toBe("reply");
    expect(counting.calls.length).toBe(40);
    expect(counting.most).toBeLessThanOrEqual(4);
    expect(counting.most).toBeGreaterThanOrEqual(2);
  });

  it("a frame lives until its latest deadline; a call whose own deadline passed is not started", async () => {
    const desc = { ...ConformanceDescriptor, version: "4.0.0" };
    const first = new TestInbound("d1");
    const served = await server.serve(desc, "d1", first);
    await served.stop(); // the queue stays, nobody consumes it
    const short = envelope("echo", { n: 1 });
    const long = envelope("echo", { n: 2 });
    const a = client.call(served.endpoint, short, within(300));
    const b = client.call(served.endpoint, long, within(20_000));
    expect((await rejection(() => a)).code).toBe("DEADLINE_EXCEEDED");
    await new Promise((r) => setTimeout(r, 100));
    const second = new TestInbound("d2");
    await server.serve(desc, "d2", second);
    expect((await b).payload).toMatchObject({ n: 2 });
    expect(second.calls.map((c) => c.id)).toEqual([long.id]);
  });

  it("a redelivered frame refuses its non-idempotent calls and runs its idempotent ones", async () => {
    const desc = { ...ConformanceDescriptor, version: "5.0.0" };
    const served = await server.serve(desc, "r1", new TestInbound("r1"));
    await served.stop();
    const queue = rpcQueue(parseEndpoint(served.endpoint));
    const r = await replies();
    const echo = { ...envelope("echo", { n: 1 }), version: "5.0.0" };
    const routed = { ...envelope("routed", { n: 2 }), version: "5.0.0" };
    const f = new FrameBuilder();
    for (const [s, env] of [
      [1, echo],
      [2, routed],
    ] as const) {
      const json = encodeEnvelopeText(env);
      f.add(s, json, Buffer.byteLength(json));
    }
    ch.sendToQueue(queue, Buffer.from(f.text), { replyTo: r.queue, correlationId: "raw.r" });
    // Taken without an ack by a consumer that dies: the broker redelivers the frame.
    const dying = await conn.createChannel();
    let seen = false;
    await dying.consume(queue, (m) => {
      seen = m !== null;
    });
    await until(() => seen);
    await dying.close();
    const again = new TestInbound("r2");
    await server.serve(desc, "r2", again);
    await until(() => items(r.got).size === 2);
    const got = items(r.got);
    expect(got.get(1)?.kind).toBe("error");
    expect(got.get(1)?.payload).toMatchObject({ code: "UNAVAILABLE" });
    expect(got.get(2)?.payload).toMatchObject({ n: 2 });
    expect(again.calls.map((c) => c.id)).toEqual([routed.id]);
  });

  it("a frame to a version nobody serves fails every call of it as never delivered", async () => {
    const v = version("6.6.6");
    const errs = await Promise.all(
      Array.from({ length: 3 }, (_, n) =>
        rejection(() => client.call(v.endpoint, envelope("echo", { n }), within(5000))),
      ),
    );
    for (const e of errs) {
      expect(e.code).toBe("UNAVAILABLE");
      expect(isNotDelivered(e)).toBe(true);
    }
  });

  it("a nacked frame's open calls are framed again and answered once the queue takes them", async () => {
    const log = captureLog();
    const confirmed = make(log, { rpcQueueType: "quorum" }); // confirm mode on the rpc channel
    const v = version("7.0.0");
    // Holds one message and refuses the next (reject-publish): the second frame is nacked.
    const full = { "x-max-length": 1, "x-overflow": "reject-publish" };
    await ch.assertQueue(v.queue, { durable: true, arguments: { "x-expires": 300_000, ...full } });
    const firstCall = confirmed.call(v.endpoint, envelope("echo", { n: 0 }), within(10_000));
    // In the queue before the others are made (under load the channel may open late, and the
    // four calls would then leave in one tick as one frame, which the queue takes).
    await until(async () => (await queueDepth(v.queue)) === 1);
    const ac = new AbortController();
    const later = [1, 2, 3].map((n) =>
      confirmed.call(v.endpoint, envelope("echo", { n }), within(10_000, n === 2 ? ac.signal : undefined)),
    );
    await until(() => log.find("amqp broker nacked a call frame").length >= 1);
    const cancelled = rejection(() => later[1] as Promise<Envelope>);
    ac.abort(); // while its frame waits to be sent again: left out of the new frame
    const raw = await rawServer(v.queue, "frame", full);
    expect((await firstCall).payload).toMatchObject({ n: 0 });
    expect((await cancelled).code).toBe("CANCELLED");
    expect((await later[0])?.payload).toMatchObject({ n: 1 });
    expect((await later[2])?.payload).toMatchObject({ n: 3 });
    expect(raw.taken.map((t) => t.seqs.length)).toEqual([1, 2]);
    await raw.stop();
  });

  it("a call cancelled in the tick it was made never leaves; one cancelled in flight reaches its handler", async () => {
    const v = version("8.0.0");
    const raw = await rawServer(v.queue);
    const ac = new AbortController();
    const calls = [0, 1, 2].map((n) =>
      client.call(v.endpoint, envelope("echo", { n }), within(5000, n === 1 ? ac.signal : undefined)),
    );
    ac.abort();
    expect((await rejection(() => calls[1] as Promise<Envelope>)).code).toBe("CANCELLED");
    await Promise.all([calls[0], calls[2]]);
    expect(raw.taken.map((t) => t.seqs.length)).toEqual([2]);
    await raw.stop();

    const bc = new AbortController();
    const sleeper = envelope("sleep", { ms: 5000 });
    const cancelled = client.call(endpoint, sleeper, within(10_000, bc.signal));
    const others = Array.from({ length: 5 }, (_, n) => client.call(endpoint, envelope("echo", { n }), within(5000)));
    await until(() => inbound.calls.some((c) => c.id === sleeper.id));
    bc.abort();
    expect((await rejection(() => cancelled)).code).toBe("CANCELLED");
    await until(() => inbound.cancelled.includes(sleeper.id));
    for (const [n, r] of (await Promise.all(others)).entries()) expect(r.payload).toMatchObject({ n });
  });

  it("a `%` frame gets compact replies (`=` payload, `!` error), read back by the client's decoder", async () => {
    const r = await replies();
    const echo = envelope("echo", { n: 21 });
    const fail = envelope("fail", { code: "NOT_FOUND", message: "gone" });
    publishFrame(
      [
        [1, encodeEnvelopeText(echo)],
        [2, encodeEnvelopeText(fail)],
      ],
      r.queue,
      "raw.compact",
      "%",
    );
    await until(() => r.got.length >= 1);
    const text = r.got.map((m) => m.content.toString("utf8")).join("");
    expect(text).toMatch(/^#1\n=\{.*\}\n2\n!\{.*\}$/);
    const out = new Map<number, Envelope>();
    for (const m of r.got)
      readBatch(m.content, {
        item: (seq, b) => out.set(seq, decodeFrameReply(b, 1 << 20, echo.service) as Envelope),
      });
    expect(out.get(1)).toMatchObject({ kind: "reply", payload: { n: 21 } });
    expect(out.get(2)).toMatchObject({ kind: "error", payload: { code: "NOT_FOUND", message: "gone" } });
  });

  it("broken frames are answered or logged, and the server keeps serving", async () => {
    const r = await replies();
    const queue = rpcQueue(parseEndpoint(endpoint));
    ch.sendToQueue(queue, Buffer.from("#12x\n{}"), { replyTo: r.queue, correlationId: "raw.bad" });
    ch.sendToQueue(queue, Buffer.from("#"), { replyTo: r.queue, correlationId: "raw.empty" });
    publishFrame([[1, encodeEnvelopeText(envelope("echo", { n: 1 }))]], undefined);
    // A good frame with one undecodable item: that item gets an error, the other its reply.
    publishFrame(
      [
        [7, "{not json"],
        [8, encodeEnvelopeText(envelope("echo", { n: 8 }))],
      ],
      r.queue,
      "raw.mixed",
    );
    await until(() => r.got.length >= 3);
    const plain = r.got.filter((m) => !isBatch(m.content));
    expect(plain.map((m) => m.properties.correlationId).sort()).toEqual(["raw.bad", "raw.empty"]);
    for (const m of plain)
      expect((decodeEnvelope(m.content, { maxBytes: 1 << 20 }).payload as { code: string }).code).toBe(
        "INVALID_ARGUMENT",
      );
    const got = items(r.got.filter((m) => isBatch(m.content)));
    expect(got.get(7)?.payload).toMatchObject({ code: "INVALID_ARGUMENT" });
    expect(got.get(8)?.payload).toMatchObject({ n: 8 });
    await until(() => serverLog.find("amqp call frame without a reply address dropped").length === 1);
    expect(serverLog.find("malformed amqp call frame").length).toBe(2);
    expect((await client.call(endpoint, envelope("echo", { n: 9 }), within(5000))).payload).toMatchObject({ n: 9 });
    await until(async () => (await queueDepth(queue)) === 0);
  });

  it("a server that cannot read frames (fan before batching) fails the calls with INVALID_ARGUMENT", async () => {
    const v = version("9.0.0");
    const raw = await rawServer(v.queue, "old");
    const outs = await Promise.all(
      [1, 2, 3].map((n) => client.call(v.endpoint, envelope("echo", { n }), within(5000))),
    );
    for (const o of outs) {
      expect(o.kind).toBe("error");
      expect((o.payload as { code: string }).code).toBe("INVALID_ARGUMENT");
      // It cannot read the `%` this client's frames start with: the error says what to do.
      expect((o.payload as { message: string }).message).toContain("upgrade servers before clients");
    }
    expect(raw.taken.map((t) => t.seqs.length)).toEqual([3]);
    await raw.stop();
  });

  it("close answers the calls still waiting for a turn, and the frames are acked", async () => {
    const t = make(captureLog(), { rpcPrefetch: 2 });
    const waiting = new TestInbound("w");
    const e = (await t.serve({ ...ConformanceDescriptor, version: "10.0.0" }, "w1", waiting)).endpoint;
    const all = Array.from({ length: 10 }, () =>
      client.call(e, envelope("sleep", { ms: 5000 }), within(20_000)).then(
        (r) => r.kind,
        (err: unknown) => String(err),
      ),
    );
    await until(() => waiting.active === 2);
    await t.close();
    const kinds = await Promise.all(all);
    // Aborted while running (the handler answers CANCELLED) or before they started.
    expect(kinds.every((k) => k === "error" || k.includes("CANCELLED"))).toBe(true);
    expect(waiting.calls.length).toBe(2);
    expect(await queueDepth(rpcQueue(parseEndpoint(e)))).toBe(0);
  });
});
