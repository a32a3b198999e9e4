/**
 * Packages, declarations and name resolution across files. Files with the same package merge
 * into one namespace; `import a.b` makes `a.b.X` and `b.X` visible in that file, `import a.b
 * as c` makes `c.X` visible. A name from another package that is not imported is an error.
 */
import type * as A from "./ast.js";
import { type Diagnostic, diag } from "./diagnostics.js";

/** A declaration with where it lives. */
export interface DeclEntry {
  readonly decl: A.Decl;
  readonly file: A.SourceFile;
  readonly pkg: string;
  readonly fullName: string;
}

/** All files and declarations of one package. */
export interface PackageInfo {
  readonly name: string;
  /** Sorted by path. */
  readonly files: A.SourceFile[];
  readonly decls: Map<string, DeclEntry>;
}

const AMBIGUOUS = Symbol("ambiguous");

/** What one file can see: its package, and the import names it binds. */
export interface FileScope {
  readonly file: A.SourceFile;
  readonly pkg: PackageInfo;
  /** Import name (alias or last segment) → package, or a list of candidates when ambiguous. */
  readonly imports: Map<string, string | { readonly [AMBIGUOUS]: readonly string[] }>;
  /** Packages this file imports. */
  readonly imported: Set<string>;
  /** Packages this file actually referred to (for unused-import warnings). */
  readonly used: Set<string>;
}

/** Outcome of resolving a dotted name. */
export type Resolution =
  | { readonly ok: DeclEntry }
  | { readonly unknown: string }
  | { readonly notImported: string }
  | { readonly ambiguous: readonly [string, string]; readonly qualifier: string };

/** The dotted text of a qualified name. */
export function qnText(q: A.QualifiedName): string {
  return q.parts.map((p) => p.name).join(".");
}

/** Group files by package and register every declaration (duplicates are reported). */
export function buildPackages(files: readonly A.SourceFile[], out: Diagnostic[]): Map<string, PackageInfo> {
  const packages = new Map<string, PackageInfo>();
  for (const file of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    if (file.package === undefined) continue;
    const name = qnText(file.package.name);
    let pkg = packages.get(name);
    if (pkg === undefined) {
      pkg = { name, files: [], decls: new Map() };
      packages.set(name, pkg);
    }
    pkg.files.push(file);
    for (const decl of file.decls) {
      const simple = decl.name.name;
      if (pkg.decls.has(simple)) out.push(diag.duplicateDeclaration(decl.name.span, { name: simple, pkg: name }));
      else pkg.decls.set(simple, { decl, file, pkg: name, fullName: `${name}.${simple}` });
    }
  }
  return packages;
}

/** Bind one file's imports; unknown packages and clashing names are reported. */
export function buildFileScope(
  file: A.SourceFile,
  pkg: PackageInfo,
  packages: ReadonlyMap<string, PackageInfo>,
  out: Diagnostic[],
): FileScope {
  const scope: FileScope = { file, pkg, imports: new Map(), imported: new Set(), used: new Set() };
  const explicit = new Map<string, string>();
  for (const imp of file.imports) {
    const target = qnText(imp.name);
    if (!packages.has(target)) {
      out.push(diag.unknownPackage(imp.name.span, { pkg: target }));
      continue;
    }
    if (imp.alias === undefined) {
      scope.imported.add(target);
      continue;
    }
    const prev = explicit.get(imp.alias.name);
    if (prev !== undefined && prev !== target) {
      out.push(diag.duplicateImportName(imp.alias.span, { alias: imp.alias.name, other: prev }));
      continue;
    }
    explicit.set(imp.alias.name, target);
    scope.imported.add(target);
  }
  bindShortNames(file, packages, explicit, scope, out);
  return scope;
}

function bindShortNames(
  file: A.SourceFile,
  packages: ReadonlyMap<string, PackageInfo>,
  explicit: Map<string, string>,
  scope: FileScope,
  out: Diagnostic[],
): void {
  for (const [alias, target] of explicit) scope.imports.set(alias, target);
  for (const imp of file.imports) {
    const target = qnText(imp.name);
    if (imp.alias !== undefined || !packages.has(target)) continue;
    const short = imp.name.parts[imp.name.parts.length - 1]!.name;
    const prevExplicit = explicit.get(short);
    if (prevExplicit !== undefined) {
      if (prevExplicit !== target)
        out.push(diag.duplicateImportName(imp.name.span, { alias: short, other: prevExplicit }));
      continue;
    }
    const prev = scope.imports.get(short);
    if (prev === undefined || prev === target) scope.imports.set(short, target);
    else if (typeof prev === "string") scope.imports.set(short, { [AMBIGUOUS]: [prev, target] });
  }
}

/** Resolve a dotted name to a declaration as seen from one file. */
export function resolve(scope: FileScope, q: A.QualifiedName, packages: ReadonlyMap<string, PackageInfo>): Resolution {
  const parts = q.parts.map((p) => p.name);
  const simple = parts[parts.length - 1]!;
  if (parts.length === 1) {
    const hit = scope.pkg.decls.get(simple);
    return hit === undefined ? { unknown: simple } : { ok: hit };
  }
  const qualifier = parts.slice(0, -1).join(".");
  const bound = parts.length === 2 ? scope.imports.get(qualifier) : undefined;
  if (bound !== undefined) {
    if (typeof bound !== "string") {
      const [a, b] = bound[AMBIGUOUS];
      return { ambiguous: [a!, b!], qualifier };
    }
    return lookupIn(scope, bound, simple, packages);
  }
  if (!packages.has(qualifier)) return { unknown: parts.join(".") };
  if (qualifier !== scope.pkg.name && !scope.imported.has(qualifier)) return { notImported: qualifier };
  return lookupIn(scope, qualifier, simple, packages);
}

function lookupIn(
  scope: FileScope,
  pkgName: string,
  simple: string,
  packages: ReadonlyMap<string, PackageInfo>,
): Resolution {
  if (pkgName !== scope.pkg.name) scope.used.add(pkgName);
  const hit = packages.get(pkgName)?.decls.get(simple);
  return hit === undefined ? { unknown: `${pkgName}.${simple}` } : { ok: hit };
}

/** Report a failed resolution with the diagnostic for "unknown" chosen by the caller. */
export function reportUnresolved(
  r: Exclude<Resolution, { ok: DeclEntry }>,
  span: A.Span,
  unknown: (span: A.Span, name: string) => Diagnostic,
): Diagnostic {
  if ("notImported" in r) return diag.packageNotImported(span, { pkg: r.notImported });
  if ("ambiguous" in r)
    return diag.ambiguousQualifier(span, { qualifier: r.qualifier, a: r.ambiguous[0], b: r.ambiguous[1] });
  return unknown(span, r.unknown);
}

/** Warn about imports a file never used. */
export function reportUnusedImports(scope: FileScope, out: Diagnostic[]): void {
  const reported = new Set<string>();
  for (const imp of scope.file.imports) {
    const target = qnText(imp.name);
    if (!scope.imported.has(target) || scope.used.has(target) || target === scope.pkg.name || reported.has(target))
      continue;
    reported.add(target);
    out.push(diag.unusedImport(imp.span, { pkg: target }));
  }
}
