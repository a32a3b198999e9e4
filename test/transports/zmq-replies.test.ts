/**
 * zmq rpc replies: a client's call ids carry the compact mark (`%`), a server answers those
 * with `=`/`!` bodies and other ids with whole envelopes, and a client reads both, so an older
 * server (which echoes the id and answers envelopes) still works with a new client. Malformed
 * compact replies fail their call INTERNAL, and the client keeps working.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Router } from "zeromq";
import { decodeEnvelope } from "../../src/runtime/codec/wire.js";
import type { Served } from "../../src/runtime/transports/transport.js";
import { type ZmqTransport, zmqTransport } from "../../src/runtime/transports/zmq/index.js";
import { envelope, rejection, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { rawDealer, rawDealerPairs } from "./fixtures/raw-zmq.js";

const C = ConformanceDescriptor.name;

function transport(): ZmqTransport {
  return zmqTransport({ closeGraceMs: 200 })({
    cluster: "zr",
    log: captureLog().log,
    maxPayloadBytes: 64 * 1024,
  }) as ZmqTransport;
}

function callBody(id: string, method: string, payload: unknown): string {
  return JSON.stringify({ v: 1, id, kind: "call", service: C, method, headers: {}, payload });
}

describe("zmq rpc replies", () => {
  let server: ZmqTransport;
  let client: ZmqTransport;
  let served: Served;
  let inbound: TestInbound;

  beforeAll(async () => {
    server = transport();
    client = transport();
    inbound = new TestInbound();
    served = await server.serve(ConformanceDescriptor, "r1", inbound);
  });
  afterAll(() => {
    client.close();
    return server.close();
  });

  it("a call whose id has the mark gets `=`/`!` bodies; one without it, whole envelopes", async () => {
    const answers = await rawDealerPairs(
      served.endpoint,
      [
        "C%a-1",
        callBody("a-1", "echo", { n: 3 }),
        "C%a-2",
        callBody("a-2", "fail", { code: "NOT_FOUND", message: "gone" }),
        "C%a-3",
        "{not json",
        "Ca-4",
        callBody("a-4", "echo", { n: 4 }),
      ],
      4,
    );
    expect(String(answers.get("R%a-1"))).toBe('={"n":3,"served":"a"}');
    expect(String(answers.get("R%a-2"))).toBe('!{"code":"NOT_FOUND","message":"gone"}');
    expect(String(answers.get("R%a-3"))).toMatch(/^!\{"code":"INVALID_ARGUMENT"/);
    const whole = decodeEnvelope(answers.get("Ra-4") as Buffer, { maxBytes: 1 << 20 });
    expect([whole.kind, whole.id, whole.payload]).toEqual(["reply", "a-4", { n: 4, served: "a" }]);
    // The handler saw the call's own id, without the mark.
    expect(inbound.calls.map((c) => c.id)).toContain("a-1");
    expect(inbound.calls.map((c) => c.id)).not.toContain("%a-1");
  });

  it("a refused batch answers marked calls compactly; a 256-character id with the mark is served", async () => {
    const frames: string[] = [];
    for (let i = 0; i < 257; i++) frames.push(`C%b-${i}`, callBody(`b-${i}`, "echo", { n: i }));
    const refused = await rawDealerPairs(served.endpoint, frames, 257);
    expect(refused.size).toBe(257);
    expect(String(refused.get("R%b-0"))).toMatch(/^!\{"code":"RESOURCE_EXHAUSTED"/);
    const long = "l".repeat(256);
    const answer = await rawDealer(served.endpoint, [`C%${long}`, callBody(long, "echo", { n: 7 })]);
    expect([String(answer?.[0]), String(answer?.[1])]).toEqual([`R%${long}`, '={"n":7,"served":"a"}']);
  });

  it("a reply with headers stays a whole envelope", async () => {
    const answer = await rawDealer(served.endpoint, [
      "C%h-1",
      JSON.stringify({ v: 1, id: "h-1", kind: "call", service: C, method: "headers", headers: { "x-a": "1" } }),
    ]);
    const env = decodeEnvelope(answer?.[1] as Buffer, { maxBytes: 1 << 20 });
    expect([env.kind, env.id]).toEqual(["reply", "h-1"]);
  });

  it("the client reads the compact replies its calls get (the mark itself: the hand-made server below)", async () => {
    const [ok, failed] = await Promise.all([
      client.call(served.endpoint, envelope("echo", { n: 12 }), within(5000)),
      client.call(served.endpoint, envelope("fail", { code: "NOT_FOUND", message: "gone" }), within(5000)),
    ]);
    expect(ok).toMatchObject({ kind: "reply", payload: { n: 12 } });
    expect(failed).toMatchObject({ kind: "error", payload: { code: "NOT_FOUND", message: "gone" } });
  });

  describe("against a hand-made server answering as told", () => {
    let router: Router;
    let endpoint: string;
    let heads: string[] = [];
    let answer: (id: string, body: string) => string = () => "";

    beforeAll(async () => {
      router = new Router({ linger: 0 });
      await router.bind("tcp://127.0.0.1:*");
      endpoint = router.lastEndpoint as string;
      void (async () => {
        for await (const [peer, h, body] of router) {
          const head = String(h);
          heads.push(head);
          if (head.startsWith("C"))
            await router.send([peer as Buffer, `R${head.slice(1)}`, answer(head.slice(1), String(body))]);
        }
      })().catch(() => undefined);
    });
    afterAll(() => router.close());

    it("an older server's whole envelope answers a new client's marked call", async () => {
      heads = [];
      answer = (_id, body) => {
        const call = decodeEnvelope(body, { maxBytes: 1 << 20 });
        return JSON.stringify({ ...call, kind: "reply", headers: {}, payload: { old: true } });
      };
      const e = envelope("echo", { n: 1 });
      expect(await client.call(endpoint, e, within(5000))).toMatchObject({ kind: "reply", payload: { old: true } });
      expect(heads).toEqual([`C%${e.id}`]);
    });

    it("malformed compact replies fail their call INTERNAL and the client keeps working", async () => {
      for (const body of ["!null", '!"down"', "={not json", '={"__proto__":{"polluted":true}}']) {
        answer = () => body;
        const e = await rejection(() => client.call(endpoint, envelope("echo", { n: 2 }), within(5000)));
        expect([body, e.code, e.message.includes("malformed reply")]).toEqual([body, "INTERNAL", true]);
      }
      answer = () => "=";
      expect(await client.call(endpoint, envelope("empty", {}), within(5000))).toMatchObject({
        kind: "reply",
        payload: undefined,
      });
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });
  });
});
