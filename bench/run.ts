/**
 * `npm run bench -- NAME [NAME...] [--flag...]`: runs `bench/NAME.ts`, prints its table and
 * writes `bench/results/NAME.json`. With no name, lists the benchmarks. Arguments starting
 * with `--` are left for the benchmarks to read (`peers --quick`). A benchmark may export
 * `meta` (what it ran under: load, Node version, command), written into the JSON beside the rows,
 * and `resultName()`, the file name to write instead of NAME (a partial run of `peers` must not
 * replace the full run's file).
 */
import { readdirSync } from "node:fs";
import { printTable, writeResults, type BenchRow } from "./lib.js";

const here = new URL("./", import.meta.url);
const available = readdirSync(here)
  // `_name.ts` files are scratch scripts, not benchmarks.
  .filter((f) => f.endsWith(".ts") && !f.startsWith("_") && !["lib.ts", "run.ts"].includes(f))
  .map((f) => f.slice(0, -3))
  .sort();

const names = process.argv.slice(2).filter((a) => !a.startsWith("--"));
if (names.length === 0) {
  console.log(`usage: npm run bench -- NAME\nbenchmarks: ${available.join(", ")}`);
  process.exit(available.length > 0 ? 0 : 1);
}
for (const name of names) {
  if (!available.includes(name)) {
    console.error(`unknown benchmark "${name}"; available: ${available.join(", ")}`);
    process.exit(2);
  }
  const mod = (await import(new URL(`./${name}.ts`, here).href)) as {
    default: () => Promise<BenchRow[]>;
    meta?: Record<string, unknown>;
    resultName?: () => string;
  };
  const rows = await mod.default();
  const file = mod.resultName?.() ?? name;
  printTable(file, rows);
  console.log(`wrote ${writeResults(file, rows, undefined, mod.meta)}`);
}
process.exit(0);
