/**
 * tcp-specific behaviour: frames written by hand (several in one write, one split byte by
 * byte), garbage on the socket (random bytes, a huge length prefix, an unknown operation, a
 * frame over the limit) that never stops the server, unreachable endpoints, and a server that
 * restarts on the same port while a client keeps calling (the client reconnects).
 */
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isNotDelivered } from "../../src/runtime/transports/not-delivered.js";
import { FrameReader, FrameWriter } from "../../src/runtime/transports/tcp/frames.js";
import { type TcpTransport, tcpTransport } from "../../src/runtime/transports/tcp/index.js";
import type { Served } from "../../src/runtime/transports/transport.js";
import { envelope, rejection, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { type CapturedLog, captureLog } from "./fixtures/log.js";
import { PREAMBLE, rawFrame, rawTcp } from "./fixtures/raw-tcp.js";

// The summaries of rate-limited drop warnings come within the cases' waits.
process.env.FAN_DROP_WARN_INTERVAL_MS = "200";

const MAX = 64 * 1024;
const C = ConformanceDescriptor.name;

function transport(opts: Parameters<typeof tcpTransport>[0] = {}, log: CapturedLog = captureLog()): TcpTransport {
  return tcpTransport({ closeGraceMs: 200, ...opts })({
    cluster: "tcp9",
    log: log.log,
    maxPayloadBytes: MAX,
  }) as TcpTransport;
}

function callBody(id: string, payload: unknown): string {
  return JSON.stringify({ v: 1, id, kind: "call", service: C, method: "echo", headers: {}, payload });
}

describe("tcp server", () => {
  const log = captureLog();
  let server: TcpTransport;
  let client: TcpTransport;
  let served: Served;

  beforeAll(async () => {
    server = transport({}, log);
    client = transport();
    served = await server.serve(ConformanceDescriptor, "s1", new TestInbound());
  });
  afterAll(async () => {
    await client.close();
    await server.close();
  });

  const stillServes = async (n: number): Promise<void> => {
    const reply = await client.call(served.endpoint, envelope("echo", { n }), within(5000));
    expect(reply.payload).toMatchObject({ n });
  };
  // Drops, not lines: past the first few, drop warnings are counted in summary lines.
  const warnings = (msg: string): number => log.drops(msg);

  it("answers frames written by hand: several in one write, and one split byte by byte", async () => {
    const frames = [1, 2, 3].map((i) => rawFrame(1, i, callBody(`raw-${i}`, { n: i })));
    const { frames: answers } = await rawTcp(served.endpoint, Buffer.concat([PREAMBLE, ...frames]), 3);
    expect(answers.map((a) => [a.op, a.corr])).toEqual([
      [4, 1],
      [4, 2],
      [4, 3],
    ]);
    expect(answers.map((a) => JSON.parse(a.body).payload.n)).toEqual([1, 2, 3]);

    const one = Buffer.concat([PREAMBLE, rawFrame(1, 9, callBody("split", { n: 9 }))]);
    const split = [...one].map((b) => Buffer.from([b]));
    const { frames: got } = await rawTcp(served.endpoint, split, 1);
    expect(got[0]).toMatchObject({ op: 4, corr: 9 });
    expect(JSON.parse(got[0]?.body ?? "{}")).toMatchObject({ kind: "reply", payload: { n: 9 } });
  });

  it("random bytes: each connection is dropped with a warning, the server keeps serving", async () => {
    const before = warnings("does not speak fan's tcp protocol");
    for (let i = 0; i < 20; i++) {
      const { closed, frames } = await rawTcp(served.endpoint, randomBytes(1 + i * 97), 1, 1000);
      expect(closed).toBe(true);
      expect(frames).toEqual([]);
    }
    await until(() => warnings("does not speak fan's tcp protocol") >= before + 20);
    await stillServes(1);
  });

  it("a huge length prefix after the preamble: dropped with a warning, never buffered; the server keeps serving", async () => {
    const before = warnings("does not speak fan's tcp protocol");
    const head = Buffer.alloc(9);
    head.writeUInt32BE(0xfffffff0, 0);
    head[4] = 1;
    const { closed } = await rawTcp(served.endpoint, [PREAMBLE, head, randomBytes(4096)], 1, 1000);
    expect(closed).toBe(true);
    await until(() => warnings("does not speak fan's tcp protocol") > before);
    expect(JSON.stringify(log.find("does not speak fan's tcp protocol").at(-1))).toMatch(/far over the limit/);
    // A length shorter than the header itself.
    const short = Buffer.alloc(9);
    short.writeUInt32BE(2, 0);
    expect((await rawTcp(served.endpoint, [PREAMBLE, short], 1, 1000)).closed).toBe(true);
    await stillServes(2);
  });

  it("a frame over the size limit is skipped and refused RESOURCE_EXHAUSTED; the connection keeps serving", async () => {
    const big = rawFrame(1, 5, callBody("big", { s: "x".repeat(MAX + 10) }));
    const push = rawFrame(2, 6, Buffer.alloc(MAX + 10, 0x20));
    const next = rawFrame(1, 7, callBody("after", { n: 7 }));
    const { frames, closed } = await rawTcp(served.endpoint, [PREAMBLE, big, push, next], 3);
    expect(closed).toBe(false);
    expect(frames.map((f) => [f.op, f.corr])).toEqual([
      [4, 5],
      [6, 6],
      [4, 7],
    ]);
    expect(JSON.parse(frames[0]?.body ?? "{}")).toMatchObject({
      kind: "error",
      payload: { code: "RESOURCE_EXHAUSTED" },
    });
    expect(JSON.parse(frames[1]?.body ?? "{}")).toMatchObject({ code: "RESOURCE_EXHAUSTED" });
    expect(JSON.parse(frames[2]?.body ?? "{}")).toMatchObject({ kind: "reply", payload: { n: 7 } });
    expect(warnings("refused a frame over the size limit")).toBeGreaterThanOrEqual(2);
  });

  it("an unknown operation or a body that is not JSON: dropped or refused with a log line, the connection keeps serving", async () => {
    const before = warnings("unknown operation");
    const { frames } = await rawTcp(
      served.endpoint,
      [PREAMBLE, rawFrame(99, 1, "?"), rawFrame(1, 2, "not json"), rawFrame(1, 3, callBody("ok", { n: 3 }))],
      2,
    );
    expect(frames.map((f) => [f.op, f.corr])).toEqual([
      [4, 2],
      [4, 3],
    ]);
    expect(JSON.parse(frames[0]?.body ?? "{}")).toMatchObject({ payload: { code: "INVALID_ARGUMENT" } });
    expect(warnings("unknown operation")).toBe(before + 1);
  });

  it("greets every connection; a client that asks gets `ok`/`fail` answers, one that does not gets envelopes", async () => {
    const call = (corr: number, method: string, payload: unknown, headers = {}): Buffer =>
      rawFrame(1, corr, JSON.stringify({ v: 1, id: `c${corr}`, kind: "call", service: C, method, headers, payload }));
    const asked = await rawTcp(
      served.endpoint,
      [
        PREAMBLE,
        rawFrame(8, 0, ""),
        call(1, "echo", { n: 4 }),
        call(2, "fail", { code: "NOT_FOUND", message: "gone" }),
        call(3, "headers", {}, { "x-tenant": "t1" }),
        call(4, "empty", {}),
      ],
      4,
    );
    expect(asked.hello).toBe(true);
    const byCorr = new Map(asked.frames.map((f) => [f.corr, f]));
    expect(byCorr.get(1)?.op).toBe(9);
    expect(JSON.parse(byCorr.get(1)?.body ?? "")).toMatchObject({ n: 4 });
    expect(byCorr.get(2)?.op).toBe(10);
    expect(JSON.parse(byCorr.get(2)?.body ?? "")).toMatchObject({ code: "NOT_FOUND", message: "gone" });
    // A reply with headers keeps its envelope; a reply without a payload is an empty `ok`.
    expect(byCorr.get(3)?.op).toBe(4);
    expect(JSON.parse(byCorr.get(3)?.body ?? "")).toMatchObject({ kind: "reply" });
    expect(byCorr.get(4)).toMatchObject({ op: 9, body: "" });
    const older = await rawTcp(served.endpoint, [PREAMBLE, call(5, "echo", { n: 5 })], 1);
    expect(older.hello).toBe(true);
    expect(older.frames[0]?.op).toBe(4);
    expect(JSON.parse(older.frames[0]?.body ?? "")).toMatchObject({ kind: "reply", id: "c5", payload: { n: 5 } });
  });
});

describe("tcp client", () => {
  /**
   * A hand-made server answering every call `{ n: 1 }`: with `greet`, it says hello first and
   * answers compactly once asked; without, it is a server from before compact answers.
   */
  async function handMade(
    greet: boolean,
    compactAnswer: (i: number) => readonly [number, string] = () => [9, JSON.stringify({ n: 1 })],
  ): Promise<{ endpoint: string; ops: number[]; close(): void }> {
    const ops: number[] = [];
    const server = createServer((socket) => {
      const out = new FrameWriter(socket);
      let compact = false;
      let answered = 0;
      if (greet) out.queue(7, 0, "");
      const reader = new FrameReader(
        MAX,
        {
          frame: (op, corr) => {
            ops.push(op);
            if (op === 8) compact = true;
            else if (op === 1)
              if (compact) {
                const [op, body] = compactAnswer(answered++);
                out.queue(op, corr, body);
              } else
                out.queue(
                  4,
                  corr,
                  JSON.stringify({
                    v: 1,
                    id: "x",
                    kind: "reply",
                    service: C,
                    method: "echo",
                    headers: {},
                    payload: { n: 1 },
                  }),
                );
          },
          oversize: () => undefined,
          garbage: () => socket.destroy(),
        },
        true,
      );
      socket.on("data", (c: Buffer) => reader.push(c));
      socket.on("error", () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    return { endpoint: `tcp://127.0.0.1:${port}`, ops, close: () => server.close() };
  }

  it("reads an empty `ok` as no payload and a `fail` as the error; a malformed one fails INTERNAL", async () => {
    const answers = [
      [9, ""],
      [10, JSON.stringify({ code: "NOT_FOUND", message: "gone" })],
      [10, "[]"],
      [10, "null"],
      [9, "not json"],
    ] as const;
    const peer = await handMade(true, (i) => answers[i] ?? [9, "{}"]);
    const c = transport();
    // The first call goes out before the greeting is answered: a whole envelope comes back.
    expect((await c.call(peer.endpoint, envelope("echo", {}), within(5000))).payload).toEqual({ n: 1 });
    const got: unknown[] = [];
    for (let i = 0; i < answers.length; i++)
      got.push(await c.call(peer.endpoint, envelope("echo", {}), within(5000)).catch((e: unknown) => e));
    expect(got[0]).toMatchObject({ kind: "reply", payload: undefined });
    expect(got[1]).toMatchObject({ kind: "error", payload: { code: "NOT_FOUND", message: "gone" } });
    for (const bad of got.slice(2)) {
      expect(bad).toBeInstanceOf(Error);
      expect((bad as { code: string }).code).toBe("INTERNAL");
      expect((bad as Error).message).toContain("malformed reply");
    }
    await c.close();
    peer.close();
  });

  it("asks a server that greets it for compact answers, and never asks one that does not", async () => {
    for (const greet of [true, false]) {
      const peer = await handMade(greet);
      const c = transport();
      for (let i = 0; i < 3; i++)
        expect((await c.call(peer.endpoint, envelope("echo", { n: 1 }), within(5000))).payload).toEqual({ n: 1 });
      expect(peer.ops.filter((op) => op === 8).length).toBe(greet ? 1 : 0);
      expect(peer.ops.filter((op) => op === 1).length).toBe(3);
      await c.close();
      peer.close();
    }
  });

  it("a refused connection fails UNAVAILABLE, marked not delivered, and the endpoint is unreachable", async () => {
    const probe = transport();
    const s = await probe.serve(ConformanceDescriptor, "gone", new TestInbound());
    await probe.close();
    const client = transport();
    try {
      const err = await rejection(() => client.call(s.endpoint, envelope("echo", { n: 1 }), within(3000)));
      expect(err.code).toBe("UNAVAILABLE");
      expect(isNotDelivered(err)).toBe(true);
      expect(client.reachable(s.endpoint)).toBe(false);
      const t0 = Date.now();
      const again = await rejection(() => client.call(s.endpoint, envelope("echo", { n: 1 }), within(3000)));
      expect(isNotDelivered(again)).toBe(true);
      expect(Date.now() - t0).toBeLessThan(100);
    } finally {
      await client.close();
    }
  });

  it("not a tcp endpoint: INVALID_ARGUMENT", async () => {
    const client = transport();
    const err = await rejection(() => client.call("http://127.0.0.1:1", envelope("echo", {}), within(1000)));
    expect(err.code).toBe("INVALID_ARGUMENT");
    await client.close();
  });

  it("a call in flight when the server goes away fails UNAVAILABLE (not marked not delivered)", async () => {
    const server = transport();
    const inbound = new TestInbound();
    const s = await server.serve(ConformanceDescriptor, "dying", inbound);
    const client = transport();
    const pending = rejection(() => client.call(s.endpoint, envelope("sleep", { ms: 60_000 }), within(10_000)));
    await until(() => inbound.active > 0);
    await server.close();
    const err = await pending;
    expect(err.code).toBe("UNAVAILABLE");
    expect(isNotDelivered(err)).toBe(false);
    await client.close();
  });

  it("the server restarts on the same port: the client reconnects by itself and calls succeed again", async () => {
    const first = transport();
    const s = await first.serve(ConformanceDescriptor, "r1", new TestInbound());
    const port = Number(new URL(s.endpoint.replace(/^tcp:/, "http:")).port);
    const client = transport();
    try {
      expect((await client.call(s.endpoint, envelope("echo", { n: 1 }), within(3000))).payload).toMatchObject({ n: 1 });
      await first.close();
      await until(() => !client.reachable(s.endpoint));
      const second = transport({ port });
      try {
        const again = await second.serve(ConformanceDescriptor, "r2", new TestInbound("second"));
        expect(again.endpoint).toBe(s.endpoint);
        // Reconnects in the background (at most 1 s between attempts); no call is needed to trigger it.
        await until(() => client.reachable(s.endpoint), 5000);
        const reply = await client.call(s.endpoint, envelope("echo", { n: 2 }), within(3000));
        expect(reply.payload).toMatchObject({ n: 2 });
      } finally {
        await second.close();
      }
    } finally {
      await client.close();
    }
  });
});
