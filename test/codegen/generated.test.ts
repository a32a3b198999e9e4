/**
 * Generated code is committed (`generated/`, and the conformance suite's fixture module): it
 * must be exactly what the compiler writes from its IDL now. Recompile and commit when this fails.
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
    .map((e) =>
      join(e.parentPath, e.name)
        .slice(dir.length + 1)
        .split("\\")
        .join("/"),
    )
    .sort();
}

/** Committed compiler output and the IDL folder it comes from. */
const OUTPUTS: readonly {
  readonly idl: string;
  readonly out: string;
  readonly extra?: readonly string[];
  readonly target?: "browser";
}[] = [
  { idl: "idl", out: "generated" },
  // The transport conformance suite runs against this generated module.
  { idl: "test/transports/fixtures/idl", out: "test/transports/fixtures/generated", extra: ["biome.json"] },
  // The policy suites (breakers, retries, auth) run against this one.
  { idl: "test/policy/fixtures/idl", out: "test/policy/fixtures/generated", extra: ["biome.json"] },
  // The replicated-states tests and benchmark run against this one.
  { idl: "test/states/fixtures/idl", out: "test/states/fixtures/generated", extra: ["biome.json"] },
  // The sharding suites run against this one.
  { idl: "test/sharding/fixtures/idl", out: "test/sharding/fixtures/generated", extra: ["biome.json"] },
  // The test kit's own suites (test/testing/) run against this one.
  { idl: "test/testing/fixtures/idl", out: "test/testing/fixtures/generated", extra: ["biome.json"] },
  // The gateway suites (and bench/gateway.ts) run against this one.
  { idl: "test/gateway/fixtures/idl", out: "test/gateway/fixtures/generated", extra: ["biome.json"] },
  // The browser page of the gateway suite imports this one (fanc compile --target browser).
  { idl: "test/gateway/fixtures/idl", out: "test/gateway/fixtures/web", extra: ["biome.json"], target: "browser" },
];

describe("committed generated code", () => {
  for (const { idl, out, extra = [], target } of OUTPUTS) {
    const flag = target === undefined ? "" : ` --target ${target}`;
    it(`${out}/ equals what the compiler writes from ${idl}/ (fanc compile ${idl} --out ${out}${flag})`, async () => {
      const sources = await readSources(join(repo, idl));
      const { model, diagnostics } = checkSources(sources);
      expect(diagnostics.filter((d) => d.severity === "error")).toEqual([]);
      if (model === undefined) throw new Error(`${idl}/ gave no model`);
      const files = generate(model, target === undefined ? {} : { target });
      const dir = join(repo, out);
      expect(tree(dir).filter((f) => !extra.includes(f))).toEqual([...files.keys()].sort());
      for (const [rel, text] of files) expect(readFileSync(join(dir, rel), "utf8"), `${out}/${rel}`).toBe(text);
    });
  }
});
