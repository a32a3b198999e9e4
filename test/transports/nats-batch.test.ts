/**
 * nats rpc batching against the real nats-server: the calls of one tick to one subject travel as
 * one message and their replies as one message, a batch larger than the server's max_payload is
 * split, a call of a batch can be cancelled alone, and broken batch frames from a raw publisher
 * are answered or logged while the server keeps serving.
 */
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { decodeEnvelope } from "../../src/runtime/codec/wire.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { parseEndpoint, rpcSubject } from "../../src/runtime/transports/nats/names.js";
import type { Envelope, Inbound, Transport } from "../../src/runtime/transports/transport.js";
import { describeWithBroker } from "./amqp-broker.js";
import { envelope, rejection, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { type CapturedLog, captureLog } from "./fixtures/log.js";
import { NATS_URL, natsUp } from "./nats-server.js";

const up = await natsUp();
const cluster = `batch-${process.pid}`;

describeWithBroker(
  up,
  "NATS",
  "nats batching",
)("nats rpc batching (real nats-server)", () => {
  let serverLog: CapturedLog;
  let server: Transport;
  let client: Transport;
  let inbound: TestInbound;
  let endpoint: string;
  let nc: NatsConnection;

  beforeAll(async () => {
    const make = natsTransport({ url: NATS_URL });
    serverLog = captureLog();
    server = make({ cluster, log: serverLog.log, maxPayloadBytes: 4 << 20 });
    client = make({ cluster, log: captureLog().log, maxPayloadBytes: 4 << 20 });
    inbound = new TestInbound();
    endpoint = (await server.serve(ConformanceDescriptor, "b1", inbound)).endpoint;
    nc = await connect({ servers: NATS_URL });
  });
  afterAll(async () => {
    await client.close();
    await server.close();
    await nc.close();
  });

  /** Counts the messages on `subject` while `fn` runs. */
  async function counting(subject: string, fn: () => Promise<unknown>): Promise<number> {
    let n = 0;
    const sub = nc.subscribe(subject, {
      callback: () => {
        n++;
      },
    });
    await nc.flush();
    await fn();
    await nc.flush();
    sub.unsubscribe();
    return n;
  }

  it("16 calls made in one tick travel as one message, and come back as one", async () => {
    await client.call(endpoint, envelope("echo", { n: -1 }), within(5000)); // subscribed, warm
    let calls = 0;
    const replies = await counting(`fan.${cluster}.reply.>`, async () => {
      calls = await counting(rpcSubject(parseEndpoint(endpoint)), async () => {
        const all = await Promise.all(
          Array.from({ length: 16 }, (_, n) => client.call(endpoint, envelope("echo", { n }), within(5000))),
        );
        for (const [n, r] of all.entries()) expect(r.payload).toMatchObject({ n });
      });
    });
    expect(calls).toBe(1);
    expect(replies).toBe(1);
  });

  it("a batch over the server's max_payload is split, and every call is answered", async () => {
    const max = nc.info?.max_payload ?? 1 << 20;
    const text = "x".repeat(Math.floor(max / 3));
    let calls = 0;
    const replies = await counting(`fan.${cluster}.reply.>`, async () => {
      calls = await counting(rpcSubject(parseEndpoint(endpoint)), async () => {
        const all = await Promise.all(
          Array.from({ length: 6 }, (_, n) => client.call(endpoint, envelope("echo", { n, text }), within(10_000))),
        );
        for (const [n, r] of all.entries()) expect(r.payload).toMatchObject({ n, text });
      });
    });
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(replies).toBeGreaterThanOrEqual(3);
  });

  it("one call of a batch is cancelled alone: its handler sees it, the others are answered", async () => {
    const ac = new AbortController();
    const sleeper = envelope("sleep", { ms: 5000 });
    const cancelled = client.call(endpoint, sleeper, within(10_000, ac.signal));
    const others = Array.from({ length: 5 }, (_, n) => client.call(endpoint, envelope("echo", { n }), within(5000)));
    await until(() => inbound.calls.some((c) => c.id === sleeper.id));
    ac.abort();
    expect((await rejection(() => cancelled)).code).toBe("CANCELLED");
    await until(() => inbound.cancelled.includes(sleeper.id));
    for (const [n, r] of (await Promise.all(others)).entries()) expect(r.payload).toMatchObject({ n });
  });

  it("a call cancelled while it waits behind the first 32 of a batch never starts its handler", async () => {
    const sleepers = Array.from({ length: 40 }, () => envelope("sleep", { ms: 300 }));
    const last = sleepers[39] as Envelope;
    const ac = new AbortController();
    const all = sleepers.map((s, n) => client.call(endpoint, s, within(10_000, n === 39 ? ac.signal : undefined)));
    ac.abort(); // the batch and its cancel leave together: the server reads both before its next turn
    expect((await rejection(() => all[39] as Promise<Envelope>)).code).toBe("CANCELLED");
    await Promise.all(all.slice(0, 39));
    await new Promise((r) => setTimeout(r, 100));
    const ran = inbound.calls.some((c) => c.id === last.id);
    expect(ran && !inbound.cancelled.includes(last.id)).toBe(false);
  });

  it("closing a server answers every call it was sent, and aborts those still waiting for a turn", async () => {
    const make = natsTransport({ url: NATS_URL });
    const own = `${cluster}-close`;
    const log = captureLog().log;
    const closing = make({ cluster: own, log, maxPayloadBytes: 4 << 20 });
    const caller = make({ cluster: own, log, maxPayloadBytes: 4 << 20 });
    const seen = new TestInbound();
    let closed: Promise<void> | undefined;
    const first: Inbound = {
      call: (env, signal) => {
        closed ??= closing.close(); // while the rest of the 2000 are still on their way or waiting
        return seen.call(env, signal);
      },
      push: (env) => seen.push(env),
    };
    const at = (await closing.serve(ConformanceDescriptor, "c1", first)).endpoint;
    try {
      const all = Array.from({ length: 2000 }, () =>
        caller.call(at, envelope("sleep", { ms: 3000 }), within(8000)).then(
          (r) => r.kind,
          (e: { code?: string }) => e.code,
        ),
      );
      await until(() => closed !== undefined);
      await closed;
      expect(seen.active).toBe(0); // none left running past close (its grace is 1000 ms, the sleeps 3000)
      // Each answered (cancelled) at close, none left to wait for its deadline.
      const outcomes = new Set(await Promise.all(all));
      expect(outcomes.has("DEADLINE_EXCEEDED")).toBe(false);
    } finally {
      await caller.close();
    }
  }, 20_000);

  /** Publishes `body` to the rpc subject with a reply subject of its own; the first answer, if any. */
  async function raw(body: string | Uint8Array): Promise<Msg | undefined> {
    const inbox = `raw.${cluster}.${Math.random().toString(36).slice(2)}`;
    const got: Msg[] = [];
    const sub = nc.subscribe(inbox, {
      callback: (_e, m) => {
        got.push(m);
      },
    });
    await nc.flush();
    nc.publish(rpcSubject(parseEndpoint(endpoint)), body, { reply: inbox });
    await until(() => got.length > 0, 2000).catch(() => undefined);
    sub.unsubscribe();
    return got[0];
  }

  it("a malformed frame gets an error reply and a warn line; the server still serves", async () => {
    const before = serverLog.find("malformed nats call frame").length;
    const m = await raw("#abc\n{}");
    expect(m).toBeDefined();
    const err = decodeEnvelope((m as Msg).data, { maxBytes: 1 << 20 }) as Envelope;
    expect(err.kind).toBe("error");
    expect(serverLog.find("malformed nats call frame").length).toBe(before + 1);
    expect((await client.call(endpoint, envelope("echo", { n: 7 }), within(5000))).payload).toMatchObject({ n: 7 });
  });

  it("a frame of no item gets an error reply and a warn line, not silence", async () => {
    const before = serverLog.find("malformed nats call frame").length;
    const m = await raw("#");
    expect(m).toBeDefined();
    expect((decodeEnvelope((m as Msg).data, { maxBytes: 1 << 20 }) as Envelope).kind).toBe("error");
    expect(serverLog.find("malformed nats call frame").length).toBe(before + 1);
  });

  it("a garbage item of a frame gets its own error reply; the other items are served", async () => {
    const good = envelope("echo", { n: 8 });
    const m = await raw(`#1\nnot json\n2\n${JSON.stringify(good)}`);
    expect(m).toBeDefined();
    const text = Buffer.from((m as Msg).data).toString("utf8");
    expect(text.startsWith("#")).toBe(true);
    const lines = text.slice(1).split("\n");
    const items = new Map<string, Envelope>();
    for (let i = 0; i + 1 < lines.length; i += 2)
      items.set(lines[i] as string, decodeEnvelope(lines[i + 1] as string, { maxBytes: 1 << 20 }));
    expect(items.get("1")?.kind).toBe("error");
    expect(items.get("2")?.payload).toMatchObject({ n: 8 });
    expect(serverLog.find("undecodable nats call").length).toBeGreaterThan(0);
  });

  it("the client's call frames start with `%`, and it reads the compact replies they get", async () => {
    const seen: Uint8Array[] = [];
    const spy = nc.subscribe(rpcSubject(parseEndpoint(endpoint)), {
      callback: (_e, m) => {
        seen.push(m.data);
      },
    });
    await nc.flush();
    const [ok, failed] = await Promise.all([
      client.call(endpoint, envelope("echo", { n: 12 }), within(5000)),
      client.call(endpoint, envelope("fail", { code: "NOT_FOUND", message: "gone" }), within(5000)),
    ]);
    spy.unsubscribe();
    expect(seen.length).toBe(1);
    expect(String.fromCharCode(seen[0]?.[0] ?? 0)).toBe("%");
    expect(ok).toMatchObject({ kind: "reply", payload: { n: 12 } });
    expect(failed).toMatchObject({ kind: "error", payload: { code: "NOT_FOUND", message: "gone" } });
  });

  it("a `%` frame gets compact replies (`=` payload, `!` error); a `#` frame, whole envelopes", async () => {
    const items = [envelope("echo", { n: 11 }), envelope("fail", { code: "NOT_FOUND", message: "gone" })];
    const frame = (mark: string) => `${mark}${items.map((e, i) => `${i + 1}\n${JSON.stringify(e)}`).join("\n")}`;
    const replyItems = (m: Msg | undefined): string[] => {
      const text = Buffer.from((m as Msg).data).toString("utf8");
      expect(text.startsWith("#")).toBe(true);
      return text
        .slice(1)
        .split("\n")
        .filter((_, i) => i % 2 === 1);
    };
    const [echo, fail] = replyItems(await raw(frame("%")));
    expect(JSON.parse((echo as string).slice(1))).toMatchObject({ n: 11 });
    expect(echo?.[0]).toBe("=");
    expect(fail?.[0]).toBe("!");
    expect(JSON.parse((fail as string).slice(1))).toMatchObject({ code: "NOT_FOUND", message: "gone" });
    const whole = replyItems(await raw(frame("#"))).map((t) => decodeEnvelope(t, { maxBytes: 1 << 20 }));
    expect(whole.map((e) => [e.kind, e.id])).toEqual([
      ["reply", items[0]?.id],
      ["error", items[1]?.id],
    ]);
  });

  it("a frame without a reply subject is dropped with a warn line", async () => {
    const before = serverLog.find("without a reply subject").length;
    nc.publish(rpcSubject(parseEndpoint(endpoint)), `#1\n${JSON.stringify(envelope("echo", { n: 9 }))}`);
    await until(() => serverLog.find("without a reply subject").length > before);
    expect((await client.call(endpoint, envelope("echo", { n: 10 }), within(5000))).payload).toMatchObject({ n: 10 });
  });

  it("a batch to a version nobody serves fails at once with UNAVAILABLE for each of its calls", async () => {
    const nobody = endpoint.replace(/\/[^/]+\/b1$/, "/9.9.9/b1");
    const errs = await Promise.all(
      Array.from({ length: 3 }, (_, n) => rejection(() => client.call(nobody, envelope("echo", { n }), within(5000)))),
    );
    for (const e of errs) expect(e.code).toBe("UNAVAILABLE");
  });
});
