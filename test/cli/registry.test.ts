/**
 * `fanc ls` and `fanc config` as a user runs them: `bin/fanc.mjs` in a child process, against
 * the shared etcd (a unique cluster per run).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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
    await dir.register({
      ...base,
      service: "retail.wines.PublicWines",
      instanceId: "w1",
      endpoints: { http: "http://127.0.0.1:8080" },
    });
    await dir.register({
      ...base,
      service: "retail.Sync",
      instanceId: "s1",
      endpoints: { zmq: "tcp://127.0.0.1:5555" },
    });
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
    expect(r.stderr.trim()).toBe(
      `fanc ls: "Sync" is ambiguous in cluster "${cluster}": lab.Sync, retail.Sync; give the full name`,
    );
    const full = await fanc(["ls", "retail.Sync", ...C]);
    expect(full.stdout).toMatch(/\ns1\s+/);
    const none = await fanc(["ls", "Nope", ...C]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("no instances of Nope in cluster");
  }, 90_000);

  it("a stopping instance of a sharded service (a graceful stop's hand-over) owns none: its shards are the others', it releases", async () => {
    const base = { version: "1.0.0", shards: [], appId: "app-1", shardCount: 4, service: "retail.Carts" };
    await dir.register({ ...base, instanceId: "c1", endpoints: { nats: "nats://c1" } });
    const c2 = await dir.register({ ...base, instanceId: "c2", endpoints: { nats: "nats://c2" } });
    const before = await fanc(["ls", "retail.Carts", ...C]);
    const held = /\nc2\s+\S+\s+\S+\s+(\S+)\/4/.exec(before.stdout)?.[1];
    expect(held, before.stdout).toBeDefined();
    await c2.update({ serving: [1, 2], releasingUntil: Date.now() + 10_000, stopping: true });
    const r = await fanc(["ls", "retail.Carts", ...C]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/\nc1\s+1\.0\.0\s+nats=nats:\/\/c1\s+0-3\/4\s/);
    expect(r.stdout).toMatch(/\nc2\s+1\.0\.0\s+nats=nats:\/\/c2\s+stopping, releasing 1-2\/4\s/);
    const json = JSON.parse((await fanc(["ls", "retail.Carts", "--json", ...C])).stdout) as {
      instanceId: string;
      ownedShards: number[];
    }[];
    expect(Object.fromEntries(json.map((i) => [i.instanceId, i.ownedShards]))).toEqual({ c1: [0, 1, 2, 3], c2: [] });
  }, 90_000);

  it("an unreachable registry is one line naming the endpoint, without gRPC text", async () => {
    const r = await fanc(["ls", "--discovery", "etcd://127.0.0.1:1", "--cluster", cluster]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("fanc ls: cannot reach the registry at etcd://127.0.0.1:1 (connection refused)\n");
    const viaEnv = await new Promise<Ran>((resolveRun) => {
      execFile(
        process.execPath,
        [bin, "ls"],
        { cwd: repo, env: { ...process.env, FAN_DISCOVERY: "etcd://127.0.0.1:1" } },
        (err, stdout, stderr) => resolveRun({ code: typeof err?.code === "number" ? err.code : 0, stdout, stderr }),
      );
    });
    expect(viaEnv.stderr).toBe("fanc ls: cannot reach the registry at etcd://127.0.0.1:1 (connection refused)\n");
  }, 90_000);
});

const IDL = ["--idl", join(repo, "test/cli/fixtures/config-idl")];

describeEtcd("fanc config checks against the IDL (child process)", () => {
  const cluster = randomCluster();
  const C = [...D, "--cluster", cluster, ...IDL];
  const tmp = mkdtempSync(join(tmpdir(), "fan-config-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  async function json(service: string): Promise<unknown> {
    const r = await fanc(["config", "get", service, "--json", "--show-secrets", ...C]);
    expect(r.stderr).toBe("");
    return JSON.parse(r.stdout);
  }

  it("set refuses a wrong type, a broken constraint and an unknown key, naming each, and writes nothing", async () => {
    expect((await fanc(["config", "set", "retail.Wines", "pageSize=50", ...C])).code).toBe(0);
    const r = await fanc([
      "config",
      "set",
      "Wines",
      "pageSize=0",
      "enabled=maybe",
      "colour=red",
      "name=ok",
      "apiKey=31337",
      ...C,
    ]);
    expect(r.code).toBe(1);
    const line = r.stderr.trim();
    expect(line).toMatch(/^fanc config: config of retail\.Wines refused, nothing written: /);
    expect(line).toMatch(/pageSize[^;]*(min|at least|>=|1)/);
    expect(line).toMatch(/enabled[^;]*bool/);
    expect(line).toContain('unknown key "colour" (retail.Wines has pageSize, tags, name, enabled, apiKey, db)');
    // A wrong @secret value is named by its key, never quoted.
    expect(line).toContain("apiKey: expected a string (the value is @secret: not shown)");
    expect(line).toContain(`(YAML read a number: quote it for a string, apiKey='"…"')`);
    expect(line).not.toContain("31337");
    expect(line.split("\n")).toHaveLength(1);
    expect(await json("retail.Wines")).toEqual({ pageSize: 50 });
    const nested = await fanc(["config", "set", "retail.Wines", "db={url: x, poolSize: 0}", ...C]);
    expect(nested.code).toBe(1);
    expect(nested.stderr).toMatch(/db\.poolSize/);
    const required = await fanc(["config", "set", "retail.Sync", "interval=null", ...C]);
    expect(required.code).toBe(1);
    expect(required.stderr).toContain("interval is required and cannot be deleted");
  }, 120_000);

  it("get masks @secret fields unless --show-secrets; set prints them masked too", async () => {
    const set = await fanc(["config", "set", "retail.Wines", "apiKey=hunter2", "name=shop", ...C]);
    expect(set.code).toBe(0);
    expect(set.stdout).not.toContain("hunter2");
    const r = await fanc(["config", "get", "Wines", "--json", ...C]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ apiKey: "[secret]", name: "shop" });
    expect(r.stdout).not.toContain("hunter2");
    const key = await fanc(["config", "get", "retail.Wines", "apiKey", ...C]);
    expect(key.stdout.trim()).toBe('"[secret]"'); // YAML quotes it
    expect(await json("retail.Wines")).toMatchObject({ apiKey: "hunter2" });
  }, 120_000);

  it("get of an unknown service, an ambiguous short name or a missing file is an error", async () => {
    const unknown = await fanc(["config", "get", "retail.Nope", ...C]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim()).toBe(
      'fanc config: unknown service "retail.Nope": the IDL at ' +
        join(repo, "test/cli/fixtures/config-idl") +
        " has lab.Sync, retail.Other, retail.Sync, retail.Watched, retail.Wines",
    );
    const ambiguous = await fanc(["config", "get", "Sync", ...C]);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain('"Sync" is ambiguous in the IDL');
    const missing = await fanc(["config", "get", "retail.Wines", "--file", join(tmp, "nope.yml"), ...IDL]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe(`fanc config: no config file at ${join(tmp, "nope.yml")}`);
    const noIdl = await fanc([
      "config",
      "get",
      "retail.Wines",
      "--idl",
      join(tmp, "no-idl"),
      ...D,
      "--cluster",
      cluster,
    ]);
    expect(noIdl.code).toBe(1);
    expect(noIdl.stderr).toContain(`cannot read the IDL at ${join(tmp, "no-idl")}`);
  }, 120_000);

  it("set on a YAML file checks the same way; push writes nothing when one service's config is wrong", async () => {
    const file = join(tmp, "settings.yml");
    writeFileSync(file, "retail.Wines:\n  pageSize: 10\n");
    const bad = await fanc(["config", "set", "retail.Wines", "pageSize=1000", "--file", file, ...IDL]);
    expect(bad.code).toBe(1);
    expect(readFileSync(file, "utf8")).toBe("retail.Wines:\n  pageSize: 10\n");
    const push = join(tmp, "push.yml");
    writeFileSync(push, "retail.Other:\n  x: 1\nretail.Sync:\n  interval: 5\n");
    const refused = await fanc(["config", "push", push, ...C]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("config of retail.Sync refused, nothing written: missing hosts");
    // Every bad value of a whole config is named, not only the first.
    writeFileSync(push, "retail.Sync:\n  interval: 0\n  hosts: [a]\n  stale: many\n");
    const two = await fanc(["config", "push", push, ...C]);
    expect(two.code).toBe(1);
    expect(two.stderr).toContain("interval: must be at least 1, got 0; stale: expected an int");
    // Nothing was written: Other has no config, and get says its required key is not set.
    const none = await fanc(["config", "get", "retail.Other", "--json", ...C]);
    expect(JSON.parse(none.stdout)).toEqual({});
    expect(none.stderr).toContain("config block of retail.Other refuses this");
    expect(none.stderr).toContain("x: required, not set");
    writeFileSync(push, "Other:\n  x: 1\n");
    const ok = await fanc(["config", "push", push, ...C]);
    expect(ok.stderr).toBe("");
    expect(await json("retail.Other")).toEqual({ x: 1 });
  }, 120_000);
});
