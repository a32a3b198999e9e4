import { describe, expect, it } from "vitest";
import { FanError } from "../../src/runtime/errors.js";
import type { Envelope } from "../../src/runtime/transports/transport.js";
import { checkJsonValue, decodeEnvelope, encodeEnvelope, parseJson } from "../../src/runtime/codec/wire.js";

const limits = { maxBytes: 1024 * 1024 };
const env: Envelope = {
  v: 1,
  id: "c1",
  kind: "call",
  service: "retail.wines.PublicWines",
  method: "get",
  version: "2.1.0",
  headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", deadline: 1_700_000_000_000, "x-tenant": "t1" },
  payload: { storeId: "s1", nested: { list: [1, "two", null, { deep: true }] } },
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(FanError.is(e)).toBe(true);
    return (e as FanError).code;
  }
  return undefined;
}

describe("wire", () => {
  it("round-trips an envelope with headers and payload intact", () => {
    const back = decodeEnvelope(encodeEnvelope(env), limits);
    expect(back).toEqual(env);
  });

  it("never puts the in-process form marker on the wire", () => {
    const bytes = encodeEnvelope({ ...env, form: "value" });
    expect(JSON.parse(bytes.toString())).not.toHaveProperty("form");
  });

  it("rejects a message over the size bound with RESOURCE_EXHAUSTED", () => {
    const big = encodeEnvelope({ ...env, payload: "x".repeat(2000) });
    expect(codeOf(() => decodeEnvelope(big, { maxBytes: 1000 }))).toBe("RESOURCE_EXHAUSTED");
  });

  it.each([
    ["garbage bytes", Buffer.from([0xff, 0x00, 0x13, 0x37])],
    ["truncated JSON", '{"v":1,"id":"x"'],
    ["an array", "[1,2,3]"],
    ["wrong version", '{"v":2,"id":"x","kind":"call","service":"s","method":"m","headers":{}}'],
    ["unknown kind", '{"v":1,"id":"x","kind":"shout","service":"s","method":"m","headers":{}}'],
    ["missing id", '{"v":1,"kind":"call","service":"s","method":"m","headers":{}}'],
    ["object header value", '{"v":1,"id":"x","kind":"call","service":"s","method":"m","headers":{"a":{}}}'],
  ])("rejects %s with INVALID_ARGUMENT", (_name, bytes) => {
    expect(codeOf(() => decodeEnvelope(bytes, limits))).toBe("INVALID_ARGUMENT");
  });

  it.each(["__proto__", "constructor", "prototype"])("rejects a %s key anywhere in the payload", (key) => {
    const text = `{"v":1,"id":"x","kind":"call","service":"s","method":"m","headers":{},"payload":{"a":[{"${key}":{"polluted":true}}]}}`;
    expect(codeOf(() => decodeEnvelope(text, limits))).toBe("INVALID_ARGUMENT");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("rejects nesting past the bound without overflowing the stack", () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    expect(codeOf(() => parseJson(deep, { maxBytes: 1_000_000, maxDepth: 64 }))).toBe("INVALID_ARGUMENT");
    const ok = `${"[".repeat(10)}${"]".repeat(10)}`;
    expect(() => parseJson(ok, { maxBytes: 1000, maxDepth: 64 })).not.toThrow();
  });

  it("checks values built in memory too", () => {
    const v = JSON.parse('{"ok":{"__proto__":1}}');
    expect(codeOf(() => checkJsonValue(v))).toBe("INVALID_ARGUMENT");
    expect(() => checkJsonValue({ a: [1, { b: "c" }] })).not.toThrow();
  });
});

describe("wire error paths", () => {
  it("names the path of a forbidden key and of the level that is too deep", () => {
    try {
      checkJsonValue(JSON.parse('{"a":[0,{"b":{"__proto__":1}}]}'));
      expect.unreachable();
    } catch (e) {
      expect((e as FanError).message).toBe('forbidden key "__proto__" at $.a[1].b.__proto__');
    }
    try {
      checkJsonValue({ x: [[[]]] }, 3);
      expect.unreachable();
    } catch (e) {
      expect((e as FanError).message).toBe("JSON nested deeper than 3 levels at $.x[0][0]");
    }
  });
});
