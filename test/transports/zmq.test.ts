/**
 * The zmq transport against real zeromq sockets: the shared conformance suite (transport level
 * and end to end through Apps; events through a real event hub), with raw probes of the ROUTER
 * port.
 */
import { afterAll, expect } from "vitest";
import { startEventHub } from "../../src/runtime/transports/zmq/index.js";
import { conformance } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { rawExchange } from "./fixtures/raw-http.js";
import { rawDealer } from "./fixtures/raw-zmq.js";

const hub = await startEventHub();
afterAll(() => hub.close());

conformance("zmq", {
  app: { transports: { zmq: { events: hub, closeGraceMs: 500 } } },
  events: true,
  pushRedelivery: "sender",
  raw: {
    garbage: async (endpoint) => {
      await rawExchange(
        endpoint.replace(/^tcp:/, "http:"),
        Buffer.from("GET / HTTP/1.1\r\nhost: x\r\n\r\n\u0000\u00ff garbage"),
        500,
      );
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
      const answer = await rawDealer(endpoint, ["Cp1", body]);
      expect(answer?.[0]?.toString()).toBe("Rp1");
      expect(JSON.parse(String(answer?.[1]))).toMatchObject({ kind: "error", payload: { code: "INVALID_ARGUMENT" } });
      return true;
    },
  },
});
