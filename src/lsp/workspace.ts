/**
 * Which compile root a file belongs to, and one Project per root. The root is, in order: the
 * `root` the editor configured (initialization option or the `fan.root` setting, relative to the
 * workspace folder) when the file is under it; the nearest ancestor folder named `idl`; the
 * file's own folder. URIs are `file:` URIs; paths inside a project are relative with `/`.
 */
import { readFile } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Project } from "./project.js";

/** A file as the features see it: its project and its path in it. */
export interface Located {
  readonly project: Project;
  readonly path: string;
}

/** All projects the editor's files belong to. */
export class Workspace {
  readonly #projects = new Map<string, Promise<Project>>();
  #configured: string | undefined;

  constructor(readonly folders: readonly string[] = []) {}

  /** Set the configured compile root (absolute, or relative to the first workspace folder). */
  configure(root: string | undefined): void {
    if (root === undefined || root === "") {
      this.#configured = undefined;
      return;
    }
    this.#configured = isAbsolute(root) ? root : resolve(this.folders[0] ?? process.cwd(), root);
  }

  /** The compile root of an absolute file path. */
  rootOf(file: string): string {
    if (this.#configured !== undefined && isUnder(file, this.#configured)) return this.#configured;
    for (let dir = dirname(file); ; dir = dirname(dir)) {
      if (basename(dir) === "idl") return dir;
      if (dirname(dir) === dir || this.folders.includes(dir)) break;
    }
    return dirname(file);
  }

  /** The project and relative path of a `file:` URI (undefined for other schemes). */
  async locate(uri: string): Promise<Located | undefined> {
    if (!uri.startsWith("file:")) return undefined;
    const file = fileURLToPath(uri);
    const root = this.rootOf(file);
    let p = this.#projects.get(root);
    if (p === undefined) {
      p = Project.load(root);
      this.#projects.set(root, p);
    }
    return { project: await p, path: relative(root, file).split(sep).join("/") };
  }

  /** The `file:` URI of a path in a project. */
  uri(project: Project, path: string): string {
    return pathToFileURL(join(project.root, path)).href;
  }

  /** Every project loaded so far. */
  async projects(): Promise<Project[]> {
    return Promise.all(this.#projects.values());
  }

  /** Re-read a file from disk after the editor reports it changed, was created or deleted. */
  async refresh(uri: string): Promise<Located | undefined> {
    const at = await this.locate(uri);
    if (at === undefined) return undefined;
    const text = await readFile(fileURLToPath(uri), "utf8").catch(() => undefined);
    at.project.setDisk(at.path, text);
    return at;
  }
}

function isUnder(file: string, dir: string): boolean {
  const rel = relative(dir, file);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
}
