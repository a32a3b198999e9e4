/**
 * `handleSignals` from the first step of start on, between processes over etcd and redis
 * (fixtures/slow-start-app.ts): a SIGTERM during a slow `postStart`, the instance registered and
 * serving, deregisters it at once (not when its lease expires), lets the hook end, runs the stop
 * hooks and exits 0; one while start waits for a hard dependency exits 0 at once; a second
 * signal exits 130 at once, as after start. Before, Node's default ended the process (143) and
 * the instance stayed registered until its lease expired. A start that fails by itself
 * (fixtures/failing-start-app.ts) and is signalled while it undoes itself still exits 1, and
 * every `start()` call, not only the first, is held back until the signal's stop has exited.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createTestApp } from "fan/testing";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { type App, createApp } from "../../src/runtime/index.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { describeEtcd, randomCluster, SHARED_ETCD, until } from "../discovery/helpers.js";
import { CatalogImpl, catalogConfig, PricingImpl } from "./fixtures/impl.js";
import { Catalog, Pricing } from "./fixtures/shop.js";

const slowStart = fileURLToPath(new URL("./fixtures/slow-start-app.ts", import.meta.url));
const failingStart = fileURLToPath(new URL("./fixtures/failing-start-app.ts", import.meta.url));

interface Started {
  child: ChildProcess;
  events: string[];
  exited: Promise<{ code: number | null; at: number }>;
}

function start(cluster: string, mode: "postStart" | "dependency", env: Record<string, string> = {}): Started {
  return run(slowStart, [cluster, mode], env);
}

function run(script: string, args: string[], env: Record<string, string> = {}): Started {
  const child = spawn(process.execPath, ["--import", "tsx", script, SHARED_ETCD, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const events: string[] = [];
  let buf = "";
  child.stdout?.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      events.push((JSON.parse(buf.slice(0, i)) as { event: string }).event);
      buf = buf.slice(i + 1);
    }
  });
  const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
    child.on("exit", (code) => resolve({ code, at: Date.now() })),
  );
  return { child, events, exited };
}

describeEtcd("handleSignals while the App starts (child processes, etcd, redis)", () => {
  const cluster = randomCluster();
  let watcher: App;

  beforeAll(async () => {
    watcher = createApp({ cluster, discovery: `etcd://${SHARED_ETCD}`, logger: silentLogger() });
    await watcher.start();
  });
  afterAll(() => watcher?.stop());

  it("SIGTERM during a slow postStart: deregistered at once, the hook ends, stop hooks run, exit 0", async () => {
    const set = await watcher.watch(Catalog.descriptor.name);
    const p = start(cluster, "postStart", { POST_MS: "3000" });
    await until("postStart began", () => p.events.includes("postStart began"), 60_000);
    await until("registered", () => set.instances().some((i) => i.instanceId === "slow-1"), 10_000);
    const t0 = Date.now();
    p.child.kill("SIGTERM");
    // Gone from discovery well before postStart ends (its lease is 5 s, the hook 3 s).
    await until("deregistered", () => set.instances().length === 0, 1500);
    expect(p.events).not.toContain("postStart ended");
    const { code, at } = await p.exited;
    expect(code).toBe(0);
    expect(at - t0).toBeLessThan(6000);
    // The hook ran to its end before the stop hooks; start never resolved.
    expect(p.events).toEqual(["starting", "preStart", "postStart began", "postStart ended", "stop", "postStop"]);
  }, 90_000);

  it("SIGTERM while start waits for a hard dependency: exit 0 at once, no hook ran", async () => {
    const p = start(cluster, "dependency");
    await until("starting", () => p.events.includes("starting"), 60_000);
    await new Promise((r) => setTimeout(r, 1000)); // waiting for Catalog, which never comes (30 s)
    const t0 = Date.now();
    p.child.kill("SIGTERM");
    const { code, at } = await p.exited;
    expect(code).toBe(0);
    expect(at - t0).toBeLessThan(3000);
    expect(p.events).toEqual(["starting"]);
  }, 90_000);

  it("a second signal during start exits 130 at once, without the stop hooks", async () => {
    const p = start(cluster, "postStart", { POST_MS: "8000" });
    await until("postStart began", () => p.events.includes("postStart began"), 60_000);
    p.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    p.child.kill("SIGINT");
    const { code, at } = await p.exited;
    expect(code).toBe(130);
    expect(at - t0).toBeLessThan(1000);
    expect(p.events).not.toContain("stop");
  }, 90_000);
});

describeEtcd("a start that fails by itself, signalled while it undoes itself (child processes)", () => {
  it("without a signal: start() rejects, exit 1", async () => {
    const p = run(failingStart, [randomCluster()], { STOP_MS: "500" });
    expect((await p.exited).code).toBe(1);
    expect(p.events).toContain("start rejected");
  }, 60_000);

  it("SIGTERM while its stop hook runs: the hook ends, exit 1 (not 0), start() held back", async () => {
    const p = run(failingStart, [randomCluster()], { STOP_MS: "2000" });
    await until("stop began", () => p.events.includes("stop began"), 60_000);
    p.child.kill("SIGTERM");
    const { code } = await p.exited;
    // Before, the signal's stop exited 0: a supervisor that restarts on failure saw success.
    expect({ code, events: p.events }).toEqual({
      code: 1,
      events: ["starting", "preStart", "start failing", "stop began", "stop ended"],
    });
  }, 60_000);
});

/** Stubs `process.exit` and records each call with what had settled by then. */
function stubExit(settled: string[]): { exits: Array<{ code: unknown; settled: string[] }>; restore: () => void } {
  const exits: Array<{ code: unknown; settled: string[] }> = [];
  const spy = vi.spyOn(process, "exit").mockImplementation(((code?: number) => {
    exits.push({ code, settled: [...settled] });
  }) as never);
  return { exits, restore: () => spy.mockRestore() };
}

