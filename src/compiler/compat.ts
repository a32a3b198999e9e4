/**
 * Compatibility between two checked models of the same IDL (`fanc check`): every change that
 * can break a caller or a server still running the other version, attributed to the services
 * that use what changed, and whether each such service bumped its major version. Works on the
 * model, never the AST, so formatting, comments and file moves are not changes.
 */
import semver from "semver";
import { typeText } from "./check-types.js";
import { compareFields } from "./compat-fields.js";
import { type Change, change, type Found } from "./compat-kinds.js";
import type { Locate } from "./compat-locate.js";
import { compareService } from "./compat-service.js";
import type { DeclModel, EnumModel, ProgramModel, ServiceModel, TypeModel, UnionModel } from "./model.js";

export { CHANGE_KINDS, type Change, type ChangeKind, type Severity, type SourceLocation } from "./compat-kinds.js";
export { type Locate, locator } from "./compat-locate.js";

/** A service's verdict. */
export interface ServiceVerdict {
  readonly service: string;
  readonly before: string;
  readonly after: string;
  /** Breaking changes to the service or to a type it uses. */
  readonly breaking: readonly Change[];
  /** Warnings (a new error a method throws, a changed default): fail only with `strict`. */
  readonly warnings: readonly Change[];
  /** True when there is a breaking change (or, with `strict`, a warning) and the major version did not go up. */
  readonly failed: boolean;
}

/** The result of a comparison. */
export interface CompatReport {
  readonly changes: readonly Change[];
  readonly services: readonly ServiceVerdict[];
  readonly failed: boolean;
}

/** Options of `compareModels`. */
export interface CompareOptions {
  /** Source locations of each version, attached to every change. */
  readonly locate?: { readonly before: Locate; readonly after: Locate };
  /** Warnings fail a service too. */
  readonly strict?: boolean;
}

/** Compares `before` (the released IDL) with `after` (the new one). */
export function compareModels(before: ProgramModel, after: ProgramModel, opts: CompareOptions = {}): CompatReport {
  const a = declsOf(before);
  const b = declsOf(after);
  const changes: Found[] = [];
  const renames = renamedDecls(a, b);
  for (const [name, old] of a) {
    const now = b.get(name);
    const renamed = renames.get(name);
    if (now === undefined)
      changes.push(
        renamed === undefined
          ? change("removed", name, name, `${old.kind} ${name} was removed`)
          : { ...change("renamed", name, name, `${old.kind} ${name} was renamed to ${renamed}`), atAfter: renamed },
      );
    else if (old.kind !== now.kind)
      changes.push(change("kind-changed", name, name, `${name} was a ${old.kind}, is now a ${now.kind}`));
    else compareDecl(withRenames(old, renames), now, changes);
  }
  const renamedTo = new Set(renames.values());
  for (const [name, d] of b)
    if (!a.has(name) && !renamedTo.has(name)) changes.push(change("added", name, name, `${d.kind} ${name} was added`));
  const located = changes.map((c) => locate(c, opts.locate));
  const services: ServiceVerdict[] = [];
  for (const [name, old] of a) {
    if (old.kind !== "service") continue;
    const now = b.get(name);
    const uses = usedDecls(old, a);
    const mine = located.filter((c) => c.decl === name || uses.has(c.decl));
    const breaking = mine.filter((c) => c.severity === "breaking");
    const warnings = mine.filter((c) => c.severity === "warning");
    const after = now?.kind === "service" ? now.version : "(removed)";
    const bumped = now?.kind === "service" && semver.major(now.version) > semver.major(old.version);
    const bad = breaking.length > 0 || (opts.strict === true && warnings.length > 0);
    services.push({ service: name, before: old.version, after, breaking, warnings, failed: bad && !bumped });
  }
  return { changes: located, services, failed: services.some((s) => s.failed) };
}

/** Drops the internal location key and adds the locations in both versions. */
function locate(c: Found, where: CompareOptions["locate"]): Change {
  const { at, atAfter, ...rest } = c;
  if (where === undefined) return rest;
  const before = where.before(at ?? c.path);
  const after = where.after(atAfter ?? at ?? c.path);
  return { ...rest, ...(before === undefined ? {} : { before }), ...(after === undefined ? {} : { after }) };
}

function declsOf(m: ProgramModel): Map<string, DeclModel> {
  const out = new Map<string, DeclModel>();
  for (const p of m.packages) for (const d of p.decls) out.set(d.fullName, d);
  return out;
}

/**
 * Declarations removed from `a` with one of the same kind and shape added in `b`: old name →
 * new name. A rename is one finding, so the new name is not also "added".
 */
