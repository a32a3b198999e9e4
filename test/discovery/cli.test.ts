/**
 * `fanc ls` and `fanc config` against the real etcd (and a YAML file), run in-process with
 * captured output.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run as config } from "../../src/cli/config.js";
import type { Io } from "../../src/cli/io.js";
import { compactRanges, run as ls } from "../../src/cli/ls.js";
import { RegistryConfigSource } from "../../src/runtime/discovery/config.js";
import { RegistryDirectory } from "../../src/runtime/discovery/directory.js";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { SHARED_ETCD, describeEtcd, randomCluster, until } from "./helpers.js";

function capture(): Io & { stdout: string[]; stderr: string[]; text(): string } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t), text: () => stdout.join("\n") };
}

const D = ["--discovery", `etcd://${SHARED_ETCD}`];
/** The IDL of the services these tests configure. */
const IDL = ["--idl", fileURLToPath(new URL("../cli/fixtures/config-idl", import.meta.url))];

describeEtcd("fanc ls", () => {
  const cluster = randomCluster();
  let reg: EtcdRegistry;
  let dir: RegistryDirectory;
  beforeAll(async () => {
    reg = new EtcdRegistry(SHARED_ETCD);
    dir = new RegistryDirectory(reg, { cluster, appId: "app-1" });
    await dir.register({
      service: "retail.Wines",
      instanceId: "w1",
      version: "2.1.0",
      endpoints: { http: "http://127.0.0.1:8080", amqp: "amqp://127.0.0.1" },
      shards: [0, 1, 2, 5],
      zone: "eu-1",
      appId: "app-1",
    });
    await dir.register({
      service: "retail.Wines",
      instanceId: "w2",
      version: "2.2.0",
      endpoints: { http: "http://127.0.0.1:8081" },
      shards: [],
      appId: "app-1",
    });
    await dir.register({
      service: "retail.Sync",
      instanceId: "s1",
      version: "1.0.0",
      endpoints: { zmq: "tcp://127.0.0.1:5555" },
      shards: [],
      appId: "app-1",
    });
  });
  afterAll(async () => {
    await dir.close();
    await reg.close();
  });

  it("lists the services of a cluster with counts, versions and transports", async () => {
    const io = capture();
    expect(await ls([...D, "--cluster", cluster], io)).toBe(0);
    const lines = io.text().split("\n");
    expect(lines[0]).toMatch(/^SERVICE\s+INSTANCES\s+VERSIONS\s+TRANSPORTS$/);
    expect(lines[1]).toMatch(/^retail\.Sync\s+1\s+1\.0\.0\s+zmq$/);
    expect(lines[2]).toMatch(/^retail\.Wines\s+2\s+2\.1\.0,2\.2\.0\s+amqp,http$/);
  });

  it("lists one service's instances with endpoints, shards and zone; --json gives the records", async () => {
    const io = capture();
    expect(await ls([...D, "--cluster", cluster, "retail.Wines"], io)).toBe(0);
    expect(io.text()).toMatch(
      /w1\s+2\.1\.0\s+http=http:\/\/127\.0\.0\.1:8080 amqp=amqp:\/\/127\.0\.0\.1\s+0-2,5\s+eu-1\s+0\s+\d+s/,
    );
    expect(io.text()).toMatch(/w2\s+2\.2\.0\s+http=http:\/\/127\.0\.0\.1:8081\s+all\s+-/);
    const j = capture();
    expect(await ls([...D, "--cluster", cluster, "retail.Wines", "--json"], j)).toBe(0);
    expect((JSON.parse(j.text()) as { instanceId: string }[]).map((i) => i.instanceId).sort()).toEqual(["w1", "w2"]);
  });

  it("says so when a service has no instance, and fails clearly on bad input or an unreachable registry", async () => {
    const io = capture();
    expect(await ls([...D, "--cluster", cluster, "no.Such"], io)).toBe(1);
    expect(io.stderr.join()).toContain("no instances of no.Such");
    const bad = capture();
    expect(await ls(["--discovery", "zk://x", "--cluster", cluster], bad)).toBe(2);
    expect(bad.stderr.join()).toContain("etcd://");
    const opt = capture();
    expect(await ls(["--frob"], opt)).toBe(2);
    const down = capture();
    expect(await ls(["--discovery", "etcd://127.0.0.1:1", "--cluster", cluster], down)).toBe(1);
    expect(down.stderr.join()).toContain("cannot reach the registry");
  });

  it("compacts shard lists", () => {
    expect(compactRanges([5, 0, 1, 2, 9, 10])).toBe("0-2,5,9-10");
  });
});

