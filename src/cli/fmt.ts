/**
 * `fanc fmt [--check] <dir|file>...`: rewrite `.fan` files in the canonical layout
 * (`src/compiler/format.ts`). `--check` writes nothing, lists the files that would change and
 * exits 1 when there are any (for CI). A file the formatter cannot read is reported and left
 * alone (exit 1).
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { formatSource } from "../compiler/format.js";
import { fanFiles } from "../compiler/source-tree.js";
import type { Io } from "./io.js";

export const FMT_USAGE = `usage: fanc fmt [--check] <dir|file.fan>...

Rewrites .fan files in the canonical layout (folders are searched for *.fan, skipping
node_modules and dot-folders). Comments and line breaks are kept.

  --check     write nothing; list the files that would change and exit 1 if any
  -h, --help  show this help`;

/** `fanc fmt ...`: returns the exit code (0 formatted or already canonical, 1 changes under --check or unreadable files, 2 usage). */
export async function run(args: readonly string[], io: Io): Promise<number> {
  if (args.includes("-h") || args.includes("--help")) {
    io.out(FMT_USAGE);
    return 0;
  }
  const check = args.includes("--check");
  const unknown = args.find((a) => a.startsWith("-") && a !== "--check");
  const targets = args.filter((a) => !a.startsWith("-"));
  if (unknown !== undefined || targets.length === 0) {
    io.err(unknown !== undefined ? `fanc fmt: unknown option ${unknown}\n${FMT_USAGE}` : FMT_USAGE);
    return 2;
  }
  const files: string[] = [];
  for (const t of targets) {
    const s = await stat(t).catch(() => undefined);
    if (s === undefined) {
      io.err(`fanc fmt: ${t}: no such file or folder`);
      return 2;
    }
    if (s.isDirectory()) for (const f of await fanFiles(t)) files.push(join(t, f));
    else files.push(t);
  }
  let changed = 0;
  let failed = 0;
  for (const file of files.sort()) {
    const text = await readFile(file, "utf8");
    const r = formatSource(file, text);
    if (!r.ok) {
      io.err(`fanc fmt: ${file}${r.at === undefined ? "" : `:${r.at.line}:${r.at.column}`}: ${r.reason}`);
      failed++;
      continue;
    }
    if (!r.changed) continue;
    changed++;
    if (check) io.out(file);
    else await writeFile(file, r.text);
  }
  const verb = check ? "would reformat" : "reformatted";
  io.err(
    `fanc fmt: ${verb} ${changed} of ${files.length} .fan file${files.length === 1 ? "" : "s"}${failed > 0 ? `; ${failed} could not be formatted` : ""}`,
  );
  return failed > 0 || (check && changed > 0) ? 1 : 0;
}
