/**
 * The driver: parse every source (reusing cached ASTs of unchanged files), check them as one
 * program, and hand back the model only when there are no errors.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { SourceFile } from "./ast.js";
import { CheckCache } from "./check-cache.js";
import { checkProgram } from "./checker.js";
import { type Diagnostic, diag, sortDiagnostics } from "./diagnostics.js";
import type { ProgramModel } from "./model.js";
import { describeError, type ParseResult, parseFile } from "./parser.js";
import { fanFiles } from "./source-tree.js";

/** One `.fan` file: its path relative to the compile root (with `/` separators) and its text. */
export interface SourceInput {
  readonly path: string;
  readonly text: string;
}

/** What a check returns: the model (undefined when any error, or any warning under `strict`) and all diagnostics. */
export interface CheckResult {
  readonly model: ProgramModel | undefined;
  readonly diagnostics: readonly Diagnostic[];
}

/** Options of `checkSources`. */
export interface CheckOptions {
  /** Reuse ASTs of files whose (path, text) did not change since the last check. */
  readonly cache?: ParseCache;
  /** Treat warnings as failures (the model is then undefined when any warning is reported). */
  readonly strict?: boolean;
}

/** Reuses ASTs for unchanged (path, text), so watch mode re-parses only changed files. */
export class ParseCache {
  readonly #entries = new Map<string, { readonly text: string; readonly result: ParseResult }>();
  /** Check results of unchanged files, reused while no file's interface changed (internal). */
  readonly checks = new CheckCache();
  /** How many files were parsed (not taken from the cache) so far; the language server's tests read it. */
  parses = 0;

  /** The parse of `(path, text)`, from the cache when the text is unchanged. */
  parse(path: string, text: string): ParseResult {
    const hit = this.#entries.get(path);
    if (hit !== undefined && hit.text === text) return hit.result;
    this.parses++;
    const result = parseFile(path, text);
    this.#entries.set(path, { text, result });
    return result;
  }

  /** Forget files that are no longer part of the program. */
  retain(paths: ReadonlySet<string>): void {
    for (const p of this.#entries.keys()) if (!paths.has(p)) this.#entries.delete(p);
  }

  /** How many files are cached. */
  get size(): number {
    return this.#entries.size;
  }
}

/** Parse and check a whole program. Never throws for any input. */
export function checkSources(sources: readonly SourceInput[], opts: CheckOptions = {}): CheckResult {
  const r = checkSourcesDetailed(sources, opts);
  return { model: r.model, diagnostics: r.diagnostics };
}

/** A check with what editors need besides: every file's AST and the model even when there are errors. */
export interface DetailedCheckResult extends CheckResult {
  /** The ASTs, in the order given (first of each path). */
  readonly files: readonly SourceFile[];
  /** The model of every declaration that checked, whether or not the program has errors. */
  readonly partial: ProgramModel | undefined;
}

/** `checkSources`, keeping the ASTs and the partial model (for the language server). Never throws. */
export function checkSourcesDetailed(sources: readonly SourceInput[], opts: CheckOptions = {}): DetailedCheckResult {
  const diagnostics: Diagnostic[] = [];
  const files: SourceFile[] = [];
  const seen = new Set<string>();
  const skipped = new Map<string, ParseResult["skipped"]>();
  for (const s of sources) {
    if (seen.has(s.path)) continue;
    seen.add(s.path);
    const r = opts.cache === undefined ? parseFile(s.path, s.text) : opts.cache.parse(s.path, s.text);
    files.push(r.ast);
    diagnostics.push(...r.diagnostics);
    if (r.skipped.length > 0) skipped.set(s.path, r.skipped);
  }
  opts.cache?.retain(seen);
  let model: ProgramModel | undefined;
  try {
    const checked = checkProgram(files, opts.cache?.checks);
    model = checked.model;
    diagnostics.push(...checked.diagnostics.filter((d) => !touchesSkipped(d, skipped)));
  } catch (e) {
    diagnostics.push(
      diag.internalError({ file: files[0]?.path ?? "", start: 0, end: 0 }, { detail: describeError(e) }),
    );
  }
  const sorted = sortDiagnostics(diagnostics);
  const failed = sorted.some((d) => d.severity === "error" || opts.strict === true);
  return { model: failed ? undefined : model, diagnostics: sorted, files, partial: model };
}

/** True for a checker diagnostic caused by input the parser skipped (it touches a skipped range). */
function touchesSkipped(d: Diagnostic, skipped: ReadonlyMap<string, ParseResult["skipped"]>): boolean {
  const ranges = skipped.get(d.span.file);
  return ranges?.some(([start]) => d.span.start <= start && d.span.end >= start) === true;
}

/**
 * Every `*.fan` file under `rootDir` (skipping `node_modules` and dot-folders, following
 * symbolic links: source-tree.ts), sorted by path.
 */
export async function readSources(rootDir: string): Promise<SourceInput[]> {
  const rel = await fanFiles(rootDir);
  return Promise.all(rel.map(async (path) => ({ path, text: await readFile(join(rootDir, path), "utf8") })));
}
