/**
 * `fanc` start-up, as a user's shell sees it: wall time of whole processes, `fanc --help`
 * and a compile of idl/ that changes nothing, running the compiled dist/ (what the package
 * ships), side by side with the same commands run from the TypeScript sources through tsx
 * (what `bin/fanc.mjs` did before the package was built). Target: well under 500 ms.
 * Builds dist/ first, so the figures are of the current sources.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import type { BenchRow } from "./lib.js";

const repo = fileURLToPath(new URL("../", import.meta.url));
const ROUNDS = 9;

/** CPU time (user + system) of the last `run`, from GNU time: on a loaded machine wall time mostly measures the queue. */
let lastCpuMs = Number.NaN;
const gnuTime = existsSync("/usr/bin/time");

function run(args: readonly string[]): number {
  const [cmd, argv] = gnuTime
    ? ["/usr/bin/time", ["-f", "cpu %U %S", process.execPath, ...args]]
    : [process.execPath, [...args]];
  const t0 = performance.now();
  const r = spawnSync(cmd, argv, { cwd: repo, encoding: "utf8" });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${args.join(" ")} failed:\n${r.stderr}`);
  const cpu = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  lastCpuMs = cpu === null ? Number.NaN : (Number(cpu[1]) + Number(cpu[2])) * 1000;
  return ms;
}

const viaTsx = (argv: readonly string[]): string[] => [
  "--input-type=module",
  "-e",
  `import { register } from "tsx/esm/api"; register();
   const { main } = await import("./src/cli/main.ts");
   process.exitCode = await main(${JSON.stringify(argv)});`,
];

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** The benchmark: see the file comment. */
export default async function cliBench(): Promise<BenchRow[]> {
  run(["scripts/build.mjs"]);
  const out = mkdtempSync(join(tmpdir(), "fan-bench-cli-"));
  try {
    const compile = ["compile", "idl/", "--out", out];
    run(["bin/fanc.mjs", ...compile]); // the first compile writes; every measured one changes nothing
    const cases = [
      { name: "fanc --help (dist)", args: ["bin/fanc.mjs", "--help"], baseline: "fanc --help (tsx sources)" },
      { name: "fanc --help (tsx sources)", args: viaTsx(["--help"]) },
      { name: "fanc compile idl/, no change (dist)", args: ["bin/fanc.mjs", ...compile], baseline: "fanc compile idl/, no change (tsx sources)" },
      { name: "fanc compile idl/, no change (tsx sources)", args: viaTsx(compile) },
    ];
    const times = new Map<string, number[]>(cases.map((c) => [c.name, []]));
    const cpu = new Map<string, number[]>(cases.map((c) => [c.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of cases) {
        times.get(c.name)?.push(run(c.args));
        cpu.get(c.name)?.push(lastCpuMs);
      }
    }
    return cases.map((c) => {
      const all = times.get(c.name) ?? [];
      const p50 = median(all);
      const base = c.baseline === undefined ? p50 : median(times.get(c.baseline) ?? []);
      const cpuMs = `cpu ${Math.round(median(cpu.get(c.name) ?? []))} ms`;
      return {
        case: c.name,
        opsPerSec: 1000 / p50,
        p50Ms: p50,
        p99Ms: Math.max(...all),
        ratio: p50 / base,
        note:
          c.baseline === undefined
            ? `${cpuMs}; before: TypeScript through tsx`
            : `${cpuMs}; wall time of the process; ratio = dist / tsx; target < 500 ms: ${p50 < 500 ? "met" : "NOT met"}`,
      };
    });
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
