/**
 * The http transport against its real server: the shared conformance suite (transport level
 * and end to end through Apps), with raw probes of the port (garbage bytes, a `__proto__` body).
 */
import { expect } from "vitest";
import { conformance } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { httpRequest, rawExchange } from "./fixtures/raw-http.js";

conformance("http", {
  app: { transports: { http: { closeGraceMs: 500 } } },
  events: false,
  pushRedelivery: "sender",
  raw: {
    garbage: async (endpoint) => {
      const answer = await rawExchange(endpoint, Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a]));
      expect(answer).toMatch(/^HTTP\/1\.1 400/);
    },
    proto: async (endpoint) => {
      const body = '{"n":1,"__proto__":{"polluted":true}}';
      const answer = await httpRequest(endpoint, "POST", `/${ConformanceDescriptor.name}/echo`, body, {
        "content-type": "application/json",
      });
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body)).toMatchObject({ code: "INVALID_ARGUMENT" });
      return true;
    },
  },
});
