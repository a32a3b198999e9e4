/**
 * The checker: from the ASTs of all files to the checked ProgramModel. Runs in passes:
 * packages and names, data declarations, services, then program-wide graph checks.
 * Every problem is a diagnostic; an unexpected exception becomes an internal error at the
 * position being checked and the checker carries on with the next declaration.
 */
import type * as A from "./ast.js";
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
export function checkProgram(files: readonly A.SourceFile[]): { model: ProgramModel; diagnostics: Diagnostic[] } {
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
  for (const pkg of sorted) eachDecl(c, pkg, false, () => undefined);
  const edges: DependencyEdge[] = [];
  for (const pkg of sorted) eachDecl(c, pkg, true, (e) => edges.push(...e));
  guarded(c, () => checkDependencyGraph(c, edges));
  for (const scope of scopes.values()) reportUnusedImports(scope, out);
  return { model: { packages: sorted.map((p) => packageModel(c, p)) }, diagnostics: out };

  function eachDecl(c: Checker, pkg: PackageInfo, services: boolean, addEdges: (e: DependencyEdge[]) => void): void {
    for (const file of pkg.files) {
      const scope = scopes.get(file.path)!;
      for (const decl of file.decls) {
        if ((decl.kind === "Service") !== services) continue;
        const registered = pkg.decls.get(decl.name.name);
        const entry =
          registered?.decl === decl
            ? registered
            : { decl, file, pkg: pkg.name, fullName: `${pkg.name}.${decl.name.name}` };
        guarded(c, () => {
          c.at = decl.span;
          const model = checkDecl(c, scope, entry, versions.get(pkg.name), addEdges);
          if (registered?.decl === decl && model !== undefined) c.models.set(entry.fullName, model);
        });
      }
    }
  }
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
