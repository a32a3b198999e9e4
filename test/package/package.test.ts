/**
 * fan as a user gets it: `npm pack`, then in a fresh project outside the repository (under
 * the OS temp folder) the README's "Use fan in your project" steps, which are the files of
 * `examples/user-project/`: `install.sh`, the project files, `run.sh` (`npx fanc compile`,
 * `npx tsc` under the user's strict tsconfig, `npx vitest run` with a generated mock and
 * `createTestApp`, `node` running a service and a client on the local transport). Then the
 * same build runs as two plain `node` processes over Redis with etcd discovery. No tsx: the
 * project's environment carries nothing of this repository (PATH, NODE_OPTIONS, VITEST_*).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { portOpen } from "../discovery/helpers.js";
import { packFan, repo, STEP_MS, userEnv } from "./pack.js";

const example = join(repo, "examples/user-project");

/** Runs a script of the README with bash -e; fails with its output. */
function runScript(file: string, cwd: string): string {
  const r = spawnSync("bash", ["-euo", "pipefail", "-x", join(example, file)], {
    cwd,
    env: userEnv(),
    encoding: "utf8",
    timeout: STEP_MS,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  if (r.status !== 0) throw new Error(`${file} failed (exit ${r.status ?? r.signal}):\n${out.slice(-6000)}`);
  return out;
}

/** The user's project files: everything of examples/user-project but the two scripts. */
function copyProject(to: string): void {
  for (const entry of readdirSync(example)) {
    if (!entry.endsWith(".sh")) cpSync(join(example, entry), join(to, entry), { recursive: true });
  }
}

let root = "";
let project = "";
let runOutput = "";

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "fan-package-"));
  // npm pack runs `prepare`, so this also checks that a clean build of src/ succeeds.
  const packed = await packFan();
  const tarball = basename(packed);
  copyFileSync(packed, join(root, tarball));
  expect(readFileSync(join(example, "install.sh"), "utf8"), "install.sh installs the tarball npm pack makes").toContain(
    `../${tarball}`,
  );
  runScript("install.sh", root);
  project = join(root, "wine-shop");
  copyProject(project);
  runOutput = runScript("run.sh", project);
}, 3 * STEP_MS);

afterAll(() => {
  if (root !== "" && process.env.FAN_KEEP_PACKAGE_TEST !== "1") rmSync(root, { recursive: true, force: true });
});

describe("the packed package in a fresh project", () => {
  it("ships compiled JavaScript and types, no sources, tests or tsx", () => {
    const fan = join(project, "node_modules/fan");
    const files = readdirSync(fan, { recursive: true }).map(String);
    expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
    expect(files.some((f) => f.startsWith("test") || f.startsWith("bench") || f.startsWith("src"))).toBe(false);
    expect(files).toContain(join("dist", "runtime", "index.js"));
    expect(files).toContain(join("dist", "runtime", "index.d.ts"));
    expect(existsSync(join(project, "node_modules/tsx"))).toBe(false);
  });

  it("compiles the IDL with npx fanc, typechecks under the user's strict tsconfig and runs vitest", () => {
    expect(runOutput).toMatch(/fanc: compiled 2 \.fan files/);
    expect(existsSync(join(project, "generated/retail/wines.ts"))).toBe(true);
    expect(existsSync(join(project, "dist/src/main.js"))).toBe(true); // npx tsc exited 0 and wrote it
    expect(runOutput).toMatch(/Tests\s+1 passed/);
  });

  it("has no type error inside fan's declarations, even with skipLibCheck off", () => {
    const r = spawnSync("npx", ["tsc", "--noEmit", "--skipLibCheck", "false"], {
      cwd: project,
      env: userEnv(),
      encoding: "utf8",
      timeout: STEP_MS,
    });
    const inFan = r.stdout.split("\n").filter((l) => l.includes("node_modules/fan/"));
    expect(inFan).toEqual([]);
  }, STEP_MS);

  it("runs the service and a call with plain node, on the local transport", () => {
    expect(runOutput).toContain("got Chablis 2021");
  });
});

const [redisUp, etcdUp] = await Promise.all([portOpen("127.0.0.1", 6379), portOpen("127.0.0.1", 2379)]);
const brokers = redisUp && etcdUp;
if (!brokers && process.env.FAN_REQUIRE_BROKERS !== "1") {
  console.warn("SKIPPING the package's Redis run: Redis or etcd is not reachable on loopback (npm run brokers)");
}

describe.skipIf(!brokers && process.env.FAN_REQUIRE_BROKERS !== "1")("the packed package over Redis", () => {
  let service: ChildProcess | undefined;
  afterAll(() => {
    service?.kill("SIGKILL");
  });

  it("serves in one node process and is called from another", async () => {
    expect(brokers, "Redis and etcd on loopback (FAN_REQUIRE_BROKERS=1)").toBe(true);
    const env = userEnv({ FAN_CLUSTER: `pkg-${process.pid}-${Math.random().toString(36).slice(2, 8)}`, FAN_LOG_LEVEL: "warn" });
    const proc = spawn(process.execPath, ["dist/src/service.js"], { cwd: project, env, stdio: ["ignore", "pipe", "pipe"] });
    service = proc;
    let out = "";
    proc.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    proc.stderr?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    await expect.poll(() => out, { timeout: 60_000, interval: 100 }).toContain("serving");

    const client = spawnSync(process.execPath, ["dist/src/client.js"], { cwd: project, env, encoding: "utf8", timeout: 60_000 });
    expect(`${client.stdout}${client.stderr}`).toContain("got Chablis; a missing one is WineNotFound");
    expect(client.status).toBe(0);

    const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
    proc.kill("SIGTERM"); // handleSignals: a graceful stop, exit 0
    expect(await exited, out).toBe(0);
  }, 150_000);
});
