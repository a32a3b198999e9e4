/**
 * `generated/` is committed: it must be exactly what the compiler writes from `idl/` now.
 * Run `npm run generate` and commit when this fails.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { generate } from "../../src/codegen/index.js";
import { checkSources, readSources } from "../../src/compiler/index.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

function tree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1).split("\\").join("/"))
    .sort();
}

describe("generated/", () => {
  it("equals what the compiler writes from idl/ (run `npm run generate` when it drifts)", async () => {
    const sources = await readSources(join(repo, "idl"));
    const { model, diagnostics } = checkSources(sources);
    expect(diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    if (model === undefined) throw new Error("idl/ gave no model");
    const files = generate(model);
    const dir = join(repo, "generated");
    expect(tree(dir)).toEqual([...files.keys()].sort());
    for (const [rel, text] of files) expect(readFileSync(join(dir, rel), "utf8"), `generated/${rel}`).toBe(text);
  });
});