describeEtcd("fanc config (etcd)", () => {
  const cluster = randomCluster();
  const C = [...D, "--cluster", cluster, ...IDL];
  const tmp = mkdtempSync(join(tmpdir(), "fan-cli-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("set parses YAML/JSON values, get reads them back, key=null deletes", async () => {
    const io = capture();
    expect(
      await config(["set", "retail.Wines", "pageSize=50", "tags=[a, b]", "name=plain text", "enabled=true", ...C], io),
    ).toBe(0);
    const j = capture();
    expect(await config(["get", "retail.Wines", "--json", ...C], j)).toBe(0);
    expect(JSON.parse(j.text())).toEqual({ pageSize: 50, tags: ["a", "b"], name: "plain text", enabled: true });
    const k = capture();
    expect(await config(["get", "retail.Wines", "pageSize", ...C], k)).toBe(0);
    expect(k.text()).toBe("50");
    expect(await config(["set", "retail.Wines", "name=null", ...C], capture())).toBe(0);
    const m = capture();
    expect(await config(["get", "retail.Wines", "name", ...C], m)).toBe(1);
    expect(m.stderr.join()).toContain('no key "name"');
  });

  it("push makes each service's config exactly the file's, and rejects a file that does not parse", async () => {
    await config(["set", "retail.Sync", "stale=1", ...C], capture());
    const file = join(tmp, "settings.yml");
    writeFileSync(file, "retail.Sync:\n  interval: 30\n  hosts: [a, b]\nretail.Other:\n  x: 1\n");
    const io = capture();
    expect(await config(["push", file, ...C], io)).toBe(0);
    expect(io.text()).toContain("pushed 2 key(s) to retail.Sync");
    const j = capture();
    await config(["get", "retail.Sync", "--json", ...C], j);
    expect(JSON.parse(j.text())).toEqual({ interval: 30, hosts: ["a", "b"] });
    writeFileSync(file, "retail.Sync:\n  interval: [30\n");
    const bad = capture();
    expect(await config(["push", file, ...C], bad)).toBe(1);
    expect(bad.stderr.join()).toContain("settings.yml");
  });

  it("push of 300 keys to one service: every key lands (in runs of 128, etcd's --max-txn-ops) and a watcher sees each run whole", async () => {
    const keys = Array.from({ length: 300 }, (_, i) => `k${String(i).padStart(3, "0")}`);
    const idl = join(tmp, "wide-idl");
    mkdirSync(idl);
    writeFileSync(
      join(idl, "wide.fan"),
      `package wide\n\nservice Wide {\n  config {\n${keys.map((k) => `    ${k}: int`).join(",\n")}\n  }\n}\n`,
    );
    const file = join(tmp, "wide.yml");
    writeFileSync(file, `wide.Wide:\n${keys.map((k, i) => `  ${k}: ${i}`).join("\n")}\n`);
    const reg = new EtcdRegistry(SHARED_ETCD);
    const source = new RegistryConfigSource(reg, cluster);
    const seen: Record<string, unknown>[] = [];
    const stop = await source.watch("wide.Wide", (raw) => seen.push(raw));
    try {
      const io = capture();
      expect(await config(["push", file, ...D, "--cluster", cluster, "--idl", idl], io), io.stderr.join()).toBe(0);
      expect(io.text()).toBe("pushed 300 key(s) to wide.Wide");
      const { items } = await reg.list(`/fan/${cluster}/config/wide.Wide/`);
      expect(items.map((kv) => [kv.key.split("/").at(-1), kv.value]).sort()).toEqual(
        keys.map((k, i) => [k, String(i)]),
      );
      await until("the watcher to see all 300 keys", () => Object.keys(seen.at(-1) ?? {}).length === 300, 10_000);
      // One update per transaction at most (etcd may deliver several in one batch: fewer), and each
      // shows whole runs in the order written: never part of a run.
      expect(seen.length).toBeLessThanOrEqual(3);
      for (const raw of seen) {
        const n = Object.keys(raw).length;
        expect([128, 256, 300]).toContain(n);
        expect(raw).toEqual(Object.fromEntries(keys.slice(0, n).map((k, i) => [k, i])));
      }
    } finally {
      await stop();
      await source.close();
      await reg.close();
    }
  });

  it("watch prints the config now and after each change", async () => {
    const io = capture();
    const watching = config(["watch", "retail.Watched", "--max", "1", "--json", ...C], io);
    // The first print comes after the watch is in place (watch, then get): wait for it, not a fixed time.
    await until("the watch printed the current config", () => io.stdout.length > 0, 10_000);
    await config(["set", "retail.Watched", "level=3", ...C], capture());
    expect(await watching).toBe(0);
    expect(io.stdout[0]).toBe("{}");
    expect(io.stdout).toContain("---");
    expect(JSON.parse(io.stdout[io.stdout.length - 1]!)).toEqual({ level: 3 });
  });
});

describe("fanc config (file)", () => {
  it("get and set work on a YAML file", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "fan-cli-"));
    const file = join(tmp, "settings.yml");
    writeFileSync(file, "retail.Wines:\n  pageSize: 10\n");
    const io = capture();
    expect(await config(["get", "retail.Wines", "--file", file, "--json", ...IDL], io)).toBe(0);
    expect(JSON.parse(io.text())).toEqual({ pageSize: 10 });
    expect(await config(["set", "retail.Wines", "pageSize=20", "--file", file, ...IDL], capture())).toBe(0);
    expect(readFileSync(file, "utf8")).toContain("pageSize: 20");
    const usage = capture();
    expect(await config(["push", file, "--file", file], usage)).toBe(2);
    expect(await config([], capture())).toBe(2);
    rmSync(tmp, { recursive: true, force: true });
  });
});
