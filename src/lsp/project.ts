/**
 * One compile root as the language server sees it: the `.fan` files on disk under the root,
 * overlaid by the editor's open documents, checked as one program on every change. The
 * compiler's ParseCache re-parses only changed files and its CheckCache re-checks only changed
 * files while no file's interface (names, fields, members) changed, so a keystroke in a large
 * program costs about one file's parse and check.
 */
import { readSources } from "../compiler/index.js";
import type * as A from "../compiler/ast.js";
import type { Diagnostic } from "../compiler/diagnostics.js";
import type { ProgramModel } from "../compiler/model.js";
import { ParseCache, checkSourcesDetailed } from "../compiler/program.js";
import { type Analysis, analyse } from "./analysis.js";

/** What one check of the program gives the features. */
export interface Snapshot {
  /** Monotonic: each check makes a new snapshot. */
  readonly version: number;
  /** ASTs by path relative to the root. */
  readonly files: ReadonlyMap<string, A.SourceFile>;
  /** Diagnostics by path (every file of the program has an entry, possibly empty). */
  readonly diagnostics: ReadonlyMap<string, readonly Diagnostic[]>;
  /** The model of everything that checked, errors or not. */
  readonly model: ProgramModel | undefined;
  /** Declarations, references and scopes for navigation (built on first use, not per keystroke). */
  analysis(): Analysis;
}

/** Counters for tests and the benchmark: how much work the last check did. */
export interface CheckStats {
  /** Files parsed (not taken from the cache) by the last check. */
  readonly parsed: number;
  /** Files whose declarations were checked again by the last check. */
  readonly rechecked: readonly string[];
  readonly ms: number;
}

/** A compile root: disk sources, editor overlays, and the last snapshot. */
export class Project {
  readonly #cache = new ParseCache();
  readonly #disk = new Map<string, string>();
  readonly #open = new Map<string, string>();
  #snapshot: Snapshot | undefined;
  #version = 0;
  #stats: CheckStats = { parsed: 0, rechecked: [], ms: 0 };

  private constructor(readonly root: string) {}

  /** Reads every `.fan` file under `root` (an unreadable root is an empty program). */
  static async load(root: string): Promise<Project> {
    const p = new Project(root);
    const sources = await readSources(root).catch(() => []);
    for (const s of sources) p.#disk.set(s.path, s.text);
    return p;
  }

  /** The editor's text of `path` (open or changed); the next check uses it. */
  setOpen(path: string, text: string): void {
    if (this.#open.get(path) === text) return;
    this.#open.set(path, text);
    this.#snapshot = undefined;
  }

  /** The editor closed `path`: the disk text counts again. */
  close(path: string, diskText: string | undefined): void {
    this.#open.delete(path);
    this.setDisk(path, diskText);
  }

  /** A file changed on disk (`undefined`: deleted). */
  setDisk(path: string, text: string | undefined): void {
    if (text === undefined) this.#disk.delete(path);
    else this.#disk.set(path, text);
    this.#snapshot = undefined;
  }

  /** The current text of `path`, open or on disk. */
  text(path: string): string | undefined {
    return this.#open.get(path) ?? this.#disk.get(path);
  }

  /** Whether `path` is part of this project. */
  has(path: string): boolean {
    return this.#open.has(path) || this.#disk.has(path);
  }

  /** The work the last check did. */
  get stats(): CheckStats {
    return this.#stats;
  }

  /** The snapshot of the current texts, checking the program when anything changed. */
  snapshot(): Snapshot {
    if (this.#snapshot !== undefined) return this.#snapshot;
    const t0 = performance.now();
    const paths = new Set([...this.#disk.keys(), ...this.#open.keys()]);
    const sources = [...paths].sort().map((path) => ({ path, text: this.text(path)! }));
    const parsesBefore = this.#cache.parses;
    const r = checkSourcesDetailed(sources, { cache: this.#cache });
    const diagnostics = new Map<string, Diagnostic[]>();
    for (const s of sources) diagnostics.set(s.path, []);
    for (const d of r.diagnostics) diagnostics.get(d.span.file)?.push(d);
    const files = new Map(r.files.map((f) => [f.path, f]));
    let analysis: Analysis | undefined;
    this.#snapshot = {
      version: ++this.#version,
      files,
      diagnostics,
      model: r.partial,
      analysis: () => {
        analysis ??= analyse(r.files);
        return analysis;
      },
    };
    this.#stats = {
      parsed: this.#cache.parses - parsesBefore,
      rechecked: this.#cache.checks.rechecked,
      ms: performance.now() - t0,
    };
    return this.#snapshot;
  }
}