function record(p: Promise<void>, name: string, settled: string[]): void {
  p.then(
    () => settled.push(`${name} resolved`),
    (e: Error) => settled.push(`${name} rejected: ${e.message}`),
  );
}

async function untilExit(exits: unknown[]): Promise<void> {
  for (let i = 0; i < 200 && exits.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 50));
}

it("every start() call is held back after a signal until the stop has exited 0 (in process, exit stubbed)", async () => {
  const settled: string[] = [];
  const { exits, restore } = stubExit(settled);
  try {
    // Pricing's hard dependency Catalog never comes: start waits (up to 10 s).
    const app = createTestApp({ handleSignals: true, dependencyTimeoutMs: 10_000 }).serve(Pricing, new PricingImpl());
    record(app.start(), "first", settled);
    record(app.start(), "second", settled); // a second caller (before, it rejected before the stop ended)
    await new Promise((r) => setTimeout(r, 200));
    process.emit("SIGTERM", "SIGTERM");
    await untilExit(exits);
    expect(exits).toEqual([{ code: 0, settled: [] }]);
    // Only because exit returned (stubbed): the calls end rather than hang.
    expect(settled.sort()).toEqual([
      "first rejected: the app cannot start: it was stopped while starting",
      "second rejected: the app cannot start: it was stopped while starting",
    ]);
  } finally {
    restore();
  }
});

it("a signal while a failed start undoes itself exits 1 once the stop hook ended (in process, exit stubbed)", async () => {
  const settled: string[] = [];
  const { exits, restore } = stubExit(settled);
  const before = process.listenerCount("SIGTERM");
  try {
    const events: string[] = [];
    class FailingCatalog extends CatalogImpl {
      override start(): void {
        throw new Error("cannot open the database");
      }
      override async stop(): Promise<void> {
        events.push("stop began");
        await new Promise((r) => setTimeout(r, 300));
        events.push("stop ended");
      }
    }
    const app = createTestApp({ handleSignals: true }).serve(Catalog, new FailingCatalog(), { config: catalogConfig });
    record(app.start(), "start", settled);
    for (let i = 0; i < 100 && !events.includes("stop began"); i++) await new Promise((r) => setTimeout(r, 10));
    process.emit("SIGTERM", "SIGTERM");
    await untilExit(exits);
    expect(events).toEqual(["stop began", "stop ended"]);
    expect(exits).toEqual([{ code: 1, settled: [] }]);
    expect(settled).toEqual(["start rejected: cannot open the database"]);
    expect(process.listenerCount("SIGTERM")).toBe(before);
  } finally {
    restore();
  }
});

it("a start that fails by itself removes the signal handlers it installed (in process)", async () => {
  const before = process.listenerCount("SIGTERM");
  const app = createTestApp({ handleSignals: true, dependencyTimeoutMs: 100 }).serve(Pricing, new PricingImpl());
  const started = app.start();
  expect(process.listenerCount("SIGTERM")).toBe(before + 1);
  await expect(started).rejects.toThrow(/hard dependencies not discoverable/);
  expect(process.listenerCount("SIGTERM")).toBe(before);
  await app.stop();
});
