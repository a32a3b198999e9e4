/**
 * Issue 9 item 4, the server's half: a handler that settles after its signal aborted (its
 * deadline passed) answers DEADLINE_EXCEEDED, whatever it threw or returned. The real
 * dispatcher, fed envelopes as a transport would; the transports' suites (conformance-app.ts)
 * check the caller's half over each network transport.
 */
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Dispatcher } from "../../src/runtime/call/dispatch.js";
import { newCounters } from "../../src/runtime/telemetry/stats.js";
import type { Envelope } from "../../src/runtime/transports/transport.js";
import { ConformanceService } from "../transports/fixtures/handlers.js";
import { ConformanceDescriptor } from "../transports/fixtures/generated/fan/conformance.js";

function dispatcher(): Dispatcher {
  return new Dispatcher(
    ConformanceDescriptor,
    new ConformanceService(),
    {
      service: ConformanceDescriptor.name,
      instanceId: "late-1",
      log: pino({ level: "silent" }),
      config: () => ({}),
      client: () => {
        throw new Error("no clients here");
      },
      state: () => {
        throw new Error("no states here");
      },
      hardStop: new AbortController().signal,
    },
    newCounters(),
  );
}

function call(code: string, deadline: number): Envelope {
  return {
    v: 1,
    id: `late-${code}-${deadline}`,
    kind: "call",
    service: ConformanceDescriptor.name,
    method: "fail",
    headers: { deadline },
    payload: { code, message: "late" },
  };
}

describe("a handler settling after its signal aborted", () => {
  it.each(["LATE_TEAPOT", "LATE_OK"])("%s: the answer is DEADLINE_EXCEEDED, 200 times out of 200", async (code) => {
    const d = dispatcher();
    const answers: string[] = [];
    for (let round = 0; round < 10; round++) {
      const replies = await Promise.all(
        Array.from({ length: 20 }, () => d.call(call(code, Date.now() + 20), new AbortController().signal)),
      );
      for (const r of replies) answers.push(r.kind === "error" ? (r.payload as { code: string }).code : r.kind);
    }
    expect(answers.filter((a) => a !== "DEADLINE_EXCEEDED")).toEqual([]);
    expect(answers).toHaveLength(200);
  });

  it("a handler that fails before its deadline keeps its own error", async () => {
    const reply = await dispatcher().call(call("TEAPOT", Date.now() + 5000), new AbortController().signal);
    expect(reply.payload).toMatchObject({ code: "FAILED_PRECONDITION", error: "fan.conformance.Teapot" });
  });
});
