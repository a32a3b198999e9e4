/**
 * The folder of `.fan` sources as the compiler, `fanc check`, `fanc fmt`, the compile cache
 * and `fanc compile --watch` see it. Symbolic links are followed, to files and to folders: a
 * Kubernetes ConfigMap mounts `idl/shop.fan -> ..data/shop.fan`, `..data` itself a link to a
 * timestamped folder that an update replaces by renaming a new `..data` over it. Dot-named
 * entries (`.git`, `..data`, `..2026_12_07_...`) and `node_modules` are not walked into, so
 * a ConfigMap's files are read once, by their visible names. A link to a folder that holds it
 * (a loop) is refused with an error naming it.
 */
import type { Dirent } from "node:fs";
import { statSync } from "node:fs";
import { readdir, realpath } from "node:fs/promises";
import { join, relative, sep } from "node:path";

/** Entries never walked into or read: dot-names (`.git`, a ConfigMap's `..data`) and `node_modules`. */
export function skippedName(name: string): boolean {
  return name.startsWith(".") || name === "node_modules";
}

/**
 * What an entry of `dir` is once symbolic links are followed: "dir", "file", or undefined
 * (anything else). A link that leads nowhere is "file": reading a `.fan` one fails naming it.
 */
export function entryKind(dir: string, e: Dirent): "dir" | "file" | undefined {
  if (e.isDirectory()) return "dir";
  if (e.isFile()) return "file";
  if (!e.isSymbolicLink()) return undefined;
  try {
    const s = statSync(join(dir, e.name));
    return s.isDirectory() ? "dir" : s.isFile() ? "file" : undefined;
  } catch {
    return "file";
  }
}

/** Every `.fan` file under `root`, relative with `/`, sorted; links followed as above. */
export async function fanFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  await walk(root, root, new Set([await realpath(root)]), out);
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

async function walk(root: string, dir: string, above: ReadonlySet<string>, out: string[]): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (skippedName(e.name)) continue;
    const full = join(dir, e.name);
    const kind = entryKind(dir, e);
    if (kind === "file" && e.name.endsWith(".fan")) out.push(relative(root, full).split(sep).join("/"));
    if (kind !== "dir") continue;
    const real = await realpath(full);
    if (above.has(real))
      throw new Error(`${full} is a symbolic link loop: it leads to ${real}, a folder that holds it`);
    await walk(root, full, new Set([...above, real]), out);
  }
}
