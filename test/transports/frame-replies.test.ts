/**
 * Reply items of batch frames (replies.ts): a client whose call frame starts with `%` gets a
 * plain reply or error as `=` / `!` and its payload's JSON; anything else, and every reply to a
 * `#` frame (an older client), is the reply envelope. The client reads both forms, and a compact
 * item gets the same bounds and checks as an envelope.
 */
import { describe, expect, it } from "vitest";
import { FanError } from "../../src/runtime/errors.js";
import {
  FrameBuilder,
  frameText,
  isBatch,
  readBatch,
  readBatchText,
  wantsCompact,
} from "../../src/runtime/transports/batch-frame.js";
import {
  COMPACT_ID_MARK,
  decodeFrameReply,
  encodeFrameReply,
  wantsCompactReply,
} from "../../src/runtime/transports/replies.js";
import type { Envelope } from "../../src/runtime/transports/transport.js";

const base = { v: 1, id: "c1-7", service: "shop.Cart", method: "add", version: "1.2.0" } as const;
const ok = (payload: unknown, headers: Envelope["headers"] = {}): Envelope => ({
  ...base,
  kind: "reply",
  headers,
  payload,
});
const failed: Envelope = { ...base, kind: "error", headers: {}, payload: { code: "NOT_FOUND", message: "no cart" } };

const bytes = (s: string): Uint8Array => Buffer.from(s, "utf8");
const limits = 1 << 20;

describe("reply items of batch frames", () => {
  it("to a `%` frame a reply is `=` and its payload, an error `!` and its WireError", () => {
    expect(encodeFrameReply(ok({ total: 37.5 }), true)).toBe('={"total":37.5}');
    expect(encodeFrameReply(ok(undefined), true)).toBe("=");
    expect(encodeFrameReply(ok(null), true)).toBe("=null");
    expect(encodeFrameReply(failed, true)).toBe('!{"code":"NOT_FOUND","message":"no cart"}');
    // A payload JSON cannot hold (a function from a hand-written Inbound) is left out, as in an envelope.
    expect(
      encodeFrameReply(
        ok(() => 1),
        true,
      ),
    ).toBe("=");
    expect(
      JSON.parse(
        encodeFrameReply(
          ok(() => 1),
          false,
        ),
      ),
    ).not.toHaveProperty("payload");
  });

  it("to a `#` frame, or with headers, the reply is its whole envelope", () => {
    for (const [env, compact] of [
      [ok({ total: 1 }), false],
      [failed, false],
      [ok({ total: 1 }, { "x-served-by": "a" }), true],
    ] as const) {
      const text = encodeFrameReply(env, compact);
      expect(text.startsWith("{")).toBe(true);
      expect(JSON.parse(text)).toEqual({ ...env });
    }
  });

  // Bytes (nats, amqp, zmq) or text (redis replies travel as strings).
  const forms: Array<[string, (s: string) => Uint8Array | string]> = [
    ["bytes", bytes],
    ["text", (s) => s],
  ];

  it.each(forms)("the client reads both forms, naming the service it called (%s)", (_, as) => {
    for (const env of [ok({ total: 37.5 }), ok(undefined), ok(null), ok([1, "two"]), failed]) {
      const compact = decodeFrameReply(as(encodeFrameReply(env, true)), limits, "shop.Cart") as Envelope;
      expect(compact.kind).toBe(env.kind);
      expect(compact.payload).toEqual(env.payload);
      expect(compact.service).toBe("shop.Cart");
      const whole = decodeFrameReply(as(encodeFrameReply(env, false)), limits, "shop.Cart") as Envelope;
      expect(whole).toMatchObject({ kind: env.kind, id: env.id, method: "add", version: "1.2.0" });
    }
    const h = decodeFrameReply(as(encodeFrameReply(ok(1, { a: "b" }), true)), limits, "x") as Envelope;
    expect(h.headers).toEqual({ a: "b" });
  });

  it("a correlation id asks for compact replies by its first character", () => {
    expect(wantsCompactReply(`${COMPACT_ID_MARK}a1b2.7`)).toBe(true);
    expect(wantsCompactReply("a1b2.7")).toBe(false);
    expect(wantsCompactReply("")).toBe(false);
  });

  it.each(forms)(
    "a malformed, oversized or polluting compact item is an error for its call, not a throw (%s)",
    (_, as) => {
      const cases: [string, number, string][] = [
        ["=not json", limits, "INVALID_ARGUMENT"],
        ['!{"code":', limits, "INVALID_ARGUMENT"],
        ['={"__proto__":{"admin":true}}', limits, "INVALID_ARGUMENT"],
        [`=${"[".repeat(100)}${"]".repeat(100)}`, limits, "INVALID_ARGUMENT"],
        [`="${"x".repeat(200)}"`, 100, "RESOURCE_EXHAUSTED"],
        // An error item holds a WireError object.
        ["!", limits, "INVALID_ARGUMENT"],
        ["!null", limits, "INVALID_ARGUMENT"],
        ['!"boom"', limits, "INVALID_ARGUMENT"],
        ['![{"code":"INTERNAL"}]', limits, "INVALID_ARGUMENT"],
      ];
      for (const [item, max, code] of cases) {
        const r = decodeFrameReply(as(item), max, "shop.Cart");
        expect(r).toBeInstanceOf(FanError);
        expect((r as FanError).code).toBe(code);
      }
    },
  );

  it("a call frame says which replies it takes by its first byte; both are batch frames", () => {
    const calls = new FrameBuilder("%");
    calls.add(1, '{"v":1}', 7);
    calls.add(2, '{"v":1}', 7);
    const data = bytes(calls.text);
    expect(calls.text).toBe('%1\n{"v":1}\n2\n{"v":1}');
    expect(calls.bytes).toBe(data.length);
    expect([isBatch(data), wantsCompact(data)]).toEqual([true, true]);
    const old = bytes(new FrameBuilder().text);
    expect([isBatch(old), wantsCompact(old)]).toEqual([true, false]);
    expect(isBatch(bytes('{"v":1}'))).toBe(false);
    expect(isBatch(new Uint8Array(0))).toBe(false);
    const seen: number[] = [];
    expect(readBatch(data, { item: (seq) => seen.push(seq) })).toBe(true);
    expect(seen).toEqual([1, 2]);
  });
});

