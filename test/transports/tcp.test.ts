/**
 * The tcp transport against its real server: the shared conformance suite (transport level
 * and end to end through Apps), with raw probes of the port (random bytes, a `__proto__` body).
 * tcp carries no events (like http).
 */
import { expect } from "vitest";
import { conformance } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { PREAMBLE, rawFrame, rawTcp } from "./fixtures/raw-tcp.js";

conformance("tcp", {
  app: { transports: { tcp: { closeGraceMs: 500 } } },
  events: false,
  pushRedelivery: "sender",
  raw: {
    garbage: async (endpoint) => {
      const { closed } = await rawTcp(endpoint, Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a]));
      expect(closed).toBe(true);
    },
    proto: async (endpoint) => {
      const body = JSON.stringify({
        v: 1,
        id: "p1",
        kind: "call",
        service: ConformanceDescriptor.name,
        method: "echo",
        headers: {},
      }).replace(/}$/, ',"payload":{"n":1,"__proto__":{"polluted":true}}}');
      const { frames } = await rawTcp(endpoint, Buffer.concat([PREAMBLE, rawFrame(1, 7, body)]));
      expect(frames[0]).toMatchObject({ op: 4, corr: 7 });
      expect(JSON.parse(frames[0]?.body ?? "{}")).toMatchObject({
        kind: "error",
        payload: { code: "INVALID_ARGUMENT" },
      });
      return true;
    },
  },
});
