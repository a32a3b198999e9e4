/**
 * zmq and tcp: a call or push waiting for the first connection to its endpoint (a peer whose
 * TCP handshake never completes: a host gone without a reset, an accept queue full) fails at
 * its deadline naming the endpoint it waited for, from the transport's own timer and from
 * `Transport.stalled` (what the client's deadline wheel asks when it fires first). The peer is
 * another process listening with an accept queue of one that never accepts (blocked in
 * `Atomics.wait`, no CPU), its queue filled first, so the kernel drops our SYNs.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FanError } from "../../src/runtime/errors.js";
import { tcpTransport } from "../../src/runtime/transports/tcp/index.js";
import type { Transport, TransportFactory } from "../../src/runtime/transports/transport.js";
import { zmqTransport } from "../../src/runtime/transports/zmq/index.js";
import { envelope, within } from "./conformance.js";
import { captureLog } from "./fixtures/log.js";

const NEVER_ACCEPTS = `
const s = require("node:net").createServer();
s.listen({ port: 0, host: "127.0.0.1", backlog: 1 }, () => {
  // A pipe write is synchronous on Linux; then blocked before the event loop could accept anything.
  process.stdout.write(s.address().port + "\\n");
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
});`;

let child: ChildProcess;
let port = 0;
const fillers: Socket[] = [];

beforeAll(async () => {
  child = spawn(process.execPath, ["-e", NEVER_ACCEPTS], { stdio: ["ignore", "pipe", "inherit"] });
  port = await new Promise<number>((r) => child.stdout?.once("data", (d) => r(Number(String(d).trim()))));
  // Fill its accept queue (two with a backlog of one, in the kernel): later connects hang.
  for (let i = 0; i < 4; i++) {
    const s = connect({ port, host: "127.0.0.1" });
    s.on("error", () => undefined);
    fillers.push(s);
  }
  // Checked: a connect made now does not complete.
  const probe = connect({ port, host: "127.0.0.1" });
  probe.on("error", () => undefined);
  fillers.push(probe);
  const made = await new Promise((r) => {
    probe.once("connect", () => r(true));
    setTimeout(() => r(false), 300);
  });
  expect(made, "a connect to the peer that never accepts completed").toBe(false);
});
afterAll(() => {
  for (const s of fillers) s.destroy();
  child?.kill();
});

const TRANSPORTS: Record<string, TransportFactory> = { zmq: zmqTransport(), tcp: tcpTransport() };

for (const [name, factory] of Object.entries(TRANSPORTS)) {
  describe(`${name}: a peer whose connection is never made`, () => {
    let t: Transport;
    beforeAll(() => {
      t = factory({ cluster: `stalled-peer-${process.pid}`, log: captureLog().log, maxPayloadBytes: 1 << 20 });
    });
    afterAll(async () => {
      await t?.close();
    });

    it("a call and a push fail at their deadline naming the endpoint; stalled names it while they wait", async () => {
      const endpoint = `tcp://127.0.0.1:${port}`;
      const outcome = (e: unknown): string => (FanError.is(e) ? `${e.code} ${e.message}` : String(e));
      const call = t.call(endpoint, envelope("echo", { n: 1 }), within(400)).then(() => "answered", outcome);
      const push = t.push(endpoint, envelope("record", { id: "p" }), within(400)).then(() => "answered", outcome);
      await new Promise((r) => setTimeout(r, 100));
      for (const kind of ["call", "push"] as const)
        expect(t.stalled?.(kind, endpoint, {})?.message, kind).toBe(
          `${name} ${endpoint} not connected before the deadline`,
        );
      // Another endpoint, never used: nothing waits on it.
      expect(t.stalled?.("call", "tcp://127.0.0.1:1", {})).toBeUndefined();
      for (const o of [await call, await push]) {
        expect(o).toMatch(/^DEADLINE_EXCEEDED /);
        expect(o).toContain(`${endpoint} not connected before the deadline`);
      }
    }, 10_000);
  });
}
