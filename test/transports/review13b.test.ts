/**
 * Review of the batchlows and httpn24 merges, against real sockets and a real nats-server:
 * - an http call failing before its request is handed to undici (an endpoint that is no URL)
 *   lets go of its deadline entry and of the caller's signal: neither fires later as an
 *   unhandled rejection of the exchange nobody awaits;
 * - a closing nats server answers each call of a frame exactly once, the ones running at close
 *   and the ones still waiting for a turn alike.
 */
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { decodeEnvelope, encodeEnvelopeText } from "../../src/runtime/codec/wire.js";
import { FrameBuilder, readBatch } from "../../src/runtime/transports/batch-frame.js";
import { httpTransport } from "../../src/runtime/transports/http/index.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { rpcSubject } from "../../src/runtime/transports/nats/names.js";
import type { Envelope, Inbound } from "../../src/runtime/transports/transport.js";
import { envelope, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { NATS_URL, natsUp } from "./nats-server.js";
import { uniqueCluster } from "./processes.js";

/** Runs `fn` with the process's unhandled rejections collected (vitest's own listeners set aside). */
async function collectingUnhandled(fn: (seen: unknown[]) => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const mine = (e: unknown): void => {
    seen.push(e);
  };
  const theirs = process.listeners("unhandledRejection");
  process.removeAllListeners("unhandledRejection");
  process.on("unhandledRejection", mine);
  try {
    await fn(seen);
  } finally {
    process.off("unhandledRejection", mine);
    for (const l of theirs) process.on("unhandledRejection", l);
  }
  return seen;
}

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("http client: a call failing before undici has it", () => {
  const client = (): ReturnType<ReturnType<typeof httpTransport>> =>
    httpTransport({ closeGraceMs: 100 })({ cluster: "r13b", log: captureLog().log, maxPayloadBytes: 64 * 1024 });

  it("leaves nothing on the deadline wheel: no unhandled rejection at its deadline", async () => {
    const t = client();
    try {
      const seen = await collectingUnhandled(async () => {
        const err = await t.call("not an endpoint", envelope("echo", { n: 1 }), within(100)).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: "INVALID_ARGUMENT" });
        await tick(400);
      });
      // Before: the exchange stayed on the wheel; at the deadline it rejected its answer, which
      // nobody awaited (an unhandled rejection: Node's default mode ends the process).
      expect(seen).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it("stops watching the caller's signal: no unhandled rejection when it aborts later", async () => {
    const t = client();
    try {
      const ac = new AbortController();
      const seen = await collectingUnhandled(async () => {
        const err = await t
          .call("not an endpoint", envelope("echo", { n: 1 }), {
            signal: ac.signal,
            deadline: Number.POSITIVE_INFINITY,
          })
          .catch((e: unknown) => e);
        expect(err).toMatchObject({ code: "INVALID_ARGUMENT" });
        ac.abort();
        await tick(50);
      });
      // Before: the exchange stayed registered on the (long-lived) signal until it aborted.
      expect(seen).toEqual([]);
    } finally {
      await t.close();
    }
  });
});

const up = await natsUp();

describe.skipIf(!up)("nats server close (real nats-server)", () => {
  it("answers every call of a frame exactly once: those running at close and those still waiting", async () => {
    const cluster = uniqueCluster("r13b");
    const closing = natsTransport({ url: NATS_URL })({ cluster, log: captureLog().log, maxPayloadBytes: 4 << 20 });
    const seen = new TestInbound();
    let closed: Promise<void> | undefined;
    const slow: Inbound = {
      call: (env, signal) => {
        closed ??= closing.close();
        const end = Date.now() + 1;
        while (Date.now() < end);
        return seen.call(env, signal);
      },
      push: (env) => seen.push(env),
    };
    await closing.serve(ConformanceDescriptor, "c1", slow);
    const addr = {
      cluster,
      service: ConformanceDescriptor.name,
      version: ConformanceDescriptor.version,
      instance: "x",
    };
    const nc = await connect({ servers: NATS_URL });
    try {
      const counts = new Map<number, number>();
      const codes = new Map<number, string>();
      const inbox = `r13b.${cluster}.reply`;
      nc.subscribe(inbox, {
        callback: (_e, m) => {
          readBatch(m.data, {
            item: (s, b) => {
              counts.set(s, (counts.get(s) ?? 0) + 1);
              const env = decodeEnvelope(b, { maxBytes: 1 << 20 }) as Envelope;
              codes.set(s, env.kind === "error" ? String((env.payload as { code: string }).code) : "OK");
            },
          });
        },
      });
      await nc.flush();
      const N = 32;
      const FRAMES = 10;
      for (let f = 0; f < FRAMES; f++) {
        const frame = new FrameBuilder();
        for (let i = 1; i <= N; i++) {
          const json = encodeEnvelopeText(envelope("sleep", { ms: 200 }, { deadline: Date.now() + 20_000 }));
          frame.add(f * N + i, json, Buffer.byteLength(json));
        }
        nc.publish(rpcSubject(addr), frame.text, { reply: inbox });
      }
      await until(() => closed !== undefined);
      await closed;
      await until(() => counts.size === N * FRAMES, 5000).catch(() => undefined);
      await tick(300);
      expect(counts.size).toBe(N * FRAMES);
      expect([...counts.values()].filter((c) => c !== 1)).toEqual([]);
      // Some ran (the handler was entered), some never started.
      expect(seen.calls.length).toBeGreaterThan(0);
      expect([...codes.values()].filter((c) => c === "UNAVAILABLE").length).toBeGreaterThan(0);
    } finally {
      await nc.close();
    }
  }, 30_000);
});
