/**
 * What a `@shard` push's producer makes of its owner's answer (owner-push.ts), whatever the
 * answer holds: an `error` envelope's payload comes off the wire, so a null, a string or an
 * unknown code is still a FanError (UNKNOWN), never a TypeError; UNAVAILABLE is tried again.
 */
import { describe, expect, it } from "vitest";
import { Code, FanError } from "../../src/runtime/errors.js";
import { pushToOwner } from "../../src/runtime/transports/owner-push.js";
import type { Envelope } from "../../src/runtime/transports/transport.js";

const push: Envelope = { v: 1, id: "p1", kind: "push", service: "s.S", method: "m", headers: {}, payload: {} };
const answer = (kind: "reply" | "error", payload: unknown): Envelope => ({ ...push, kind, payload });
const opts = () => ({ signal: new AbortController().signal, deadline: Date.now() + 5000 });

async function outcome(payloads: unknown[]): Promise<{ err: unknown; sent: number }> {
  let sent = 0;
  const send = async (): Promise<Envelope> => {
    const p = payloads[Math.min(sent++, payloads.length - 1)];
    return p === "ok" ? answer("reply", undefined) : answer("error", p);
  };
  try {
    await pushToOwner(send, push, opts());
    return { err: undefined, sent };
  } catch (err) {
    return { err, sent };
  }
}

describe("an owner's answer to a push", () => {
  it("an error payload that is not a WireError rejects with UNKNOWN, not a TypeError", async () => {
    for (const payload of [null, "boom", 7, [], { code: "TEAPOT", message: "short" }, {}]) {
      const { err, sent } = await outcome([payload]);
      expect(FanError.is(err)).toBe(true);
      expect((err as FanError).code).toBe(Code.UNKNOWN);
      expect(sent).toBe(1);
    }
    const { err } = await outcome([{ code: "TEAPOT", message: "short" }]);
    expect((err as FanError).message).toBe("short");
  });

  it("UNAVAILABLE is tried again; another code is the push's error", async () => {
    const again = await outcome([{ code: "UNAVAILABLE", message: "closing" }, "ok"]);
    expect(again).toEqual({ err: undefined, sent: 2 });
    const refused = await outcome([{ code: "NOT_FOUND", message: "no such shard" }]);
    expect((refused.err as FanError).code).toBe(Code.NOT_FOUND);
    expect((refused.err as FanError).message).toBe("no such shard");
  });
});
