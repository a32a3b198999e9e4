/**
 * `fanc compile <dir> [--out generated/] [--watch] [--strict]`: checks every `.fan` file under
 * `<dir>` as one program, prints diagnostics, and writes the generated TypeScript when there
 * are no errors. Exit code 0 on success, 1 when the input has errors, 2 on a usage error.
 */
import { stat } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { isAbsolute, join, relative, resolve } from "node:path";
import { CodegenError, type GenerateCache, generate } from "../codegen/index.js";
import { checkSources, type Diagnostic, formatDiagnostics, type ParseCache, readSources, type SourceInput } from "../compiler/index.js";
import { type Io, processIo } from "./io.js";
import { ForeignFileError, type OutputMemo, type WriteResult, writeOutput } from "./output.js";

/** Parsed options of `fanc compile`. */
export interface CompileOptions {
  /** The folder of `.fan` files (absolute). */
  readonly root: string;
  /** The output folder (absolute). */
  readonly out: string;
  readonly strict: boolean;
  readonly watch: boolean;
}

/** The usage text of `fanc compile`. */
export const COMPILE_USAGE = `usage: fanc compile <dir> [--out <dir>] [--watch] [--strict]

Checks every .fan file under <dir> as one program and writes TypeScript.

  --out <dir>   output folder (default: generated/)
  --watch       recompile on every change; keeps the last good output when a change is broken
  --strict      warnings fail the compile too
  -h, --help    show this help`;

/** A usage error: the message to print, exit code 2. */
export class UsageError extends Error {}

/** Parses the arguments after `compile`; throws `UsageError`. Returns undefined for `--help`. */
export function parseCompileArgs(args: readonly string[], cwd = process.cwd()): CompileOptions | undefined {
  let root: string | undefined;
  let out = "generated";
  let strict = false;
  let watch = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === "-h" || a === "--help") return undefined;
    else if (a === "--strict") strict = true;
    else if (a === "--watch" || a === "-w") watch = true;
    else if (a === "--out" || a === "-o") {
      const v = args[++i];
      if (v === undefined || v === "") throw new UsageError(`${a} needs a folder`);
      out = v;
    } else if (a.startsWith("--out=")) out = a.slice("--out=".length);
    else if (a.startsWith("-")) throw new UsageError(`unknown option ${a}`);
    else if (root !== undefined) throw new UsageError(`one source folder only (got ${root} and ${a})`);
    else root = a;
  }
  if (root === undefined) throw new UsageError("missing the folder of .fan files");
  if (out === "") throw new UsageError("--out needs a folder");
  return { root: resolve(cwd, root), out: resolve(cwd, out), strict, watch };
}

/** The result of one compile. */
export interface CompileOutcome {
  readonly ok: boolean;
  readonly errors: number;
  readonly warnings: number;
  readonly sources: number;
  /** Present when files were generated (ok). */
  readonly write?: WriteResult;
  /** Wall time of the compile, ms. */
  readonly ms: number;
}

/** State kept between compiles of one session (watch mode): parsed files and written output. */
export interface CompileSession {
  readonly cache?: ParseCache;
  readonly memo?: OutputMemo;
  /** Modules of unchanged packages are reused instead of generated again. */
  readonly generated?: GenerateCache;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
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
    const files = generate(checked.model, session.generated === undefined ? {} : { cache: session.generated, sources: (p) => texts.get(p) });
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

/**
 * One line that sums up a compile, counting the `.fan` files read and the output files apart:
 * `fanc: compiled 2 .fan files into 3 output files (1 written, 2 unchanged, 0 removed) in 12 ms`.
 */
export function summary(o: CompileOutcome): string {
  const ms = `${Math.round(o.ms)} ms`;
  const notes = [o.errors > 0 ? plural(o.errors, "error") : "", o.warnings > 0 ? plural(o.warnings, "warning") : ""].filter(Boolean);
  if (!o.ok || o.write === undefined)
    return `fanc: ${notes.join(", ") || "failed"} in ${plural(o.sources, ".fan file")}; nothing written (${ms})`;
  const w = o.write;
  const outputs = plural(w.written.length + w.unchanged, "output file");
  const parts = [`${w.written.length} written`, `${w.unchanged} unchanged`, `${w.removed.length} removed`];
  const warn = notes.length > 0 ? `, ${notes.join(", ")}` : "";
  return `fanc: compiled ${plural(o.sources, ".fan file")} into ${outputs} (${parts.join(", ")}${warn}) in ${ms}`;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

export type { Io } from "./io.js";

/** `fanc compile ...`: returns the exit code. */
export async function run(args: readonly string[], io: Io = processIo): Promise<number> {
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
  const outcome = await compileOnce(opts, io);
  if (outcome.ok) io.out(summary(outcome));
  else io.err(summary(outcome));
  return outcome.ok ? 0 : 1;
}
