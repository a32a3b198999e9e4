/**
 * The service process `fanc dev` runs and restarts: `node <file>` (a `.ts` file through
 * `--import tsx`, resolved from the project). A restart is graceful: SIGTERM, then the next
 * process starts once the old one has exited (an App with `handleSignals` drains its calls in
 * flight first), SIGKILL after the grace period. Restarts asked while one runs are coalesced.
 * The process is never left behind (child-guard.ts): fanc SIGKILLs it when fanc exits, and a
 * watch preloaded into it sends it SIGTERM once its parent is no longer fanc, which covers a
 * fanc that is SIGKILLed or dies of a signal it does not handle.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { extname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { spawnGuarded } from "./child-guard.js";
import type { Io } from "./io.js";
import { UsageError } from "./ls.js";

/** How the process is started. */
export interface ProcessSpec {
  /** The entry file (absolute). */
  readonly file: string;
  /** Extra arguments after the file. */
  readonly args: readonly string[];
  /** SIGTERM to SIGKILL, ms. */
  readonly graceMs: number;
}

/** The node arguments that run `file`: TypeScript through the project's tsx. */
export function nodeArgs(file: string, cwd = process.cwd()): string[] {
  if (!existsSync(file)) throw new UsageError(`--run ${file}: no such file`);
  if (![".ts", ".mts", ".cts", ".tsx"].includes(extname(file))) return [file];
  const req = createRequire(join(resolve(cwd), "package.json"));
  let tsx: string;
  try {
    tsx = req.resolve("tsx");
  } catch {
    throw new UsageError(
      `--run ${file} is TypeScript and tsx is not installed in this project (npm install -D tsx), or run a .js file`,
    );
  }
  return ["--import", pathToFileURL(tsx).href, file];
}

export class ServiceProcess {
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #busy: Promise<void> | undefined;
  #again: string | undefined;
  #stopped = false;

  constructor(
    private readonly spec: ProcessSpec,
    private readonly io: Io,
  ) {}

  /** The running process's pid, if one runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the first process. */
  start(): void {
    this.#spawn();
    this.io.out(`fanc dev: started ${this.#shown()} (pid ${this.pid})`);
  }

  /** Stops the running process (gracefully) and starts a new one; `why` goes in the line. */
  restart(why: string): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#busy !== undefined) {
      this.#again = why;
      return this.#busy;
    }
    this.#busy = (async () => {
      let reason: string | undefined = why;
      while (reason !== undefined && !this.#stopped) {
        this.#again = undefined;
        const old = this.pid;
        const t0 = performance.now();
        const ended = await this.#terminate();
        if (this.#stopped) break;
        this.#spawn();
        const took = Math.round(performance.now() - t0);
        const prev = old === undefined ? "no process was running" : `pid ${old} ${ended} after ${took} ms`;
        this.io.out(`fanc dev: ${reason}; restarted ${this.#shown()} (${prev}; now pid ${this.pid})`);
        reason = this.#again;
      }
      this.#busy = undefined;
    })();
    return this.#busy;
  }

  /** Stops for good (SIGTERM, SIGKILL after the grace period). */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#busy;
    await this.#terminate();
  }

  #shown(): string {
    return [this.spec.file, ...this.spec.args].join(" ").replace(`${process.cwd()}/`, "");
  }

  #spawn(): void {
    // A process group of its own: Ctrl-C reaches fanc only, which stops the service gracefully
    // (one SIGTERM; a second signal would make the App exit without draining).
    const child = spawnGuarded([...nodeArgs(this.spec.file), ...this.spec.args], { stdio: "inherit" });
    this.#child = child;
    this.#exited = new Promise((resolveExit) => {
      child.once("exit", (code, signal) => {
        if (this.#child === child) {
          this.#child = undefined;
          if (!this.#stopped)
            this.io.err(
              `fanc dev: ${this.#shown()} exited (${signal ?? `code ${code}`}); waiting for a change to start it again`,
            );
        }
        resolveExit();
      });
    });
  }

  /** SIGTERM, SIGKILL after the grace period; resolves with how it ended. */
  async #terminate(): Promise<string> {
    const child = this.#child;
    if (child === undefined) return "had exited";
    this.#child = undefined;
    const exited = this.#exited;
    child.kill("SIGTERM");
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, this.spec.graceMs);
    await exited;
    clearTimeout(timer);
    return killed ? `was killed (no exit ${this.spec.graceMs} ms after SIGTERM)` : "drained and exited";
  }
}
