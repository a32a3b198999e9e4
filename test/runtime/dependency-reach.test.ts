/**
 * Trial 2, finding 5: a hard dependency that is registered but shares no transport with the
 * App used to satisfy `start`, and every call then failed "no common transport". Now start
 * waits for an instance it can reach, as it waits for an absent one: it warns naming both
 * sides' transports, starts once a reachable instance registers, and fails at
 * `dependencyTimeoutMs` with UNAVAILABLE naming the mismatch. Every App in a process of its
 * own on etcd: Conformance from test/transports/fixtures/child-app.ts, its dependent from
 * fixtures/dependent-app.ts. `/ready` applies the same rule.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import type { InstanceInfo, InstanceSet } from "../../src/runtime/discovery/types.js";
import { Telemetry } from "../../src/runtime/telemetry/index.js";
import { newCounters } from "../../src/runtime/telemetry/stats.js";
import { ConformanceDescriptor } from "../transports/fixtures/generated/fan/conformance.js";
import { type ChildApp, childApp } from "../transports/child.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";

const dependent = fileURLToPath(new URL("./fixtures/dependent-app.ts", import.meta.url));
const tsx = fileURLToPath(new URL("../../node_modules/.bin/tsx", import.meta.url));

interface Line {
  event: string;
  msg?: string;
  code?: string;
  message?: string;
}

/** Runs the dependent App; `lines` fills as it prints, `exited` resolves with them all. */
function runDependent(cluster: string, transports: string, timeoutMs: number) {
  const child = spawn(tsx, [dependent, SHARED_ETCD, cluster, String(timeoutMs)], {
    env: { ...process.env, DEP_TRANSPORTS: transports },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: Line[] = [];
  let buf = "";
  child.stdout?.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      lines.push(JSON.parse(buf.slice(0, i)) as Line);
      buf = buf.slice(i + 1);
    }
  });
  const exited = new Promise<Line[]>((resolve) => child.on("exit", () => resolve(lines)));
  return { child, lines, exited };
}

async function until(what: string, fn: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describeEtcd("a hard dependency registered on transports this App lacks (processes, etcd)", () => {
  const children: ChildApp[] = [];
  afterEach(async () => {
    for (const c of children.splice(0)) await c.stop();
  });
  const provider = async (cluster: string, transports: string): Promise<void> => {
    const c = childApp({
      FAN_CHILD_TRANSPORTS: transports,
      FAN_CHILD_CLUSTER: cluster,
      FAN_CHILD_SERVE: "Conformance",
      FAN_ETCD: SHARED_ETCD,
    });
    children.push(c);
    await c.next("ready");
  };

  it("start fails at dependencyTimeoutMs naming both sides' transports, after a warning", async () => {
    const cluster = randomCluster();
    await provider(cluster, "tcp");
    const lines = await runDependent(cluster, "zmq", 1500).exited;
    const failed = lines.find((l) => l.event === "start failed");
    expect(lines.map((l) => l.event)).not.toContain("ready");
    expect(failed).toMatchObject({ code: "UNAVAILABLE" });
    expect(failed?.message).toContain("the app cannot start: hard dependencies not reachable");
    expect(failed?.message).toContain("fan.conformance.Conformance ^1 (needed by test.deps.Orders)");
    expect(failed?.message).toContain("no instance this app can reach within 1500 ms");
    expect(failed?.message).toMatch(/serve on tcp, this app has zmq/);
    const warned = lines.find((l) => l.event === "log" && l.msg?.startsWith("waiting for hard dependency"));
    expect(warned?.msg).toContain("sharing no transport with this app");
    expect(warned?.msg).toMatch(/serve on tcp, this app has zmq/);
  }, 40_000);

  it("keeps waiting, and starts once an instance it can reach registers", async () => {
    const cluster = randomCluster();
    await provider(cluster, "tcp");
    const run = runDependent(cluster, "zmq", 20_000);
    await until("the warning", () => run.lines.some((l) => l.msg?.startsWith("waiting for hard dependency")));
    expect(run.lines.map((l) => l.event)).not.toContain("ready");
    await provider(cluster, "zmq,tcp");
    const lines = await run.exited;
    expect(lines.map((l) => l.event)).toContain("ready");
  }, 60_000);

  it("a dependency that shares a transport starts at once, with no warning", async () => {
    const cluster = randomCluster();
    await provider(cluster, "http,tcp");
    const lines = await runDependent(cluster, "zmq,tcp", 1500).exited;
    expect(lines.map((l) => l.event)).toEqual(["ready"]);
  }, 40_000);
});

describe("/ready with a hard dependency registered on transports this App lacks", () => {
  const orders = { ...ConformanceDescriptor, name: "test.deps.Orders", events: {}, subscriptions: [] };
  const ready = (reaches: boolean) => {
    const dependent = { ...orders, depends: [{ service: "fan.conformance.Conformance", range: "^1", soft: false }] };
    const info = {
      instanceId: "c-1",
      version: "1.0.0",
      endpoints: { tcp: "tcp://127.0.0.1:1" },
    } as unknown as InstanceInfo;
    const set: InstanceSet = { instances: () => [info], onChange: () => () => undefined, close: async () => undefined };
    const t = new Telemetry(
      { counters: newCounters(), served: () => [dependent], watch: async () => set, reaches: () => reaches },
      false,
    );
    t.health.set("running");
    return t.health.readiness();
  };

  it("is not ready, naming why, until an instance it can reach is registered", async () => {
    expect(await ready(false)).toEqual({
      ready: false,
      reasons: [
        "no instance of hard dependency fan.conformance.Conformance ^1 that this app can reach (registered ones share no transport with it)",
      ],
    });
    expect(await ready(true)).toEqual({ ready: true, reasons: [] });
  });
});
