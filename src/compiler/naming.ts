/**
 * Casing conventions. Breaking one is a warning, never an error: types and services are
 * PascalCase, members camelCase, enum members UPPER_CASE or PascalCase, packages lowercase.
 */
import type * as A from "./ast.js";
import { type Diagnostic, diag } from "./diagnostics.js";

const PASCAL = /^[A-Z][A-Za-z0-9]*$/;
const CAMEL = /^[a-z][A-Za-z0-9]*$/;
const UPPER = /^[A-Z][A-Z0-9_]*$/;
const PACKAGE = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/;

/** Warn unless a type or service name is PascalCase. */
export function checkTypeName(name: A.Ident, what: string, out: Diagnostic[]): void {
  if (!PASCAL.test(name.name)) out.push(diag.typeCasing(name.span, { what, name: name.name }));
}

/** Warn unless a field, parameter, method, event, state or union member name is camelCase. */
export function checkMemberName(name: A.Ident, what: string, out: Diagnostic[]): void {
  if (!CAMEL.test(name.name)) out.push(diag.memberCasing(name.span, { what, name: name.name }));
}

/** Warn unless an enum member is UPPER_CASE or PascalCase. */
export function checkEnumMemberName(name: A.Ident, out: Diagnostic[]): void {
  if (!UPPER.test(name.name) && !PASCAL.test(name.name))
    out.push(diag.enumMemberCasing(name.span, { name: name.name }));
}

/** Warn unless a package name is lowercase dotted words. */
export function checkPackageName(pkg: A.PackageDecl, out: Diagnostic[]): void {
  const name = pkg.name.parts.map((p) => p.name).join(".");
  if (!PACKAGE.test(name)) out.push(diag.packageCasing(pkg.name.span, { name }));
}

/** Capitalise the first letter: `wineChanged` → `WineChanged`. */
export function capitalise(s: string): string {
  return s.length === 0 ? s : s[0]!.toUpperCase() + s.slice(1);
}