describe("batch frames read as one string", () => {
  /** The items `readBatch` gives, each decoded as UTF-8 on its own, and whether the frame read. */
  const perItem = (data: Uint8Array): [number, string][] | false => {
    const out: [number, string][] = [];
    return readBatch(data, { item: (seq, body) => out.push([seq, Buffer.from(body).toString("utf8")]) }) && out;
  };
  const whole = (data: Uint8Array): [number, string][] | false => {
    const out: [number, string][] = [];
    return readBatchText(frameText(data), { item: (seq, body) => out.push([seq, body]) }) && out;
  };

  it("gives the items, non-ASCII and malformed UTF-8 included, as reading each item's bytes does", () => {
    const f = new FrameBuilder("%");
    for (const [seq, json] of [
      [7, '{"a":"é"}'],
      [12, '{"b":"😀 \\u2028"}'],
      [123456789012345, "{}"],
    ] as const)
      f.add(seq, json, Buffer.byteLength(json, "utf8"));
    const good = bytes(f.text);
    // A lone continuation byte and a truncated 3-byte sequence right before the separator.
    const bad = Buffer.concat([bytes('#1\n"'), Buffer.from([0x80, 0xe2, 0x82]), bytes('"\n2\n"\u00e9"')]);
    for (const data of [good, bad, bytes("#"), bytes("#1\n")]) expect(whole(data)).toEqual(perItem(data));
    expect(whole(good)).toEqual([
      [7, '{"a":"é"}'],
      [12, '{"b":"😀 \\u2028"}'],
      [123456789012345, "{}"],
    ]);
  });

  it("stops at the same fault as readBatch", () => {
    for (const text of ["#x\n{}", "#\n{}", "#1\n{}\n1234567890123456\n{}", "#1", "#1\n{}\n2"]) {
      const data = bytes(text);
      const seen: number[] = [];
      const ok = readBatchText(frameText(data), { item: (seq) => seen.push(seq) });
      const before: number[] = [];
      expect(ok).toBe(readBatch(data, { item: (seq) => before.push(seq) }));
      expect(seen).toEqual(before);
    }
  });
});
