/**
 * `fanc init` and `fanc new service` as a user runs them: fan packed (`pack.ts`, shared with
 * package.test.ts), `npx --package <tarball> fanc init` in an empty folder under the OS temp
 * folder, `npm install`, then the project's files UNCHANGED: `npx fanc compile`, `npx tsc
 * --noEmit`, `npx vitest run`; a second service added with `fanc new service`; `src/main.ts`
 * run with tsx on Redis and etcd, called with `npx fanc call`, stopped with SIGTERM. A second
 * project, made by `fanc new service --transport nats` in an empty folder, goes through the
 * same steps and serves on NATS.
 */
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { portOpen } from "../discovery/helpers.js";
import { deleteStreams } from "../transports/nats-server.js";
import { packFan, STEP_MS, userEnv } from "./pack.js";

let root = "";
let project = "";
let tarball = "";

/** Runs `cmd args` in the project (or `cwd`); fails with its output. */
function sh(cmd: string, args: readonly string[], env: Record<string, string> = {}, cwd = project): string {
  const r = spawnSync(cmd, args, { cwd, env: userEnv(env), encoding: "utf8", timeout: STEP_MS });
  const out = `${r.stdout}\n${r.stderr}`;
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${r.status ?? r.signal}):\n${out.slice(-6000)}`);
  return out;
}

/** The project's `src/main.ts` run with tsx in `cwd`, its stdout and stderr kept; `exited` resolves with its exit code. */
function runMain(cwd: string, env: NodeJS.ProcessEnv) {
  const proc = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const keep = (d: Buffer): void => {
    out += d.toString();
  };
  proc.stdout.on("data", keep);
  proc.stderr.on("data", keep);
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  return { proc, out: () => out, exited };
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "fan-new-"));
  const packed = await packFan();
  tarball = basename(packed);
  copyFileSync(packed, join(root, tarball));
  project = join(root, "hello-fan");
  mkdirSync(project);
}, 2 * STEP_MS);

afterAll(() => {
  if (root !== "" && process.env.FAN_KEEP_PACKAGE_TEST !== "1") rmSync(root, { recursive: true, force: true });
});

describe("a project made by fanc init", () => {
  it(
    "is written into an empty folder, installs, compiles, typechecks and its test passes unchanged",
    () => {
      // No --fan: fanc init finds the tarball npx installed it from (npx's cache names it).
      const init = sh("npx", ["--yes", "--package", `../${tarball}`, "--", "fanc", "init"]);
      expect(init).toContain("wrote idl/hellofan.fan");
      expect(init).toContain(`package.json takes fan from file:../${tarball}, where this fanc was installed from`);
      const pkg = JSON.parse(readFileSync(join(project, "package.json"), "utf8")) as {
        scripts: Record<string, string>;
        dependencies: Record<string, string>;
      };
      expect(pkg.dependencies.fan).toBe(`file:../${tarball}`);
      expect(Object.keys(pkg.scripts)).toEqual(expect.arrayContaining(["compile", "start", "test", "dev"]));
      sh("npm", ["install"]);
      expect(sh("npx", ["fanc", "compile", "idl/"])).toMatch(/fanc: compiled 1 \.fan file/);
      sh("npx", ["tsc", "--noEmit"]);
      expect(sh("npx", ["vitest", "run"])).toMatch(/Tests\s+2 passed/);
      // A second service joins the project; main.ts is kept, everything still compiles and passes.
      const added = sh("npx", [
        "fanc",
        "new",
        "service",
        "OrderBook",
        "--package",
        "shop.orders",
        "--transport",
        "amqp",
      ]);
      expect(added).toContain("wrote idl/shop/orders.fan");
      expect(added).not.toContain("wrote src/main.ts");
      expect(added).toContain("src/main.ts was already there and does not serve it yet");
      const again = spawnSync("npx", ["fanc", "new", "service", "OrderBook", "--package", "shop.orders"], {
        cwd: project,
        env: userEnv(),
        encoding: "utf8",
      });
      expect(again.status).toBe(2);
      expect(again.stderr).toMatch(/already exists; nothing was written/);
      expect(sh("npm", ["test"])).toMatch(/Tests\s+4 passed/);
      sh("npx", ["tsc", "--noEmit"]);
    },
    3 * STEP_MS,
  );
});

const brokers = (await portOpen("127.0.0.1", 6379)) && (await portOpen("127.0.0.1", 2379));
if (!brokers && process.env.FAN_REQUIRE_BROKERS !== "1")
  console.warn("SKIPPING the new project's Redis run: Redis or etcd is not reachable");

describe.skipIf(!brokers && process.env.FAN_REQUIRE_BROKERS !== "1")("the new project's main.ts", () => {
  it("serves on Redis, answers fanc call, and stops on SIGTERM", async () => {
    expect(existsSync(join(project, "node_modules/fan")), "the project was installed by the test above").toBe(true);
    const env = userEnv({ FAN_CLUSTER: `new-${process.pid}-${Math.random().toString(36).slice(2, 8)}` });
    const { proc, out, exited } = runMain(project, env);
    try {
      await expect.poll(out, { timeout: 60_000, interval: 100 }).toContain("HelloFan serving over redis");
      const r = spawnSync("npx", ["fanc", "call", "HelloFan.hello", '{"name":"Ada"}', "--json"], {
        cwd: project,
        env,
        encoding: "utf8",
      });
      expect(r.status, r.stderr).toBe(0);
      const call = JSON.parse(r.stdout) as unknown;
      expect(call).toMatchObject({ ok: true, transport: "redis", value: { message: "Hello, Ada!", count: 1 } });
      const refused = spawnSync("npx", ["fanc", "call", "HelloFan.hello", '{"name":" "}'], {
        cwd: project,
        env,
        encoding: "utf8",
      });
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(/error INVALID_ARGUMENT hellofan\.NameRefused/);
      expect(refused.stderr).toContain('fields: {"who":" ","reason":"blank"}');
    } finally {
      proc.kill("SIGTERM");
    }
    expect(await exited, out()).toBe(0);
  }, 150_000);
});

const nats = (await portOpen("127.0.0.1", 4222)) && (await portOpen("127.0.0.1", 2379));
if (!nats && process.env.FAN_REQUIRE_BROKERS !== "1")
  console.warn("SKIPPING the NATS project: NATS or etcd is not reachable");

describe.skipIf(!nats && process.env.FAN_REQUIRE_BROKERS !== "1")(
  "a project made by fanc new service --transport nats",
  () => {
    it(
      "installs, compiles, its test passes unchanged, and main.ts serves on NATS and answers fanc call",
      async () => {
        const dir = join(root, "greeter-nats");
        mkdirSync(dir);
        const args = [
          "--yes",
          "--package",
          `../${tarball}`,
          "--",
          "fanc",
          "new",
          "service",
          "Greeter",
          "--transport",
          "nats",
          "--fan",
          `file:../${tarball}`,
        ];
        expect(sh("npx", args, {}, dir)).toContain("Greeter (package greeter, served over nats)");
        sh("npm", ["install"], {}, dir);
        expect(sh("npx", ["fanc", "compile", "idl/"], {}, dir)).toMatch(/fanc: compiled 1 \.fan file/);
        sh("npx", ["tsc", "--noEmit"], {}, dir);
        expect(sh("npx", ["vitest", "run"], {}, dir)).toMatch(/Tests\s+2 passed/);
        const cluster = `new-nats-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
        const env = userEnv({ FAN_CLUSTER: cluster });
        const { proc, out, exited } = runMain(dir, env);
        try {
          await expect.poll(out, { timeout: 60_000, interval: 100 }).toContain("Greeter serving over nats");
          const r = spawnSync("npx", ["fanc", "call", "Greeter.hello", '{"name":"Ada"}', "--json"], {
            cwd: dir,
            env,
            encoding: "utf8",
          });
          expect(r.status, r.stderr).toBe(0);
          expect(JSON.parse(r.stdout) as unknown).toMatchObject({
            ok: true,
            transport: "nats",
            value: { message: "Hello, Ada!", count: 1 },
          });
        } finally {
          proc.kill("SIGTERM");
          await exited;
          await deleteStreams(`fan_${cluster}`).catch(() => undefined);
        }
        expect(await exited, out()).toBe(0);
      },
      4 * STEP_MS,
    );
  },
);
