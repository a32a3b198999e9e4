/**
 * Reuse of check results in watch mode. A file's declarations check to the same models and
 * diagnostics as long as its AST is the same object (the ParseCache hands back unchanged ASTs)
 * and nothing it can see elsewhere changed. What one file can see of the others is their
 * "interface": package, version lines, declaration names and kinds, enum members, struct and
 * error fields, and service members. When the interfaces of all files are unchanged, only
 * changed files are checked again; program-wide checks always run.
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

/** Check results of the last run, valid while the program's interface signature is unchanged. */
export class CheckCache {
  #signature = "";
  #results = new Map<A.SourceFile, FileResult>();
  readonly #interfaces = new WeakMap<A.SourceFile, string>();
  /** Paths of the files the last run checked again (not taken from the cache); the language server reports it. */
  rechecked: readonly string[] = [];

  /** Start a run: returns the reusable results (empty when any interface changed). */
  begin(files: readonly A.SourceFile[]): ReadonlyMap<A.SourceFile, FileResult> {
    const signature = files.map((f) => this.interfaceOf(f)).join("\n");
    const previous = signature === this.#signature ? this.#results : new Map<A.SourceFile, FileResult>();
    this.#signature = signature;
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