function renamedDecls(a: ReadonlyMap<string, DeclModel>, b: ReadonlyMap<string, DeclModel>): Map<string, string> {
  const out = new Map<string, string>();
  const taken = new Set<string>();
  for (const [name, old] of a) {
    if (b.has(name)) continue;
    const d = [...b.values()].find(
      (x) => !a.has(x.fullName) && !taken.has(x.fullName) && x.kind === old.kind && sameShape(old, x),
    );
    if (d === undefined) continue;
    out.set(name, d.fullName);
    taken.add(d.fullName);
  }
  return out;
}

/**
 * `d` as if written with the new names of renamed declarations: the types that refer to them and
 * the errors its methods throw. A rename is reported once, not again at every field, parameter
 * or `throws` that names it.
 */
function withRenames<T extends DeclModel>(d: T, renames: ReadonlyMap<string, string>): T {
  if (renames.size === 0) return d;
  return JSON.parse(JSON.stringify(d), (key, v: unknown) => {
    if (key === "throws" && Array.isArray(v)) return v.map((e: string) => renames.get(e) ?? e);
    const ref = v as { kind?: unknown; target?: unknown };
    if (ref !== null && typeof ref === "object" && ref.kind === "ref" && typeof ref.target === "string")
      return { ...ref, target: renames.get(ref.target) ?? ref.target };
    return v;
  }) as T;
}

function sameShape(a: DeclModel, b: DeclModel): boolean {
  const fields = (d: DeclModel): string =>
    d.kind === "struct" || d.kind === "error"
      ? d.fields.map((f) => `${f.name}:${typeText(f.type)}`).join()
      : d.kind === "enum" || d.kind === "union"
        ? d.members.map((m) => m.name).join()
        : `${d.methods.map((m) => m.name).join()}`;
  return fields(a) === fields(b);
}

function compareDecl(a: DeclModel, b: DeclModel, out: Found[]): void {
  switch (a.kind) {
    case "struct":
      compareFields(a.fullName, a.fullName, a.fields, (b as typeof a).fields, out);
      return;
    case "error": {
      const e = b as typeof a;
      if (a.code !== e.code)
        out.push(
          change("error-code-changed", a.fullName, a.fullName, `error ${a.fullName}: code ${a.code} → ${e.code}`),
        );
      compareFields(a.fullName, a.fullName, a.fields, e.fields, out);
      return;
    }
    case "enum":
      compareEnum(a, b as EnumModel, out);
      return;
    case "union":
      compareUnion(a, b as UnionModel, out);
      return;
    case "service":
      compareService(a, b as ServiceModel, out);
      return;
  }
}

function compareEnum(a: EnumModel, b: EnumModel, out: Found[]): void {
  const names = new Set(b.members.map((m) => m.name));
  for (const m of a.members)
    if (!names.has(m.name))
      out.push(
        change(
          "enum-value-removed",
          a.fullName,
          `${a.fullName}.${m.name}`,
          `enum value ${a.fullName}.${m.name} was removed`,
        ),
      );
}

function compareUnion(a: UnionModel, b: UnionModel, out: Found[]): void {
  const now = new Map(b.members.map((m) => [m.name, m]));
  for (const m of a.members) {
    const path = `${a.fullName}.${m.name}`;
    const n = now.get(m.name);
    if (n === undefined) out.push(change("union-member-removed", a.fullName, path, `union member ${path} was removed`));
    else if (typeText(n.type) !== typeText(m.type))
      out.push(change("type-changed", a.fullName, path, `${path}: type ${typeText(m.type)} → ${typeText(n.type)}`));
  }
}

/** Declarations a service reaches through its members' types (transitively). */
function usedDecls(s: ServiceModel, decls: ReadonlyMap<string, DeclModel>): Set<string> {
  const seen = new Set<string>();
  const visitType = (t: TypeModel): void => {
    if (t.kind === "list") visitType(t.element);
    else if (t.kind === "map") {
      visitType(t.key);
      visitType(t.value);
    } else if (t.kind === "ref") visitDecl(t.target);
  };
  const visitDecl = (name: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    const d = decls.get(name);
    if (d === undefined) return;
    if (d.kind === "struct" || d.kind === "error") for (const f of d.fields) visitType(f.type);
    else if (d.kind === "union") for (const m of d.members) visitType(m.type);
  };
  for (const m of s.methods) {
    for (const p of m.params) visitType(p.type);
    visitType(m.returns);
    for (const e of m.throws) visitDecl(e);
  }
  for (const e of s.events) for (const p of e.params) visitType(p.type);
  for (const st of s.states) visitType(st.type);
  for (const c of s.config) visitType(c.type);
  return seen;
}
