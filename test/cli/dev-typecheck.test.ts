/**
 * `fanc dev --typecheck` as a user runs it, in a child process, with no broker: a project under
 * .tmp/ in the repository (so tsc resolves `fan/runtime` to the package's own dist/ types)
 * whose `src/main.ts` destructures a field of a generated struct. A renamed IDL field leaves
 * it behind: the type errors are printed and the process keeps running; fixing the handler
 * restarts it. And `fanc dev` in a CommonJS package warns once that fan is ESM-only.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { alive, type CapturedChild, spawnCaptured, TempDir, until } from "./helpers.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const rel = `.tmp/dev-typecheck-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const dir = join(repo, rel);

const TSCONFIG = {
  compilerOptions: {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    types: ["node"],
    strict: true,
    verbatimModuleSyntax: true,
    skipLibCheck: true,
    noEmit: true,
  },
  include: ["src", "generated"],
};

const MAIN = `import type { Line } from "../generated/shop.js";

const show = ({ sku }: Line): string => sku;
console.log(\`serving \${show({ sku: "a", qty: 1 })}\`);
setInterval(() => undefined, 1000);
process.on("SIGTERM", () => process.exit(0));
`;

let dev: CapturedChild | undefined;
/** `what` is printed; fails at once, with what fanc said, if fanc dev has exited. */
const printed = (d: CapturedChild, what: () => boolean) => (): boolean => {
  if (d.child.exitCode !== null) throw new Error(`fanc dev exited ${d.child.exitCode}:\n${d.stdout()}\n${d.stderr()}`);
  return what();
};
const stop = async (): Promise<number | null | undefined> => {
  dev?.child.kill("SIGINT");
  const code = await dev?.exited;
  dev = undefined;
  return code;
};

afterAll(async () => {
  await stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("fanc dev --typecheck", () => {
  it("keeps the running process on type errors after an IDL change, and restarts once they are fixed", async () => {
    mkdirSync(join(dir, "idl"), { recursive: true });
    mkdirSync(join(dir, "src"), { recursive: true });
    writeFileSync(join(dir, "idl/shop.fan"), "package shop\n\nstruct Line { sku: string, qty: int = 1 }\n");
    writeFileSync(join(dir, "src/main.ts"), MAIN);
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(TSCONFIG, null, 2));
    const args = ["dev", `${rel}/idl`, "--out", `${rel}/generated`, "--run", `${rel}/src/main.ts`, "--typecheck"];
    const d = spawnCaptured(process.execPath, ["bin/fanc.mjs", ...args, "--grace", "5000"]);
    dev = d;
    await until(
      "the service serves",
      printed(d, () => /serving a/.test(d.stdout())),
      120_000,
    );
    expect(d.stdout()).toMatch(
      /^fanc dev: tsc --noEmit passed \(\d+ ms\)\nfanc dev: started \S+src\/main\.ts \(pid (\d+)\)$/m,
    );
    const pid = Number(/started \S+ \(pid (\d+)\)/.exec(d.stdout())?.[1]);

    // The IDL renames the field; the handler still destructures the old name.
    writeFileSync(join(dir, "idl/shop.fan"), "package shop\n\nstruct Line { code: string, qty: int = 1 }\n");
    await until("the type errors", () => /keeps running the last good build/.test(d.stderr()), 120_000);
    expect(d.stderr()).toContain("error TS2339: Property 'sku' does not exist on type 'Line'.");
    expect(d.stderr()).toMatch(/src\/main\.ts\(3,\d+\): error TS2339/);
    expect(d.stderr()).toContain(
      `fanc dev: tsc --noEmit found 2 type errors (above); pid ${pid} keeps running the last good build`,
    );
    expect(readFileSync(join(dir, "generated/shop.ts"), "utf8")).toContain("code: string");
    expect(d.stdout()).not.toContain("restarted");
    expect(alive(pid)).toBe(true);

    // The handler follows the IDL: it typechecks, and the process restarts.
    writeFileSync(join(dir, "src/main.ts"), MAIN.replaceAll("sku", "code"));
    await until("a restart", () => /restarted/.test(d.stdout()), 120_000);
    expect(d.stdout()).toMatch(
      /src\/main\.ts changed, typechecked in \d+ ms; restarted \S+ \(pid \d+ drained and exited/,
    );
    await until("the new process serves", () => (d.stdout().match(/serving a/g) ?? []).length === 2, 120_000);
    expect(await stop()).toBe(0);
  }, 400_000);
});

describe("fanc dev in a CommonJS package", () => {
  let tmp: TempDir | undefined;
  afterEach(() => tmp?.cleanup());

  it("warns once that fan is ESM-only, naming the package.json and the fix", async () => {
    tmp = new TempDir();
    tmp.write("package.json", JSON.stringify({ name: "cjs", type: "commonjs" }));
    tmp.write("idl/shop.fan", "package shop\n\nstruct Line { sku: string }\n");
    tmp.write(
      "src/main.js",
      "console.log('up');\nsetInterval(() => undefined, 1000);\nprocess.on('SIGTERM', () => process.exit(0));\n",
    );
    const p = tmp.path;
    const d = spawnCaptured(process.execPath, [
      join(repo, "bin/fanc.mjs"),
      "dev",
      join(p, "idl"),
      "--out",
      join(p, "generated"),
      "--run",
      join(p, "src/main.js"),
    ]);
    dev = d;
    await until(
      "the process runs",
      printed(d, () => /^up$/m.test(d.stdout())),
      60_000,
    );
    const warnings = d.stderr().match(/^fanc: warning: .*$/gm) ?? [];
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`${join(p, "package.json")} has "type": "commonjs", but fan is ESM-only`);
    expect(warnings[0]).toContain('Set "type": "module"');
    expect(await stop()).toBe(0);
  }, 120_000);
});
