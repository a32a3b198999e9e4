/**
 * The no-change fast path of `fanc compile`: when the `.fan` files, the options, the compiler
 * itself and every output file are what the last successful compile of the same folders saw,
 * print what it printed and stop, without loading the parser or the code generator (loading
 * them is most of a no-change compile: ~0.3 s of CPU). Kept in
 * `node_modules/.cache/fan/` (the usual home of tool caches), never beside the output; no
 * `node_modules` above the output folder, no cache. Imports nothing heavy on purpose.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { fanFiles } from "../compiler/source-tree.js";

/** What a successful compile leaves for the next one. */
interface Entry {
  readonly key: string;
  /** Output file (relative, `/`-separated) → sha256 of its text. */
  readonly outputs: Readonly<Record<string, string>>;
  /** What the compile printed to stderr (warnings), to print again. */
  readonly stderr: string;
  readonly warnings: number;
  readonly sources: number;
}

/** The inputs of one compile, read once: the key of the cache, and where its entry lives. */
export interface CacheProbe {
  readonly key: string;
  readonly file: string;
  readonly sources: number;
}

const sha = (text: string): string => createHash("sha256").update(text).digest("hex");

/** `.ts` files under `dir`, relative with `/` (none when it does not exist). */
async function tsFiles(root: string, dir: string, out: string[]): Promise<void> {
  let entries: import("node:fs").Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const full = join(dir, e.name);
    if (e.isDirectory()) await tsFiles(root, full, out);
    else if (e.isFile() && e.name.endsWith(".ts")) out.push(relative(root, full).split(sep).join("/"));
  }
}

/** The compiler's identity: its modules' sizes and times (sources under tsx, or the build). */
async function compilerStamp(): Promise<string> {
  const here = dirname(fileURLToPath(import.meta.url));
  const parts: string[] = [];
  for (const d of ["compiler", "codegen", "cli"]) {
    const dir = join(here, "..", d);
    for (const name of (await readdir(dir)).sort()) {
      const s = await stat(join(dir, name));
      parts.push(`${d}/${name}:${s.size}:${s.mtimeMs}`);
    }
  }
  return sha(parts.join("\n"));
}

/** The cache folder: `node_modules/.cache/fan` in the nearest folder above `from` that has node_modules. */
async function cacheDir(from: string): Promise<string | undefined> {
  for (let dir = from; ; dir = dirname(dir)) {
    try {
      if ((await stat(join(dir, "node_modules"))).isDirectory()) return join(dir, "node_modules", ".cache", "fan");
    } catch {
      // not here
    }
    if (dirname(dir) === dir) return undefined;
  }
}

/** Reads the inputs and computes the key; undefined when there is no cache to use. */
export async function probe(root: string, out: string, strict: boolean): Promise<CacheProbe | undefined> {
  try {
    const dir = await cacheDir(out);
    if (dir === undefined) return undefined;
    // As `readSources` finds them.
    const files = await fanFiles(root);
    if (files.length === 0) return undefined;
    const h = createHash("sha256").update(`${await compilerStamp()}\n${strict}\n${root}\n${out}\n`);
    for (const f of files) h.update(`${f}\n${await readFile(join(root, f), "utf8")}\n\u0000`);
    return {
      key: h.digest("hex"),
      file: join(dir, `compile-${sha(`${root}\n${out}`).slice(0, 16)}.json`),
      sources: files.length,
    };
  } catch {
    return undefined;
  }
}

/** The last compile's printout when nothing changed since (inputs, compiler, outputs), else undefined. */
export async function unchanged(
  p: CacheProbe,
  out: string,
): Promise<{ stderr: string; outputs: number; warnings: number } | undefined> {
  try {
    const entry = JSON.parse(await readFile(p.file, "utf8")) as Entry;
    if (entry.key !== p.key) return undefined;
    const onDisk: string[] = [];
    await tsFiles(out, out, onDisk);
    const names = Object.keys(entry.outputs);
    if (onDisk.length !== names.length) return undefined;
    for (const rel of names) {
      if (sha(await readFile(join(out, rel), "utf8")) !== entry.outputs[rel]) return undefined;
    }
    return { stderr: entry.stderr, outputs: names.length, warnings: entry.warnings };
  } catch {
    return undefined;
  }
}

/** Records a successful compile's outputs (read back from `out`) and printout. Best effort. */
export async function remember(p: CacheProbe, out: string, stderr: string, warnings: number): Promise<void> {
  try {
    const files: string[] = [];
    await tsFiles(out, out, files);
    const outputs: Record<string, string> = {};
    for (const rel of files) outputs[rel] = sha(await readFile(join(out, rel), "utf8"));
    await mkdir(dirname(p.file), { recursive: true });
    const entry: Entry = { key: p.key, outputs, stderr, warnings, sources: p.sources };
    await writeFile(p.file, JSON.stringify(entry));
  } catch {
    // a cache that cannot be written only costs the next compile its fast path
  }
}
