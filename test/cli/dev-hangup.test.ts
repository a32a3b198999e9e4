/**
 * `fanc dev` never leaves its service behind (a real fanc dev process on a `fanc new service`
 * project, as dev.test.ts runs it, served on Redis with etcd discovery): SIGHUP (a closed
 * terminal, a dropped SSH session) stops the service gracefully, as Ctrl-C does, and it leaves
 * discovery; a fanc that is SIGKILLed cannot stop it, so the watch fanc preloads into it sends it
 * SIGTERM once its parent is gone. Before, both left the service running with PPID 1, registered
 * and holding its ports, and the next `fanc dev` ran a second copy.
 */
import { mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { alive, type CapturedChild, runFanc, spawnCaptured, until } from "./helpers.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const rel = `.tmp/dev-hup-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const dir = join(repo, rel);

describeEtcd("fanc dev: SIGHUP and a dead fanc stop the service (child processes)", () => {
  const env = { FAN_CLUSTER: randomCluster(), FAN_DISCOVERY: `etcd://${SHARED_ETCD}` };
  const devs: CapturedChild[] = [];

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    const made = await runFanc(["new", "service", "Dev", "--dir", rel]);
    expect(made.code, made.stderr).toBe(0);
  }, 150_000);

  afterAll(async () => {
    for (const d of devs) d.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  /** Starts `fanc dev` and waits until its service serves; resolves with the service's pid. */
  const startDev = async (): Promise<{ dev: CapturedChild; pid: number }> => {
    const args = ["bin/fanc.mjs", "dev", `${rel}/idl`, "--out", `${rel}/generated`, "--run", `${rel}/src/main.ts`];
    const dev = spawnCaptured(process.execPath, args, env);
    devs.push(dev);
    await until("the service serves", () => /Dev serving over redis/.test(dev.stdout()), 120_000);
    const m = /^fanc dev: started \S+ \(pid (\d+)\)$/m.exec(dev.stdout());
    if (m === null) throw new Error(`no pid in:\n${dev.stdout()}\n${dev.stderr()}`);
    return { dev, pid: Number(m[1]) };
  };
  /** Whether fanc ls lists Dev in the test's cluster. */
  const registered = async (): Promise<boolean> => {
    const r = await runFanc(["ls"], env);
    expect(r.code, r.stderr).toBe(0);
    return /Dev/.test(r.stdout);
  };
  const gone = async (what: string, pid: number, ms: number): Promise<void> => {
    await until(what, () => !alive(pid), ms);
    expect(await registered()).toBe(false);
  };

  it("SIGHUP: fanc stops the service (one SIGTERM, drained) and exits 0; it is no longer registered", async () => {
    const { dev, pid } = await startDev();
    expect(await registered()).toBe(true);
    dev.child.kill("SIGHUP");
    expect(await dev.exited).toBe(0);
    expect(alive(pid)).toBe(false);
    expect(await registered()).toBe(false);
  }, 200_000);

  it("fanc SIGKILLed: the service stops itself within seconds and deregisters", async () => {
    const { dev, pid } = await startDev();
    expect(await registered()).toBe(true);
    dev.child.kill("SIGKILL");
    await dev.exited;
    await gone("the orphaned service to exit", pid, 5000);
  }, 200_000);
});
