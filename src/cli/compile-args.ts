/**
 * The light part of `fanc compile`: its arguments, usage text and summary line, which the
 * no-change fast path (`compile-entry.ts`) needs without loading the compiler.
 */
import { resolve } from "node:path";
import type { WriteResult } from "./output.js";

/** Parsed options of `fanc compile`. */
export interface CompileOptions {
  /** The folder of `.fan` files (absolute). */
  readonly root: string;
  /** The output folder (absolute). */
  readonly out: string;
  readonly strict: boolean;
  readonly watch: boolean;
  /** `browser`: modules import `fan/browser` (clients over a `fanc gateway`). */
  readonly target?: "node" | "browser";
}

/** The usage text of `fanc compile`. */
export const COMPILE_USAGE = `usage: fanc compile <dir> [--out <dir>] [--watch] [--strict] [--target node|browser]

Checks every .fan file under <dir> as one program and writes TypeScript.

  --out <dir>         output folder (default: generated/)
  --watch             recompile on every change; keeps the last good output when a change is broken
  --strict            warnings fail the compile too
  --target browser    modules for a web page: they import fan/browser, whose clients call a
                      \`fanc gateway\` over fetch and EventSource (default: node, fan/runtime)
  -h, --help          show this help`;

/** A usage error: the message to print, exit code 2. */
export class UsageError extends Error {}

/** Parses the arguments after `compile`; throws `UsageError`. Returns undefined for `--help`. */
export function parseCompileArgs(args: readonly string[], cwd = process.cwd()): CompileOptions | undefined {
  let root: string | undefined;
  let out = "generated";
  let strict = false;
  let watch = false;
  let target: "node" | "browser" = "node";
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
    else if (a === "--target" || a.startsWith("--target=")) {
      const v = a === "--target" ? args[++i] : a.slice("--target=".length);
      if (v !== "node" && v !== "browser") throw new UsageError(`--target is node or browser, got ${JSON.stringify(v ?? "")}`);
      target = v;
    }
    else if (a.startsWith("-")) throw new UsageError(`unknown option ${a}`);
    else if (root !== undefined) throw new UsageError(`one source folder only (got ${root} and ${a})`);
    else root = a;
  }
  if (root === undefined) throw new UsageError("missing the folder of .fan files");
  if (out === "") throw new UsageError("--out needs a folder");
  return { root: resolve(cwd, root), out: resolve(cwd, out), strict, watch, target };
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

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
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

