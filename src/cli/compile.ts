/**
 * `fanc compile <dir> [--out generated/] [--watch] [--strict]`: checks every `.fan` file under
 * `<dir>` as one program, prints diagnostics, and writes the generated TypeScript when there
 * are no errors. Exit code 0 on success, 1 when the input has errors, 2 on a usage error.
 */
import { stat } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { isAbsolute, join, relative } from "node:path";
import { CodegenError, type GenerateCache, generate } from "../codegen/index.js";
import { checkSources, type Diagnostic, formatDiagnostics, type ParseCache, readSources, type SourceInput } from "../compiler/index.js";
import { type Io, processIo } from "./io.js";
import { ForeignFileError, type OutputMemo, writeOutput } from "./output.js";
import { COMPILE_USAGE, type CompileOptions, type CompileOutcome, parseCompileArgs, summary, UsageError } from "./compile-args.js";
import { type CacheProbe, remember } from "./compile-cache.js";

export { COMPILE_USAGE, type CompileOptions, type CompileOutcome, parseCompileArgs, summary, UsageError };

/** State kept between compiles of one session (watch mode): parsed files and written output. */
export interface CompileSession {
  readonly cache?: ParseCache;
  readonly memo?: OutputMemo;
  /** Modules of unchanged packages are reused instead of generated again. */
  readonly generated?: GenerateCache;
}

/** Diagnostics with paths relative to the working folder, so terminals and editors can open them. */
function formatForTerminal(root: string, diagnostics: readonly Diagnostic[], sources: readonly SourceInput[]): string {
  const shown = (path: string): string => {
    const abs = join(root, path);
    const rel = relative(process.cwd(), abs);
    return rel === "" || rel.startsWith("..") || isAbsolute(rel) ? abs : rel;
  };
  const ds = diagnostics.map((d) => ({ ...d, span: { ...d.span, file: shown(d.span.file) } }));
  return formatDiagnostics(ds, sources.map((s) => ({ path: shown(s.path), text: s.text })));
}

/** Reads every `.fan` file under the root; prints the reason and returns undefined when it cannot. */
export async function readAll(opts: CompileOptions, io: Io): Promise<SourceInput[] | undefined> {
  try {
    return await readSources(opts.root);
  } catch (e) {
    io.err(`error: cannot read ${opts.root}: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

/** Reads, checks and generates once; prints diagnostics to `io.err`. Never throws for bad input. */
export async function compileOnce(opts: CompileOptions, io: Io, session: CompileSession = {}): Promise<CompileOutcome> {
  const t0 = performance.now();
  const sources = await readAll(opts, io);
  if (sources === undefined) return { ok: false, errors: 1, warnings: 0, sources: 0, ms: performance.now() - t0 };
  return compileSources(opts, io, sources, session, t0);
}

/** Checks and generates already-read sources (watch mode reads them itself to skip no-op changes). */
export async function compileSources(
  opts: CompileOptions,
  io: Io,
  sources: readonly SourceInput[],
  session: CompileSession = {},
  t0 = performance.now(),
): Promise<CompileOutcome> {
  if (sources.length === 0) {
    io.err(`error: no .fan files under ${opts.root}; nothing compiled, nothing written or removed`);
    return { ok: false, errors: 1, warnings: 0, sources: 0, ms: performance.now() - t0 };
  }
  const checked = checkSources(sources, session.cache === undefined ? { strict: opts.strict } : { cache: session.cache, strict: opts.strict });
  const errors = checked.diagnostics.filter((d) => d.severity === "error").length;
  const warnings = checked.diagnostics.length - errors;
  if (checked.diagnostics.length > 0) io.err(formatForTerminal(opts.root, checked.diagnostics, sources));
  const failed = errors > 0 || (opts.strict && warnings > 0) || checked.model === undefined;
  const base = { errors, warnings, sources: sources.length };
  if (failed) return { ok: false, ...base, ms: performance.now() - t0 };
  try {
    const texts = new Map(sources.map((s) => [s.path, s.text]));
    const files = generate(checked.model, {
      ...(opts.target === undefined ? {} : { target: opts.target }),
      ...(session.generated === undefined ? {} : { cache: session.generated, sources: (p: string) => texts.get(p) }),
    });
    const write = await writeOutput(opts.out, files, session.memo);
    return { ok: true, ...base, write, ms: performance.now() - t0 };
  } catch (e) {
    if (e instanceof CodegenError) io.err(`error ${e.code}: ${e.message}`);
    else if (e instanceof ForeignFileError) io.err(`error: ${e.message}`);
    else if (isFsError(e)) io.err(`error: cannot write to ${opts.out}: ${fsReason(e)}`);
    else throw e;
    return { ok: false, ...base, errors: errors + 1, ms: performance.now() - t0 };
  }
}

/** An error from the file system (it has an errno code such as ENOTDIR or EACCES). */
function isFsError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === "string" && (e as NodeJS.ErrnoException).syscall !== undefined;
}

const FS_REASONS: Readonly<Record<string, string>> = {
  ENOTDIR: "a file is where a folder of the output should be",
  EEXIST: "a file is where a folder of the output should be",
  EISDIR: "a folder is where a generated file should be",
  EACCES: "permission denied",
  EPERM: "permission denied",
  EROFS: "the file system is read-only",
  ENOSPC: "no space left on the device",
};

/** A file-system error in words, then its code and path: `permission denied (EACCES at gen/a.ts)`. */
function fsReason(e: NodeJS.ErrnoException): string {
  const what = FS_REASONS[e.code ?? ""] ?? e.message.replace(/^[A-Z]+: /, "").replace(/, \w+ '.*'$/, "");
  return `${what} (${e.code}${e.path === undefined ? "" : ` at ${e.path}`})`;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

export type { Io } from "./io.js";

/**
 * `fanc compile ...`: returns the exit code. `cache`: the no-change fast path's probe
 * (`compile-entry.ts`), to record a successful compile for the next run.
 */
export async function run(args: readonly string[], io: Io = processIo, cache?: CacheProbe): Promise<number> {
  let opts: CompileOptions | undefined;
  try {
    opts = parseCompileArgs(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`fanc compile: ${e.message}\n\n${COMPILE_USAGE}`);
    return 2;
  }
  if (opts === undefined) {
    io.out(COMPILE_USAGE);
    return 0;
  }
  if (!(await isDirectory(opts.root))) {
    io.err(`fanc compile: ${opts.root} is not a folder`);
    return 2;
  }
  if (opts.watch) {
    const { watchUntilSignal } = await import("./watch.js");
    return watchUntilSignal(opts, io);
  }
  const printed: string[] = [];
  const outcome = await compileOnce(opts, {
    out: (l) => io.out(l),
    err: (l) => {
      printed.push(l);
      io.err(l);
    },
  });
  if (outcome.ok) io.out(summary(outcome));
  else io.err(summary(outcome));
  if (outcome.ok && cache !== undefined) await remember(cache, opts.out, printed.join("\n"), outcome.warnings);
  return outcome.ok ? 0 : 1;
}
