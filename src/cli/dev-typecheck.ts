/**
 * `fanc dev --typecheck`: `tsc --noEmit` on the project (the tsconfig.json nearest the `--run`
 * file, with the project's own TypeScript) before each start and restart, so a handler left behind by an IDL
 * change stops the loop as an IDL error does. One tsc runs at a time; checks asked while one
 * runs share a single run after it, which sees every edit made until it starts.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { UsageError } from "./ls.js";

/** What one `tsc --noEmit` found. */
export interface TypeCheckResult {
  readonly ok: boolean;
  /** The `error TS…` diagnostics counted in tsc's output. */
  readonly errors: number;
  /** What tsc printed (its diagnostics), trimmed. */
  readonly output: string;
  readonly ms: number;
}

/** The nearest tsconfig.json at or above `dir`. */
function findTsconfig(dir: string): string | undefined {
  for (let d = resolve(dir); ; d = dirname(d)) {
    if (existsSync(join(d, "tsconfig.json"))) return join(d, "tsconfig.json");
    if (dirname(d) === d) return undefined;
  }
}

export class TypeCheck {
  readonly #tsc: string;
  /** The tsconfig.json checked. */
  readonly tsconfig: string;
  #running: Promise<TypeCheckResult> | undefined;
  #next: Promise<TypeCheckResult> | undefined;

  /** Finds the project's tsconfig.json and tsc from the folder `from` up; a usage error names what is missing. */
  constructor(from: string) {
    const tsconfig = findTsconfig(from);
    if (tsconfig === undefined) throw new UsageError(`--typecheck: no tsconfig.json in ${resolve(from)} or above`);
    this.tsconfig = tsconfig;
    try {
      this.#tsc = createRequire(join(dirname(tsconfig), "package.json")).resolve("typescript/bin/tsc");
    } catch {
      throw new UsageError(
        "--typecheck runs the project's TypeScript, which is not installed (npm install -D typescript)",
      );
    }
  }

  /** Type-checks the project as it is now (or just after the run in progress). */
  check(): Promise<TypeCheckResult> {
    if (this.#running === undefined) return this.#start();
    this.#next ??= this.#running.then(() => {
      this.#next = undefined;
      return this.#start();
    });
    return this.#next;
  }

  #start(): Promise<TypeCheckResult> {
    const run = this.#tscOnce();
    this.#running = run;
    void run.finally(() => {
      if (this.#running === run) this.#running = undefined;
    });
    return run;
  }

  #tscOnce(): Promise<TypeCheckResult> {
    const t0 = performance.now();
    return new Promise((resolveRun) => {
      execFile(
        process.execPath,
        [this.#tsc, "--noEmit", "--pretty", "false", "-p", this.tsconfig],
        // From the working folder, so the paths tsc prints open from the terminal.
        { cwd: process.cwd(), maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) => {
          const output = `${stdout}${stderr}`.trim();
          const errors = (output.match(/: error TS\d+:/g) ?? []).length;
          const ok = err === null;
          resolveRun({ ok, errors: ok ? 0 : Math.max(errors, 1), output, ms: performance.now() - t0 });
        },
      );
    });
  }
}
