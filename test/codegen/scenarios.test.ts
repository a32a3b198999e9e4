/**
 * Golden scenarios: each `test/scenarios/<name>/input/` is compiled and its output compared
 * with `expected/`, file by file (missing and extra files fail too). `UPDATE=1 npx vitest run
 * test/codegen/scenarios.test.ts` rewrites the expected files instead.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { generate } from "../../src/codegen/index.js";
import { checkSources, formatDiagnostics, readSources } from "../../src/compiler/index.js";
import { typecheck } from "./typecheck.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../scenarios");
const update = process.env.UPDATE === "1";
const scenarios = readdirSync(root, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(root, d.name, "input")))
  .map((d) => d.name)
  .sort();

/** Every file under `dir` as `/`-separated relative path → text. */
function readTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const abs = join(entry.parentPath, entry.name);
    out.set(abs.slice(dir.length + 1).split("\\").join("/"), readFileSync(abs, "utf8"));
  }
  return out;
}

function writeTree(dir: string, files: ReadonlyMap<string, string>): void {
  rmSync(dir, { recursive: true, force: true });
  for (const [rel, text] of files) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
}

async function compileScenario(name: string): Promise<Map<string, string>> {
  const sources = await readSources(join(root, name, "input"));
  const { model, diagnostics } = checkSources(sources);
  const errors = diagnostics.filter((d) => d.severity === "error");
  expect(errors, formatDiagnostics(errors, sources)).toEqual([]);
  if (model === undefined) throw new Error(`scenario ${name}: no model`);
  return generate(model);
}

const outputs = new Map<string, Map<string, string>>();

describe("golden scenarios", () => {
  // All of idl/ is the golden case generated/ itself: test/codegen/generated.test.ts and CI compare them.
  it("cover every declaration kind", () => {
    expect(scenarios).toEqual(expect.arrayContaining(["struct", "enum", "union", "error", "service-rpc", "service-events", "service-config", "packages", "reserved"]));
  });

  for (const name of scenarios) {
    it(`${name}: output equals expected/`, async () => {
      const files = await compileScenario(name);
      outputs.set(name, files);
      const expectedDir = join(root, name, "expected");
      if (update) {
        writeTree(expectedDir, files);
        return;
      }
      const expected = readTree(expectedDir);
      expect([...files.keys()].sort(), `files of ${name} (UPDATE=1 rewrites expected/)`).toEqual([...expected.keys()].sort());
      for (const [rel, text] of files) expect(text, `${name}/expected/${rel}`).toBe(expected.get(rel));
    });
  }

  it("every scenario's output typechecks under the repo's strict options", async () => {
    const all = new Map<string, string>();
    for (const name of scenarios) {
      const files = outputs.get(name) ?? (await compileScenario(name));
      for (const [rel, text] of files) all.set(`${name}/${rel}`, text);
    }
    expect(typecheck(all)).toEqual([]);
  }, 120_000);
});
