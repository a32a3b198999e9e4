/**
 * Edges of the batch core and the http client (found in review), against real sockets and a real nats-server:
 * - an http call failing before its request is handed to undici (an endpoint that is no URL)
 *   lets go of its deadline entry and of the caller's signal: neither fires later as an
 *   unhandled rejection of the exchange nobody awaits;
 * - a closing nats server answers each call of a frame exactly once, the ones running at close
 *   and the ones still waiting for a turn alike;
 * - an amqp channel retired after a nack stays open while calls sent on it wait (their replies
 *   come to its reply-to consumer), through a second retirement, and is closed after the last;
 * - the http client reads reply headers whatever their case, a repeated one joined, and
 *   ignores the others;
 * - a nacked amqp frame one of whose calls was cancelled during the pause is still sent again
 *   with the others.
 */
import amqplib from "amqplib";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { decodeEnvelope, encodeEnvelopeText } from "../../src/runtime/codec/wire.js";
import { FrameBuilder, readBatch } from "../../src/runtime/transports/batch-frame.js";
import { formatEndpoint, rpcQueue } from "../../src/runtime/transports/amqp/names.js";
import { httpTransport } from "../../src/runtime/transports/http/index.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { rpcSubject } from "../../src/runtime/transports/nats/names.js";
import type { Envelope } from "../../src/runtime/transports/transport.js";
import { AMQP_URL, channelsOf, queueDepth, reachable, suiteTransports, withChannel } from "./amqp-broker.js";
import { envelope, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { closingOnFirstCall, TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { NATS_URL, natsUp } from "./nats-server.js";
import { uniqueCluster } from "./processes.js";

/** Runs `fn` with the process's unhandled rejections collected (vitest's own listeners set aside). */
async function collectingUnhandled(fn: (seen: unknown[]) => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const mine = (e: unknown): void => {
    seen.push(e);
  };
  const theirs = process.listeners("unhandledRejection");
  process.removeAllListeners("unhandledRejection");
  process.on("unhandledRejection", mine);
  try {
    await fn(seen);
  } finally {
    process.off("unhandledRejection", mine);
    for (const l of theirs) process.on("unhandledRejection", l);
  }
  return seen;
}

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("http client: a call failing before undici has it", () => {
  const client = (): ReturnType<ReturnType<typeof httpTransport>> =>
    httpTransport({ closeGraceMs: 100 })({ cluster: "r13b", log: captureLog().log, maxPayloadBytes: 64 * 1024 });

  it("leaves nothing on the deadline wheel: no unhandled rejection at its deadline", async () => {
    const t = client();
    try {
      const seen = await collectingUnhandled(async () => {
        const err = await t.call("not an endpoint", envelope("echo", { n: 1 }), within(100)).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: "INVALID_ARGUMENT" });
        await tick(400);
      });
      // Before: the exchange stayed on the wheel; at the deadline it rejected its answer, which
      // nobody awaited (an unhandled rejection: Node's default mode ends the process).
      expect(seen).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it("stops watching the caller's signal: no unhandled rejection when it aborts later", async () => {
    const t = client();
    try {
      const ac = new AbortController();
      const seen = await collectingUnhandled(async () => {
        const err = await t
          .call("not an endpoint", envelope("echo", { n: 1 }), {
            signal: ac.signal,
            deadline: Number.POSITIVE_INFINITY,
          })
          .catch((e: unknown) => e);
        expect(err).toMatchObject({ code: "INVALID_ARGUMENT" });
        ac.abort();
        await tick(50);
      });
      // Before: the exchange stayed registered on the (long-lived) signal until it aborted.
      expect(seen).toEqual([]);
    } finally {
      await t.close();
    }
  });
});

describe("http client: the reply headers it reads", () => {
  it("reads fan-* and trace headers in any case, joins a repeated one, skips the rest", async () => {
    const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const server = createServer((_req, res) => {
      const body = '{"n":1}';
      res.writeHead(200, [
        "Fan-Kind",
        "reply",
        "FAN-H-Tenant",
        "a",
        "fan-h-tenant",
        "b",
        "TraceParent",
        tp,
        "x-other",
        "1",
        "content-type",
        "application/json",
        "content-length",
        String(body.length),
      ]);
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const t = httpTransport({ closeGraceMs: 100 })({
      cluster: "r13b",
      log: captureLog().log,
      maxPayloadBytes: 1 << 16,
    });
    try {
      const port = (server.address() as AddressInfo).port;
      const r = await t.call(`http://127.0.0.1:${port}`, envelope("echo", { n: 1 }), within(5000));
      expect(r.kind).toBe("reply");
      expect(r.payload).toEqual({ n: 1 });
      expect(r.headers).toEqual({ tenant: "a, b", traceparent: tp });
    } finally {
      await t.close();
      await new Promise((r) => server.close(r));
    }
  });
});

const up = await natsUp();

describe.skipIf(!up)("nats server close (real nats-server)", () => {
  it("answers every call of a frame exactly once: those running at close and those still waiting", async () => {
    const cluster = uniqueCluster("r13b");
    const closing = natsTransport({ url: NATS_URL })({ cluster, log: captureLog().log, maxPayloadBytes: 4 << 20 });
    const seen = new TestInbound();
    const { inbound: slow, closed: closeStarted } = closingOnFirstCall(closing, seen);
    await closing.serve(ConformanceDescriptor, "c1", slow);
    const addr = {
      cluster,
      service: ConformanceDescriptor.name,
      version: ConformanceDescriptor.version,
      instance: "x",
    };
    const nc = await connect({ servers: NATS_URL });
    try {
      const counts = new Map<number, number>();
      const codes = new Map<number, string>();
      const inbox = `r13b.${cluster}.reply`;
      nc.subscribe(inbox, {
        callback: (_e, m) => {
          readBatch(m.data, {
            item: (s, b) => {
              counts.set(s, (counts.get(s) ?? 0) + 1);
              const env = decodeEnvelope(b, { maxBytes: 1 << 20 }) as Envelope;
              codes.set(s, env.kind === "error" ? String((env.payload as { code: string }).code) : "OK");
            },
          });
        },
      });
      await nc.flush();
      const N = 32;
      const FRAMES = 10;
      for (let f = 0; f < FRAMES; f++) {
        const frame = new FrameBuilder();
        for (let i = 1; i <= N; i++) {
          const json = encodeEnvelopeText(envelope("sleep", { ms: 200 }, { deadline: Date.now() + 20_000 }));
          frame.add(f * N + i, json, Buffer.byteLength(json));
        }
        nc.publish(rpcSubject(addr), frame.text, { reply: inbox });
      }
      await until(() => closeStarted() !== undefined);
      await closeStarted();
      await until(() => counts.size === N * FRAMES, 5000).catch(() => undefined);
      await tick(300);
      expect(counts.size).toBe(N * FRAMES);
      expect([...counts.values()].filter((c) => c !== 1)).toEqual([]);
      // Some ran (the handler was entered), some never started.
      expect(seen.calls.length).toBeGreaterThan(0);
      expect([...codes.values()].filter((c) => c === "UNAVAILABLE").length).toBeGreaterThan(0);
    } finally {
      await nc.close();
    }
  }, 30_000);
});

const amqpUrl = new URL(AMQP_URL);
const rabbit = await reachable(amqpUrl.hostname, Number(amqpUrl.port || 5672));

describe.skipIf(!rabbit)("amqp client: channels retired after a nack (real RabbitMQ)", () => {
  const cluster = uniqueCluster("r13b-amqp");
  const make = suiteTransports(cluster);

  it("a retired channel carries its calls' replies until the last, then is closed", async () => {
    const log = captureLog();
    const client = make(log, { rpcQueueType: "quorum" }); // confirm mode: frames can be nacked
    const at = (v: string) => {
      const a = { cluster, service: ConformanceDescriptor.name, version: v, instance: "x" };
      return { endpoint: formatEndpoint(a), queue: rpcQueue(a) };
    };
    const hold = at("7.0.0");
    const full = at("7.0.1");
    await withChannel(async (ch) => {
      await ch.assertQueue(hold.queue, { durable: true, arguments: { "x-expires": 300_000 } });
      await ch.assertQueue(full.queue, {
        durable: true,
        arguments: { "x-expires": 300_000, "x-max-length": 0, "x-overflow": "reject-publish" },
      });
    });
    // A raw server of `hold`: keeps the frames, answers them when told.
    const conn = await amqplib.connect(AMQP_URL);
    const sch = await conn.createChannel();
    const frames: amqplib.ConsumeMessage[] = [];
    await sch.consume(hold.queue, (m) => m !== null && frames.push(m), { noAck: true });
    /** Answers the frames held, but for the items `keep` holds back (answered by a later call). */
    const answer = (keep: (seq: number) => boolean = () => false): void => {
      for (const m of frames.splice(0)) {
        const out = new FrameBuilder();
        let kept = false;
        readBatch(m.content, {
          item: (seq, body) => {
            if (keep(seq)) {
              kept = true;
              return;
            }
            const req = decodeEnvelope(body, { maxBytes: 1 << 20 });
            const json = encodeEnvelopeText({ ...req, kind: "reply", headers: {}, payload: req.payload });
            out.add(seq, json, Buffer.byteLength(json));
          },
        });
        if (kept) frames.push(m);
        if (out.count > 0)
          sch.sendToQueue(m.properties.replyTo as string, Buffer.from(out.text), {
            correlationId: m.properties.correlationId as string,
          });
      }
    };
    try {
      await client.call(at("7.0.9").endpoint, envelope("echo", { n: 0 }), within(5000)).catch(() => undefined);
      const open = channelsOf(client).length;
      const retire = async (): Promise<void> => {
        const nacks = log.find("nacked a call frame").length;
        const ac = new AbortController();
        const c = client.call(full.endpoint, envelope("echo", { n: -1 }), within(20_000, ac.signal)).catch(() => 0);
        await until(() => log.find("nacked a call frame").length > nacks);
        ac.abort();
        await c;
      };
      const burst = async (from: number): Promise<Promise<unknown>[]> => {
        const calls = Array.from({ length: 40 }, (_, i) =>
          client.call(hold.endpoint, envelope("echo", { n: from + i }), within(20_000)).then(
            (r) => (r.payload as { n: number }).n,
            (e: { code?: string }) => e.code,
          ),
        );
        await until(() => frames.length >= 2);
        return calls;
      };
      const a = await burst(0); // on channel 1
      const heldA = frames.splice(0);
      await retire(); // channel 1 retired, A's 40 calls wait on it
      const b = await burst(100); // on channel 2
      await retire(); // channel 2 retired too
      expect(channelsOf(client).length).toBeGreaterThanOrEqual(open + 2);
      answer(); // B's replies, on channel 2
      expect(await Promise.all(b)).toEqual(Array.from({ length: 40 }, (_, i) => 100 + i));
      frames.push(...heldA);
      let last = 0;
      for (const m of heldA)
        readBatch(m.content, {
          item: (seq) => {
            last = Math.max(last, seq);
          },
        });
      answer((seq) => seq === last); // A's replies on channel 1, all but one
      await new Promise((r) => setTimeout(r, 300));
      answer(); // the last: channel 1 must still be open to take it
      expect(await Promise.all(a)).toEqual(Array.from({ length: 40 }, (_, i) => i));
      await until(() => channelsOf(client).length === open, 3000).catch(() => undefined);
      expect(channelsOf(client).length).toBe(open);
    } finally {
      await conn.close().catch(() => undefined);
    }
  }, 60_000);

  it("a nacked frame is sent again with its calls still open when one of them was cancelled meanwhile", async () => {
    const log = captureLog();
    const client = make(log, { rpcQueueType: "quorum" });
    const a = { cluster, service: ConformanceDescriptor.name, version: "8.0.0", instance: "x" };
    const queue = rpcQueue(a);
    await withChannel(async (ch) => {
      await ch.assertQueue(queue, {
        durable: true,
        arguments: { "x-expires": 300_000, "x-max-length": 1, "x-overflow": "reject-publish" },
      });
    });
    const filler = await amqplib.connect(AMQP_URL);
    const fch = await filler.createConfirmChannel();
    fch.sendToQueue(queue, Buffer.from("filler"));
    await fch.waitForConfirms();
    await filler.close();
    await until(async () => (await queueDepth(queue)) === 1);
    const gone = new AbortController();
    const stays = new AbortController();
    const first = client
      .call(formatEndpoint(a), envelope("echo", { n: 1 }), within(20_000, gone.signal))
      .catch(() => 0);
    const second = client
      .call(formatEndpoint(a), envelope("echo", { n: 2 }), within(20_000, stays.signal))
      .catch(() => 0);
    await until(() => log.find("nacked a call frame").length > 0);
    gone.abort(); // within the 100 ms pause before the frame is sent again
    await withChannel((ch) => ch.purgeQueue(queue));
    await until(async () => (await queueDepth(queue)) === 1, 3000);
    const msg = await withChannel((ch) => ch.get(queue, { noAck: true }));
    const got: number[] = [];
    if (msg !== false)
      readBatch(msg.content, {
        item: (_s, b) => got.push((decodeEnvelope(b, { maxBytes: 1 << 20 }).payload as { n: number }).n),
      });
    expect(got).toEqual([2]);
    stays.abort();
    await Promise.all([first, second]);
  }, 30_000);
});
