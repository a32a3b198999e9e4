/**
 * `fanc ls` and `fanc config` as a user runs them: `bin/fanc.mjs` in a child process, against
 * the shared etcd (a unique cluster per run).
 */
import { execFile } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RegistryDirectory } from "../../src/runtime/discovery/directory.js";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const bin = join(repo, "bin/fanc.mjs");

interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `fanc ...args` in `cwd`; resolves with its exit code and output. */
function fanc(args: readonly string[], cwd = repo): Promise<Ran> {
  return new Promise((resolveRun) => {
    execFile(process.execPath, [bin, ...args], { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
      resolveRun({ code, stdout, stderr });
    });
  });
}

const D = ["--discovery", `etcd://${SHARED_ETCD}`];

describeEtcd("fanc ls (child process)", () => {
  const cluster = randomCluster();
  const C = [...D, "--cluster", cluster];
  let reg: EtcdRegistry;
  let dir: RegistryDirectory;
  beforeAll(async () => {
    reg = new EtcdRegistry(SHARED_ETCD);
    dir = new RegistryDirectory(reg, { cluster, appId: "app-1" });
    const base = { version: "1.0.0", shards: [], appId: "app-1" };
    await dir.register({ ...base, service: "retail.wines.PublicWines", instanceId: "w1", endpoints: { http: "http://127.0.0.1:8080" } });
    await dir.register({ ...base, service: "retail.Sync", instanceId: "s1", endpoints: { zmq: "tcp://127.0.0.1:5555" } });
    await dir.register({ ...base, service: "lab.Sync", instanceId: "s2", endpoints: { zmq: "tcp://127.0.0.1:5556" } });
  });
  afterAll(async () => {
    await dir.close();
    await reg.close();
  });

  it("accepts a service's short name when it is unambiguous", async () => {
    const r = await fanc(["ls", "PublicWines", ...C]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^INSTANCE\s+VERSION\s+ENDPOINTS/);
    expect(r.stdout).toMatch(/\nw1\s+1\.0\.0\s+http=http:\/\/127\.0\.0\.1:8080/);
    const mid = await fanc(["ls", "wines.PublicWines", ...C]);
    expect(mid.stdout).toMatch(/\nw1\s+/);
  }, 90_000);

  it("refuses an ambiguous short name, naming the candidates", async () => {
    const r = await fanc(["ls", "Sync", ...C]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`fanc ls: "Sync" is ambiguous in cluster "${cluster}": lab.Sync, retail.Sync; give the full name`);
    const full = await fanc(["ls", "retail.Sync", ...C]);
    expect(full.stdout).toMatch(/\ns1\s+/);
    const none = await fanc(["ls", "Nope", ...C]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no instances of Nope in cluster');
  }, 90_000);

  it("an unreachable registry is one line naming the endpoint, without gRPC text", async () => {
    const r = await fanc(["ls", "--discovery", "etcd://127.0.0.1:1", "--cluster", cluster]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("fanc ls: cannot reach the registry at etcd://127.0.0.1:1 (connection refused)\n");
    const viaEnv = await new Promise<Ran>((resolveRun) => {
      execFile(process.execPath, [bin, "ls"], { cwd: repo, env: { ...process.env, FAN_DISCOVERY: "etcd://127.0.0.1:1" } }, (err, stdout, stderr) =>
        resolveRun({ code: typeof err?.code === "number" ? err.code : 0, stdout, stderr }),
      );
    });
    expect(viaEnv.stderr).toBe("fanc ls: cannot reach the registry at etcd://127.0.0.1:1 (connection refused)\n");
  }, 90_000);
});
