/**
 * `fanc dev` as a user runs it, in a child process: a project made by `fanc new service`
 * (under .tmp/ in the repository, so tsx resolves `fan/runtime` to the sources through the
 * repository's tsconfig), served on Redis with etcd discovery. An edit to a .ts file restarts
 * the service after a call in flight has completed; an edit to the .fan file recompiles and
 * restarts; a broken .fan file prints its diagnostics and keeps the process; Ctrl-C stops both.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { alive, type CapturedChild, runFanc, spawnCaptured, until } from "./helpers.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const rel = `.tmp/dev-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const dir = join(repo, rel);

describeEtcd("fanc dev (child process)", () => {
  const env = { FAN_CLUSTER: randomCluster(), FAN_DISCOVERY: `etcd://${SHARED_ETCD}` };
  const call = (name: string) =>
    runFanc(["call", "Dev.hello", JSON.stringify({ name }), "--idl", `${rel}/idl`, "--json"], env);
  let dev: CapturedChild;

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    const made = await runFanc(["new", "service", "Dev", "--dir", rel]);
    expect(made.code, made.stderr).toBe(0);
    // A slow call to have one in flight across a restart.
    const handler = join(dir, "src/dev.ts");
    const text = readFileSync(handler, "utf8").replace(
      "    const count =",
      '    if (name === "slow") {\n      console.log("slow call started");\n      await new Promise((r) => setTimeout(r, 1500));\n    }\n    const count =',
    );
    writeFileSync(handler, text);
    dev = spawnCaptured(
      process.execPath,
      [
        "bin/fanc.mjs",
        "dev",
        `${rel}/idl`,
        "--out",
        `${rel}/generated`,
        "--run",
        `${rel}/src/main.ts`,
        "--grace",
        "20000",
      ],
      env,
    );
    await until("the service serves", () => /Dev serving over redis/.test(dev.stdout()), 120_000);
  }, 150_000);

  afterAll(async () => {
    dev?.child.kill("SIGINT");
    await dev?.exited;
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const pidOf = (line: RegExp): number => {
    const m = [...dev.stdout().matchAll(line)].at(-1);
    if (m === undefined) throw new Error(`no ${line} in:\n${dev.stdout()}\n${dev.stderr()}`);
    return Number(m[1]);
  };
  const restarts = (): number => (dev.stdout().match(/restarted/g) ?? []).length;

  it("starts with one line per step, and the service answers", async () => {
    expect(dev.stdout()).toMatch(/^fanc dev: compiled \S+ \(1 \.fan file, \d+ ms\)$/m);
    expect(dev.stdout()).toMatch(/^fanc dev: started \S+src\/main\.ts \(pid \d+\)$/m);
    const r = await call("Ada");
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, value: { count: 1 } });
  }, 60_000);

  it("restarts on a .ts edit, after the call in flight completed", async () => {
    const before = pidOf(/\(pid (\d+)\)/g);
    const slow = call("slow");
    await until("the slow call reached the service", () => /slow call started/.test(dev.stdout()), 60_000);
    writeFileSync(join(dir, "src/dev.ts"), `${readFileSync(join(dir, "src/dev.ts"), "utf8")}// edited\n`);
    const r = await slow;
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, value: { message: "Hello, slow!" } });
    await until("a restart line", () => restarts() === 1, 60_000);
    expect(dev.stdout()).toMatch(
      new RegExp(
        `fanc dev: \\S+src/dev\\.ts changed; restarted \\S+ \\(pid ${before} drained and exited after \\d+ ms; now pid \\d+\\)`,
      ),
    );
    expect(alive(before)).toBe(false);
    await until(
      "the new process serves",
      () => (dev.stdout().match(/Dev serving over redis/g) ?? []).length === 2,
      120_000,
    );
    expect((await call("Ada")).code).toBe(0);
  }, 200_000);

  it("recompiles and restarts on a .fan edit; a broken .fan keeps the process running", async () => {
    const fan = join(dir, "idl/dev.fan");
    const good = readFileSync(fan, "utf8").replace(
      "  push reset()",
      "  push reset()\n  /// Added while fanc dev ran.\n  event left(name: string)",
    );
    writeFileSync(fan, good);
    await until(
      "an IDL restart line",
      () => /the IDL changed, recompiled in \d+ ms; restarted/.test(dev.stdout()),
      60_000,
    );
    expect(readFileSync(join(dir, "generated/dev.ts"), "utf8")).toContain("Added while fanc dev ran.");
    await until(
      "the new process serves",
      () => (dev.stdout().match(/Dev serving over redis/g) ?? []).length === 3,
      120_000,
    );
    const pid = pidOf(/now pid (\d+)\)/g);
    const count = restarts();

    writeFileSync(fan, `${good}\noops {\n`);
    await until("the diagnostics", () => /keeps running the last good build/.test(dev.stderr()), 60_000);
    expect(dev.stderr()).toMatch(/dev\.fan:\d+:\d+: error FAN\d+/);
    expect(dev.stderr()).toContain(`pid ${pid} keeps running the last good build`);
    expect(restarts()).toBe(count);
    expect(alive(pid)).toBe(true);
    writeFileSync(fan, good);
    await until("a restart after the fix", () => restarts() === count + 1, 60_000);
  }, 300_000);

  it("stops the service and itself on Ctrl-C", async () => {
    const pid = pidOf(/now pid (\d+)\)/g);
    dev.child.kill("SIGINT");
    expect(await dev.exited).toBe(0);
    expect(alive(pid)).toBe(false);
  }, 60_000);
});
