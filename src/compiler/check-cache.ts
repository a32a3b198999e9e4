/**
 * Reuse of check results in watch mode. A file's declarations check to the same models and
 * diagnostics as long as its AST is the same object (the ParseCache hands back unchanged ASTs)
 * and nothing it can see elsewhere changed. What one file can see of the others is their
 * "interface": package, version lines, declaration names and kinds, enum members, struct and
 * error fields, and service members. A file can see only its own package and the packages it
 * imports, so when an interface changes, the files that see the changed package (and changed
 * files) are checked again and the rest are reused; when the set of packages changes,
 * everything is. `@shard(a.b.c)` paths walk struct fields through packages the file does not
 * import, so a file with a `@shard` sees every package reachable by imports. Program-wide
 * checks always run.
 */
import type * as A from "./ast.js";
import type { DependencyEdge } from "./check-services.js";
import type { Diagnostic } from "./diagnostics.js";
import type { DeclModel } from "./model.js";

/** What checking one file's declarations produced, for one pass (types, or services). */
export interface PassResult {
  readonly models: readonly (readonly [string, DeclModel])[];
  readonly diagnostics: readonly Diagnostic[];
  readonly edges: readonly DependencyEdge[];
}

/** What checking one file produced: both passes, and the packages it referred to. */
export interface FileResult {
  types?: PassResult;
  services?: PassResult;
  used?: readonly string[];
}

/** Check results of the last run, reused for files that see no package whose interface changed. */
export class CheckCache {
  /** The sorted package names of the last run. */
  #packageSet = "";
  /** Each package's interface (its files' interfaces, in path order) in the last run. */
  #packages = new Map<string, string>();
  #results = new Map<A.SourceFile, FileResult>();
  readonly #interfaces = new WeakMap<A.SourceFile, string>();
  /** Paths of the files the last run checked again (not taken from the cache); the language server reports it. */
  rechecked: readonly string[] = [];

  /** Start a run: returns the reusable results (empty when any interface changed). */
  begin(files: readonly A.SourceFile[]): ReadonlyMap<A.SourceFile, FileResult> {
    const packages = new Map<string, string[]>();
    for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
      const name = packageOf(f);
      const list = packages.get(name) ?? [];
      list.push(this.interfaceOf(f));
      packages.set(name, list);
    }
    const signatures = new Map([...packages].map(([name, ifaces]) => [name, ifaces.join("\n")]));
    const packageSet = [...signatures.keys()].sort().join(",");
    const changed = new Set([...signatures].filter(([name, sig]) => this.#packages.get(name) !== sig).map(([name]) => name));
    const previous = new Map<A.SourceFile, FileResult>();
    if (packageSet === this.#packageSet) {
      const imports = packageImports(files);
      for (const [file, result] of this.#results) if (!sees(file, changed, imports)) previous.set(file, result);
    }
    this.#packageSet = packageSet;
    this.#packages = signatures;
    this.#results = new Map();
    return previous;
  }

  /** Record a file's results of this run. */
  record(file: A.SourceFile, result: FileResult): void {
    this.#results.set(file, result);
  }

  private interfaceOf(file: A.SourceFile): string {
    let s = this.#interfaces.get(file);
    if (s === undefined) {
      s = fileInterface(file);
      this.#interfaces.set(file, s);
    }
    return s;
  }
}

function packageOf(f: A.SourceFile): string {
  return f.package === undefined ? "" : qn(f.package.name);
}

/** Each package's imports (over all its files). */
function packageImports(files: readonly A.SourceFile[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const f of files) {
    const set = out.get(packageOf(f)) ?? new Set<string>();
    for (const i of f.imports) set.add(qn(i.name));
    out.set(packageOf(f), set);
  }
  return out;
}

function hasShard(f: A.SourceFile): boolean {
  return f.decls.some((d) => d.kind === "Service" && d.members.some((m) => m.decorators.some((x) => x.name.name === "shard")));
}

/** Whether a file sees one of `changed`: its package or an import (with a `@shard`: any package reachable by imports). */
function sees(f: A.SourceFile, changed: ReadonlySet<string>, imports: ReadonlyMap<string, ReadonlySet<string>>): boolean {
  if (changed.size === 0) return false;
  const direct = [packageOf(f), ...f.imports.map((i) => qn(i.name))];
  if (direct.some((p) => changed.has(p))) return true;
  if (!hasShard(f)) return false;
  const seen = new Set(direct);
  const queue = [...direct];
  for (let p = queue.pop(); p !== undefined; p = queue.pop()) {
    if (changed.has(p)) return true;
    for (const next of imports.get(p) ?? []) {
      if (seen.has(next)) continue;
      seen.add(next);
      queue.push(next);
    }
  }
  return false;
}

function qn(q: A.QualifiedName): string {
  return q.parts.map((p) => p.name).join(".");
}

function typeText(t: A.TypeRef): string {
  return t.args.length === 0 ? qn(t.name) : `${qn(t.name)}<${t.args.map(typeText).join(",")}>`;
}

function declInterface(d: A.Decl): string {
  switch (d.kind) {
    case "Enum":
      return d.members.map((m) => m.name.name).join(",");
    case "Struct":
    case "Error":
      return d.fields.map((f) => `${f.name.name}${f.optional ? "?" : ""}:${typeText(f.type)}`).join(",");
    case "Union":
      return "";
    case "Service": {
      const version = d.decorators
        .find((x) => x.name.name === "version")
        ?.args?.map((a) => (a.kind === "StringLit" ? a.value : a.kind))
        .join(",");
      const members = d.members.map((m) => `${m.kind}:${"name" in m ? m.name.name : ""}`).join(",");
      return `${version ?? ""};${members}`;
    }
  }
}

/** Everything other files' checks can depend on, as one string. */
function fileInterface(file: A.SourceFile): string {
  const pkg = file.package === undefined ? "" : qn(file.package.name);
  const versions = file.versions.map((v) => v.value.value).join(",");
  const decls = file.decls.map((d) => `${d.kind} ${d.name.name}(${declInterface(d)})`).join(";");
  return `${file.path}|${pkg}|${versions}|${decls}`;
}
