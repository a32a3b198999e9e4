/**
 * The checker: from the ASTs of all files to the checked ProgramModel. Runs in passes:
 * packages and names, data declarations, services, then program-wide graph checks.
 * Every problem is a diagnostic; an unexpected exception becomes an internal error at the
 * position being checked and the checker carries on with the next declaration.
 */
import type * as A from "./ast.js";
import type { CheckCache, FileResult } from "./check-cache.js";
import type { Checker } from "./check-context.js";
import { checkEnum, checkError, checkStruct, checkUnion } from "./check-decls.js";
import { checkDependencyGraph } from "./check-graph.js";
import { type DependencyEdge, checkService, isSemver } from "./check-services.js";
import { BUILTIN_TYPE_NAMES } from "./check-types.js";
import { type Diagnostic, diag } from "./diagnostics.js";
import type { DeclModel, PackageModel, ProgramModel } from "./model.js";
import { checkPackageName, checkTypeName } from "./naming.js";
import { describeError } from "./parser.js";
import {
  type DeclEntry,
  type FileScope,
  type PackageInfo,
  buildFileScope,
  buildPackages,
  reportUnusedImports,
} from "./scope.js";

/** Check all files as one program. The model is complete only when no error was reported. */
export function checkProgram(
  files: readonly A.SourceFile[],
  cache?: CheckCache,
): { model: ProgramModel; diagnostics: Diagnostic[] } {
  const out: Diagnostic[] = [];
  const packages = buildPackages(files, out);
  const byFullName = new Map<string, DeclEntry>();
  for (const pkg of packages.values()) for (const e of pkg.decls.values()) byFullName.set(e.fullName, e);
  const scopes = new Map<string, FileScope>();
  for (const pkg of packages.values())
    for (const f of pkg.files) scopes.set(f.path, buildFileScope(f, pkg, packages, out));
  const c: Checker = {
    out,
    packages,
    byFullName,
    models: new Map(),
    scopes,
    at: { file: files[0]?.path ?? "", start: 0, end: 0 },
  };
  const versions = new Map<string, string | undefined>();
  for (const pkg of packages.values()) versions.set(pkg.name, packageVersion(c, pkg));
  const sorted = [...packages.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const run: Run = { c, scopes, versions, reuse: cache?.begin(files) ?? new Map(), fresh: new Map(), edges: [] };
  for (const pkg of sorted) for (const file of pkg.files) checkFile(run, pkg, file, "types");
  for (const pkg of sorted) for (const file of pkg.files) checkFile(run, pkg, file, "services");
  guarded(c, () => checkDependencyGraph(c, run.edges));
  for (const scope of scopes.values()) {
    const reused = run.reuse.get(scope.file);
    if (reused?.used !== undefined) for (const p of reused.used) scope.used.add(p);
    else (run.fresh.get(scope.file) ?? {}).used = [...scope.used];
    reportUnusedImports(scope, out);
  }
  for (const [file, result] of [...run.reuse, ...run.fresh]) if (scopes.has(file.path)) cache?.record(file, result);
  if (cache !== undefined) cache.rechecked = [...run.fresh.keys()].map((f) => f.path);
  return { model: { packages: sorted.map((p) => packageModel(c, p)) }, diagnostics: out };
}

/** State of one checker run. */
interface Run {
  readonly c: Checker;
  readonly scopes: ReadonlyMap<string, FileScope>;
  readonly versions: ReadonlyMap<string, string | undefined>;
  /** Results of the previous run that are still valid, by file. */
  readonly reuse: ReadonlyMap<A.SourceFile, FileResult>;
  /** Results computed in this run, by file. */
  readonly fresh: Map<A.SourceFile, FileResult>;
  readonly edges: DependencyEdge[];
}

/** Check one file's declarations of one pass (or take last run's results when still valid). */
function checkFile(run: Run, pkg: PackageInfo, file: A.SourceFile, pass: "types" | "services"): void {
  const { c } = run;
  const reused = run.reuse.get(file)?.[pass];
  if (reused !== undefined) {
    for (const [name, model] of reused.models) c.models.set(name, model);
    c.out.push(...reused.diagnostics);
    run.edges.push(...reused.edges);
    return;
  }
  const start = c.out.length;
  const models: [string, DeclModel][] = [];
  const edges: DependencyEdge[] = [];
  const scope = run.scopes.get(file.path)!;
  for (const decl of file.decls) {
    if ((decl.kind === "Service") !== (pass === "services")) continue;
    const registered = pkg.decls.get(decl.name.name);
    const entry =
      registered?.decl === decl ? registered : { decl, file, pkg: pkg.name, fullName: `${pkg.name}.${decl.name.name}` };
    guarded(c, () => {
      c.at = decl.span;
      const model = checkDecl(c, scope, entry, run.versions.get(pkg.name), (e) => edges.push(...e));
      if (registered?.decl === decl && model !== undefined) {
        c.models.set(entry.fullName, model);
        models.push([entry.fullName, model]);
      }
    });
  }
  run.edges.push(...edges);
  const result = run.fresh.get(file) ?? {};
  result[pass] = { models, diagnostics: c.out.slice(start), edges };
  run.fresh.set(file, result);
}

function guarded(c: Checker, f: () => void): void {
  try {
    f();
  } catch (e) {
    c.out.push(diag.internalError(c.at, { detail: describeError(e) }));
  }
}

function checkDecl(
  c: Checker,
  scope: FileScope,
  entry: DeclEntry,
  pkgVersion: string | undefined,
  addEdges: (e: DependencyEdge[]) => void,
): DeclModel | undefined {
  const d = entry.decl;
  if (BUILTIN_TYPE_NAMES.has(d.name.name)) c.out.push(diag.reservedTypeName(d.name.span, { name: d.name.name }));
  checkTypeName(d.name, d.kind.toLowerCase(), c.out);
  switch (d.kind) {
    case "Struct":
      return checkStruct(c, scope, entry, d);
    case "Error":
      return checkError(c, scope, entry, d);
    case "Enum":
      return checkEnum(c, entry, d);
    case "Union":
      return checkUnion(c, scope, entry, d);
    case "Service": {
      const { model, edges } = checkService(c, scope, entry, d, pkgVersion);
      addEdges(edges);
      return model;
    }
  }
}

/** The package's `version` line: at most one across its files, and valid semver. */
function packageVersion(c: Checker, pkg: PackageInfo): string | undefined {
  const first = pkg.files[0]?.package;
  if (first !== undefined) checkPackageName(first, c.out);
  let version: string | undefined;
  let seen = false;
  for (const f of pkg.files) {
    for (const v of f.versions) {
      if (seen) {
        c.out.push(diag.duplicateVersionLine(v.span, { pkg: pkg.name }));
        continue;
      }
      seen = true;
      if (isSemver(v.value.value)) version = v.value.value;
      else c.out.push(diag.invalidSemver(v.value.span, { text: v.value.value }));
    }
  }
  return version;
}

function packageModel(c: Checker, pkg: PackageInfo): PackageModel {
  const decls: DeclModel[] = [];
  for (const f of pkg.files) {
    for (const d of f.decls) {
      const entry = pkg.decls.get(d.name.name);
      const model = entry?.decl === d ? c.models.get(entry.fullName) : undefined;
      if (model !== undefined) decls.push(model);
    }
  }
  const doc = pkg.files.find((f) => f.package?.doc !== undefined)?.package?.doc;
  return { name: pkg.name, files: pkg.files.map((f) => f.path), ...(doc === undefined ? {} : { doc }), decls };
}
