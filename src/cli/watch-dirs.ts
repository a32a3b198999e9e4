/**
 * Watching a tree of folders for `fanc compile --watch`: one non-recursive `fs.watch` per
 * folder, kept in step with the tree by `sync()`. A folder watch sees every entry's changes by
 * name, so a file saved by rename (editors' safe write, `sed -i`, `os.replace`) or deleted and
 * created again is still seen. Node 20's `recursive: true` on Linux watches file handles
 * instead, and goes deaf to a file once it has been replaced by a rename.
 *
 * The folders are those the compiler reads (source-tree.ts): a symbolic link to a folder is
 * followed (and watched again where it leads once it is switched), dot-folders are not (a
 * ConfigMap's `..data` switch is a change of the entry in the folder that holds it), and a link
 * loop is left unwatched (the compile names it).
 */
import { type FSWatcher, readdirSync, realpathSync, watch } from "node:fs";
import { join } from "node:path";
import { entryKind, skippedName } from "../compiler/source-tree.js";

/** What the watcher reports: a change inside one of the folders, or a folder watch that failed. */
export interface DirectoryEvents {
  change(dir: string, filename: string | null): void;
  error(e: unknown): void;
}

/** A set of folder watches over `root` and its sub-folders. */
export class DirectoryWatcher {
  readonly #watchers = new Map<string, FSWatcher>();
  /** The real path each watched folder led to when its watch was made. */
  readonly #reals = new Map<string, string>();
  #closed = false;

  /** `exclude(dir)` keeps a folder and everything below it unwatched (fanc's own output). */
  constructor(
    private readonly root: string,
    private readonly events: DirectoryEvents,
    private readonly exclude: (dir: string) => boolean = () => false,
  ) {}

  /** Folders watched now (absolute paths). */
  get folders(): readonly string[] {
    return [...this.#watchers.keys()].sort();
  }

  /**
   * Watches every folder of the tree as it is now and drops the watches of folders that are
   * gone. Throws when `root` itself cannot be read or watched.
   */
  sync(): void {
    if (this.#closed) return;
    const seen = new Set<string>();
    this.#walk(this.root, seen, true, new Set());
    for (const [dir, w] of this.#watchers) {
      if (seen.has(dir)) continue;
      w.close();
      this.#watchers.delete(dir);
      this.#reals.delete(dir);
    }
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
    this.#reals.clear();
  }

  /** `above`: the real paths of the folders `dir` is in (one of them again is a link loop). */
  #walk(dir: string, seen: Set<string>, isRoot: boolean, above: ReadonlySet<string>): void {
    let entries: import("node:fs").Dirent[];
    let real: string;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
      real = realpathSync(dir);
    } catch (e) {
      if (isRoot) throw e;
      return; // removed while we walked: the next sync drops it
    }
    if (above.has(real) || !this.#add(dir, real, isRoot)) return;
    seen.add(dir);
    const below = new Set(above).add(real);
    for (const e of entries) {
      if (skippedName(e.name) || entryKind(dir, e) !== "dir") continue;
      const sub = join(dir, e.name);
      if (!this.exclude(sub)) this.#walk(sub, seen, false, below);
    }
  }

  /**
   * Watches `dir` (leading to `real`) unless it is watched there already: a linked folder
   * switched elsewhere is watched anew. False when a sub-folder vanished first.
   */
  #add(dir: string, real: string, isRoot: boolean): boolean {
    if (this.#watchers.has(dir)) {
      if (this.#reals.get(dir) === real) return true;
      this.#watchers.get(dir)?.close();
      this.#watchers.delete(dir);
    }
    let w: FSWatcher;
    try {
      w = watch(dir, (_event, filename) => this.events.change(dir, filename === null ? null : String(filename)));
    } catch (e) {
      if (isRoot) throw e;
      return false;
    }
    w.on("error", (e) => {
      w.close();
      if (this.#watchers.get(dir) === w) this.#watchers.delete(dir);
      // A sub-folder's watch ends when the folder is deleted; its parent's watch reports that.
      if (dir === this.root) this.events.error(e);
    });
    this.#watchers.set(dir, w);
    this.#reals.set(dir, real);
    return true;
  }
}
