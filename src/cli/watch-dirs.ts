/**
 * Watching a tree of folders for `fanc compile --watch`: one non-recursive `fs.watch` per
 * folder, kept in step with the tree by `sync()`. A folder watch sees every entry's changes by
 * name, so a file saved by rename (editors' safe write, `sed -i`, `os.replace`) or deleted and
 * created again is still seen. Node 20's `recursive: true` on Linux watches file handles
 * instead, and goes deaf to a file once it has been replaced by a rename.
 */
import { type FSWatcher, readdirSync, watch } from "node:fs";
import { join } from "node:path";

/** What the watcher reports: a change inside one of the folders, or a folder watch that failed. */
export interface DirectoryEvents {
  change(dir: string, filename: string | null): void;
  error(e: unknown): void;
}

/** Folders the compiler does not read (it skips them too), and folders the caller excludes. */
function skipped(name: string): boolean {
  return name.startsWith(".") || name === "node_modules";
}

/** A set of folder watches over `root` and its sub-folders. */
export class DirectoryWatcher {
  readonly #watchers = new Map<string, FSWatcher>();
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
    this.#walk(this.root, seen, true);
    for (const [dir, w] of this.#watchers) {
      if (seen.has(dir)) continue;
      w.close();
      this.#watchers.delete(dir);
    }
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }

  #walk(dir: string, seen: Set<string>, isRoot: boolean): void {
    let entries: import("node:fs").Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      if (isRoot) throw e;
      return; // removed while we walked: the next sync drops it
    }
    if (!this.#add(dir, isRoot)) return;
    seen.add(dir);
    for (const e of entries) {
      if (!e.isDirectory() || skipped(e.name)) continue;
      const sub = join(dir, e.name);
      if (!this.exclude(sub)) this.#walk(sub, seen, false);
    }
  }

  /** Watches `dir` unless it is watched already; false when a sub-folder vanished first. */
  #add(dir: string, isRoot: boolean): boolean {
    if (this.#watchers.has(dir)) return true;
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
    return true;
  }
}
