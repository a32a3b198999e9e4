/**
 * One failing instance of three, routed around with no caller-visible error: three Flaky
 * servers in separate processes on zmq (etcd discovery), one of them failing every call
 * with UNAVAILABLE. The client's retries hide the first failures, its breaker for that
 * instance opens (one log line, one event), and from then on the calls go to the two others.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import type { PolicyEvent } from "../../src/runtime/policy/events.js";
import { describeWithBroker, reachable } from "../transports/amqp-broker.js";
import { Flaky } from "./fixtures/generated/fan/policytest.js";

const script = fileURLToPath(new URL("./fixtures/flaky-server.ts", import.meta.url));
const tsx = fileURLToPath(new URL("../../node_modules/.bin/tsx", import.meta.url));
const ETCD = (process.env.FAN_ETCD ?? "etcd://127.0.0.1:2379") as `etcd://${string}`;
const etcdUrl = new URL(ETCD.replace("etcd:", "http:"));
const up = await reachable(etcdUrl.hostname, Number(etcdUrl.port));
const cluster = `policy-${process.pid}-route-${shortId()}`;

interface Child {
  readonly proc: ChildProcessByStdio<null, Readable, Readable>;
  readonly lines: Record<string, unknown>[];
}

function server(id: string, mode: string): Promise<Child> {
  const proc = spawn(tsx, [script, cluster, id, mode], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: Record<string, unknown>[] = [];
  let buf = "";
  let err = "";
  proc.stderr.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${id} did not start: ${err}`)), 150_000);
    proc.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
        buf = buf.slice(i + 1);
        lines.push(line);
        if (line.ready === id) {
          clearTimeout(timer);
          resolve({ proc, lines });
        }
      }
    });
    proc.on("exit", (code) => reject(new Error(`${id} exited with ${code}: ${err}`)));
  });
}

function stop(c: Child): Promise<Record<string, unknown>[]> {
  return new Promise((resolve) => {
    c.proc.on("exit", () => resolve(c.lines));
    c.proc.kill("SIGTERM");
  });
}

describeWithBroker(
  up,
  "etcd",
  "policy routing",
)("a failing instance of three, over zmq between processes", () => {
  let children: Child[] = [];
  let app: App;
  const logLines: { msg: string; instanceId?: string }[] = [];

  beforeAll(async () => {
    children = await Promise.all([server("good-1", "ok"), server("good-2", "ok"), server("bad", "unavailable")]);
    app = createApp({
      cluster,
      discovery: ETCD,
      transports: { zmq: { closeGraceMs: 200 } },
      logger: pino({ level: "info" }, { write: (s: string) => logLines.push(JSON.parse(s) as { msg: string }) }),
      policy: { breaker: { failures: 3, openMs: 60_000 } },
    });
    await app.start();
    const set = await app.watch(Flaky.descriptor.name);
    const end = Date.now() + 15_000;
    while (set.instances().length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(
      set
        .instances()
        .map((i) => i.instanceId)
        .sort(),
    ).toEqual(["bad", "good-1", "good-2"]);
    // Three processes compiling TypeScript at once take long on a loaded 2-core machine.
  }, 180_000);

  afterAll(async () => {
    await app?.stop();
    await Promise.allSettled(children.map((c) => (c.proc.exitCode === null ? stop(c) : undefined)));
  });

  it("no caller sees an error; the bad instance's breaker opens once and it stops getting calls", async () => {
    const events: PolicyEvent[] = [];
    app.policy.on((e) => events.push(e));
    const client = app.client(Flaky, { transport: "zmq", strategy: "round-robin" });
    const answeredBy = new Map<string, number>();
    for (let n = 0; n < 60; n++) {
      const a = await client.read({ n });
      expect(a.n).toBe(n);
      answeredBy.set(a.instance, (answeredBy.get(a.instance) ?? 0) + 1);
    }
    expect([...answeredBy.keys()].sort()).toEqual(["good-1", "good-2"]);
    expect(app.policy.breakerStates().find((b) => b.instanceId === "bad")?.state).toBe("open");
    expect(events.filter((e) => e.type === "breaker")).toEqual([
      { type: "breaker", service: Flaky.descriptor.name, instanceId: "bad", from: "closed", to: "open" },
    ]);
    expect(logLines.filter((l) => /circuit breaker/.test(l.msg)).map((l) => l.msg)).toEqual([
      `circuit breaker of ${Flaky.descriptor.name} bad opened`,
    ]);
    const bad = children.find((c) => c.lines[0]?.ready === "bad") as Child;
    const lines = await stop(bad);
    const arrivals = lines.find((l) => "arrivals" in l)?.arrivals as number;
    // Only the failures that opened its breaker reached it.
    expect(arrivals).toBe(3);
  });
});
