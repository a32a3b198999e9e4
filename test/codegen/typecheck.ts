/**
 * Typechecks generated files with the TypeScript compiler API under the repo's strict
 * options, resolving `fan/runtime` to src/runtime/index.ts through a paths mapping.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The repo's compiler options (tsconfig.json), plus the fan/runtime mapping. */
export function repoOptions(): ts.CompilerOptions {
  const cfg = ts.readConfigFile(join(repo, "tsconfig.json"), (p) => ts.sys.readFile(p));
  const parsed = ts.parseJsonConfigFileContent(cfg.config, ts.sys, repo);
  const { rootDir: _rootDir, outDir: _outDir, ...options } = parsed.options;
  return {
    ...options,
    noEmit: true,
    baseUrl: repo,
    paths: { "fan/runtime": [join(repo, "src/runtime/index.ts")] },
    typeRoots: [join(repo, "node_modules/@types")],
  };
}

/** Writes `files` into a fresh temp dir (an ESM package) and returns the formatted diagnostics of typechecking them. */
export function typecheck(files: ReadonlyMap<string, string>): string[] {
  const dir = mkdtempSync(join(tmpdir(), "fan-tsc-"));
  try {
    writeFileSync(join(dir, "package.json"), '{ "type": "module" }\n');
    const roots: string[] = [];
    for (const [rel, text] of files) {
      const abs = join(dir, rel);
      mkdirSync(dirname(abs), { recursive: true });
      writeFileSync(abs, text);
      roots.push(abs);
    }
    const program = ts.createProgram(roots, repoOptions());
    const diags = ts.getPreEmitDiagnostics(program);
    const host: ts.FormatDiagnosticsHost = {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => dir,
      getNewLine: () => "\n",
    };
    return diags.map((d) => ts.formatDiagnostic(d, host).trim());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
