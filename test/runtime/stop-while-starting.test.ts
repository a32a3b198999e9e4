/**
 * A stop while the App is still starting ends the start, on every broker transport: with the
 * broker unreachable, serving waits up to `connectTimeoutMs` (10 s) for a connection, and a
 * `stop()` from the App's own code (a shutdown path, a test, a supervisor) used to wait that out
 * before anything closed. (A signal during start, with `handleSignals`, takes this path too:
 * signals-while-starting.test.ts.)
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createApp } from "fan/runtime";
import { afterEach, expect, it } from "vitest";
import { Code, FanError } from "../../src/runtime/errors.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import type { TransportName } from "../../src/runtime/descriptor.js";
import { freePort } from "../transports/amqp-broker.js";
import { CatalogImpl, catalogConfig } from "./fixtures/impl.js";
import { Catalog } from "./fixtures/shop.js";

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.allSettled(stops.splice(0).map((s) => s()));
});

const dead = {
  nats: (port: number) => natsTransport({ url: `nats://127.0.0.1:${port}` }),
  amqp: (port: number) => amqpTransport({ url: `amqp://guest:guest@127.0.0.1:${port}` }),
  redis: (port: number) => redisTransport({ url: `redis://127.0.0.1:${port}` }),
} as const;

it.each(Object.keys(dead) as Array<keyof typeof dead>)(
  "%s: stop during a start waiting for an unreachable broker ends both within seconds, not at connectTimeoutMs",
  async (name) => {
    const port = await freePort(); // nothing listens there
    const app = createApp({ logger: silentLogger(), transports: { [name]: dead[name](port) } }).serve(
      Catalog,
      new CatalogImpl(),
      { config: catalogConfig, transports: [name as TransportName] },
    );
    stops.push(() => app.stop());
    const t0 = Date.now();
    const started = app.start().then(
      () => "started",
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 300));
    await app.stop();
    const stoppedAfter = Date.now() - t0;
    const outcome = await started;
    expect(outcome).toBeInstanceOf(FanError);
    expect((outcome as FanError).code).toBe(Code.CANCELLED);
    expect((outcome as FanError).message).toContain("stopped while starting");
    // The broker's own connect timeout is 10 s; the stop came at 0.3 s.
    expect(stoppedAfter).toBeLessThan(5000);
  },
  20_000,
);

const script = fileURLToPath(new URL("./fixtures/stop-while-starting.ts", import.meta.url));

it.each(Object.keys(dead))(
  "%s: a process stopped while starting against an unreachable broker exits by itself within seconds",
  async (name) => {
    const port = await freePort();
    const child = spawn(process.execPath, ["--import", "tsx", script, name, String(port)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    let lineAt = Number.NaN;
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("\n") && Number.isNaN(lineAt)) lineAt = Date.now();
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    const afterLineMs = Date.now() - lineAt;
    expect(code).toBe(0);
    const line = JSON.parse(out.trim()) as { start: string; stoppedMs: number };
    expect(line.start).toContain("stopped while starting");
    expect(line.stoppedMs).toBeLessThan(5000);
    // Nothing left waiting for the broker holds the process (a serve's wait did, until its 10 s
    // connect timeout); ioredis gives a socket still connecting 2 s to close.
    expect(afterLineMs).toBeLessThan(5000);
  },
  30_000,
);
