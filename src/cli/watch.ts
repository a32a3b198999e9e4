/**
 * `fanc compile --watch`: recompiles on every change under the source folder after a short
 * debounce, re-parsing only changed files (the compiler's ParseCache) and writing only changed
 * output (a memo of what was written). A broken change prints its diagnostics and leaves the
 * last good output in place. One line per rebuild, with its time. Folders are watched, not
 * files (`watch-dirs.ts`), so files saved by rename keep being seen.
 */
import { isAbsolute, join, relative, sep } from "node:path";
import { performance } from "node:perf_hooks";
import { GenerateCache } from "../codegen/index.js";
import { ParseCache, type SourceInput } from "../compiler/index.js";
import type { OutputMemo } from "./output.js";
import { DirectoryWatcher } from "./watch-dirs.js";
import { type CompileOptions, type CompileOutcome, compileSources, type Io, readAll, summary } from "./compile.js";

/** A running watch session. */
export interface Watcher {
  /** Completed rebuilds, the initial compile included (changes that alter no `.fan` file do not count). */
  readonly rebuilds: number;
  /** The outcome of the last completed rebuild. */
  readonly last: CompileOutcome | undefined;
  /** Stops watching; waits for a rebuild in progress. */
  close(): Promise<void>;
}

/** Tuning of a watch session. */
export interface WatchOptions {
  /** Quiet time after the last change before a rebuild, ms. */
  readonly debounceMs?: number;
  /** Delay between attempts to re-watch the folder after the watcher failed, ms. */
  readonly retryMs?: number;
  /** Told of each completed rebuild, after its line was printed (`fanc dev` restarts its process). */
  readonly onRebuild?: (outcome: CompileOutcome, first: boolean) => void;
}

/** The line printed after a rebuild. */
function rebuildLine(o: CompileOutcome, first: boolean): string {
  if (o.ok) return first ? summary(o) : summary(o).replace("fanc: compiled", "fanc: rebuilt");
  const errors = `${o.errors} error${o.errors === 1 ? "" : "s"}`;
  return `fanc: ${errors}; kept the last good output (${Math.round(o.ms)} ms)`;
}

class WatchSession implements Watcher {
  rebuilds = 0;
  last: CompileOutcome | undefined;
  private readonly cache = new ParseCache();
  private readonly memo: OutputMemo = new Map();
  private readonly generated = new GenerateCache();
  private dirs: DirectoryWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private pending = false;
  private closed = false;
  private lastKey: string | undefined;
  private lostReported = false;

  constructor(
    private readonly opts: CompileOptions,
    private readonly io: Io,
    private readonly debounceMs: number,
    private readonly retryMs: number,
    private readonly onRebuild: WatchOptions["onRebuild"],
  ) {}

  async start(): Promise<void> {
    this.listen();
    await this.rebuild();
    this.io.out(`fanc: watching ${this.opts.root} (Ctrl-C to stop)`);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.retry);
    this.dirs?.close();
    await this.running;
  }

  /** True for a path outside our own output folder (changes there are ours, not the user's). */
  private outsideOut(path: string): boolean {
    const fromOut = relative(this.opts.out, path);
    return fromOut === ".." || fromOut.startsWith(`..${sep}`) || isAbsolute(fromOut);
  }

  private listen(): void {
    const dirs = new DirectoryWatcher(
      this.opts.root,
      {
        change: (dir, filename) => {
          if (filename === null || this.outsideOut(join(dir, filename))) this.schedule();
        },
        error: (e) => this.lost(e),
      },
      (dir) => !this.outsideOut(dir),
    );
    try {
      dirs.sync();
      this.dirs = dirs;
      this.lostReported = false;
    } catch (e) {
      dirs.close();
      this.lost(e);
    }
  }

  /** The watcher died or the folder is gone: say so once and try again until it is back. */
  private lost(e: unknown): void {
    this.dirs?.close();
    this.dirs = undefined;
    if (this.closed) return;
    if (!this.lostReported) {
      this.io.err(`fanc: cannot watch ${this.opts.root} (${e instanceof Error ? e.message : String(e)}); retrying`);
      this.lostReported = true;
    }
    clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      if (this.closed) return;
      this.listen();
      if (this.dirs !== undefined) this.schedule();
    }, this.retryMs);
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.rebuild(), this.debounceMs);
  }

  private async rebuild(): Promise<void> {
    if (this.running !== undefined) {
      this.pending = true;
      return;
    }
    this.running = this.build();
    await this.running;
    this.running = undefined;
    if (this.pending && !this.closed) {
      this.pending = false;
      this.schedule();
    }
  }

  private async build(): Promise<void> {
    try {
      const t0 = performance.now();
      // Watch folders created since the last build before reading, so nothing falls between.
      if (this.dirs !== undefined) {
        try {
          this.dirs.sync();
        } catch (e) {
          this.lost(e);
        }
      }
      const sources = await readAll(this.opts, this.io);
      if (sources === undefined) this.lost(new Error("the folder cannot be read"));
      const key = sources === undefined ? undefined : fingerprint(sources);
      if (key !== undefined && key === this.lastKey) return;
      this.lastKey = key;
      const outcome =
        sources === undefined
          ? { ok: false, errors: 1, warnings: 0, sources: 0, ms: performance.now() - t0 }
          : await compileSources(this.opts, this.io, sources, { cache: this.cache, memo: this.memo, generated: this.generated }, t0);
      this.last = outcome;
      this.rebuilds++;
      const line = rebuildLine(outcome, this.rebuilds === 1);
      if (outcome.ok) this.io.out(line);
      else this.io.err(line);
      this.onRebuild?.(outcome, this.rebuilds === 1);
    } catch (e) {
      this.io.err(`fanc: rebuild failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

/** Identifies a set of sources by paths and texts, so a change that alters no `.fan` file rebuilds nothing. */
function fingerprint(sources: readonly SourceInput[]): string {
  return sources.map((s) => `${s.path}\u0000${s.text.length}\u0000${s.text}`).join("\u0001");
}

/** Compiles once, then on every change until `close()`. */
export async function startWatch(opts: CompileOptions, io: Io, tuning: WatchOptions = {}): Promise<Watcher> {
  const session = new WatchSession(opts, io, tuning.debounceMs ?? 40, tuning.retryMs ?? 500, tuning.onRebuild);
  await session.start();
  return session;
}

/** `fanc compile --watch`: watches until SIGINT or SIGTERM, then exits 0. */
export async function watchUntilSignal(opts: CompileOptions, io: Io): Promise<number> {
  const watcher = await startWatch(opts, io);
  await new Promise<void>((resolveStop) => {
    const stop = (): void => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolveStop();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  await watcher.close();
  return 0;
}
