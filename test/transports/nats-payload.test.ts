/**
 * How the nats rpc client and server hand a frame to nats.js: a small frame as bytes (cheaper
 * than nats.js's own TextEncoder pass), a large one as its text; the bytes on the wire are the
 * same either way.
 */
import { describe, expect, it } from "vitest";
import { payloadOf, SMALL_FRAME } from "../../src/runtime/transports/nats/rpc-client.js";

const encoder = new TextEncoder();

describe("nats rpc frame payloads", () => {
  it("hands a small frame over as the UTF-8 bytes TextEncoder would make", () => {
    const texts = [
      "#",
      `#${JSON.stringify({ id: "a1", payload: { sku: "ABC-123", qty: 3 } })}`,
      `#${JSON.stringify({ s: "héllo wörld ✓ 日本語 😀" })}`,
      // JSON.stringify escapes a lone surrogate, so frame text is always well-formed.
      `#${JSON.stringify({ s: "\ud800 alone" })}`,
      "x".repeat(SMALL_FRAME),
    ];
    for (const text of texts) {
      const out = payloadOf(text);
      expect(out).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(out as Uint8Array).equals(Buffer.from(encoder.encode(text)))).toBe(true);
    }
  });

  it("leaves a large frame as text for nats.js to encode", () => {
    const text = "y".repeat(SMALL_FRAME + 1);
    expect(payloadOf(text)).toBe(text);
  });
});
