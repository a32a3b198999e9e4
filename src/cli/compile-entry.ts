/**
 * `fanc compile`'s entry: the no-change fast path first (`compile-cache.ts`), and the compiler
 * (`compile.ts`, which loads the parser and the code generator) only when something changed.
 * A node compile into a CommonJS package is warned of first, once (`module-type.ts`).
 */
import { existsSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { parseCompileArgs, summary } from "./compile-args.js";
import { probe, unchanged } from "./compile-cache.js";
import type { Io } from "./io.js";
import { commonJsWarning } from "./module-type.js";

/** `fanc compile ...`: returns the exit code. */
export async function run(args: readonly string[], io: Io): Promise<number> {
  const t0 = performance.now();
  let opts: ReturnType<typeof parseCompileArgs>;
  try {
    opts = parseCompileArgs(args);
  } catch {
    opts = undefined; // compile.ts reports the usage error
  }
  // Browser modules go through a bundler, which takes ESM whatever package.json says.
  if (opts !== undefined && opts.target !== "browser" && existsSync(opts.root)) {
    const warning = commonJsWarning(opts.out);
    if (warning !== undefined) io.err(warning);
  }
  // The no-change cache is keyed for node output; a browser compile always runs.
  if (opts === undefined || opts.watch || opts.target === "browser")
    return (await import("./compile.js")).run(args, io);
  const p = await probe(opts.root, opts.out, opts.strict);
  const hit = p === undefined ? undefined : await unchanged(p, opts.out);
  if (p === undefined || hit === undefined) return (await import("./compile.js")).run(args, io, p);
  if (hit.stderr !== "") io.err(hit.stderr);
  const write = { written: [], unchanged: hit.outputs, removed: [] };
  io.out(
    summary({ ok: true, errors: 0, warnings: hit.warnings, sources: p.sources, write, ms: performance.now() - t0 }),
  );
  return 0;
}
