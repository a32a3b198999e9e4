/**
 * Compatibility between two checked models of the same IDL (`fanc check`): every change that
 * can break a caller or a server still running the other version, attributed to the services
 * that use what changed, and whether each such service bumped its major version. Works on the
 * model, never the AST, so formatting, comments and file moves are not changes.
 */
import semver from "semver";
import { typeText } from "./check-types.js";
import type {
  DeclModel,
  EnumModel,
  FieldModel,
  MethodModel,
  ProgramModel,
  ServiceModel,
  TypeModel,
  UnionModel,
} from "./model.js";

/** The kinds of change `fanc check` reports. */
export type ChangeKind =
  | "removed"
  | "renamed"
  | "added"
  | "type-changed"
  | "field-required"
  | "required-field-added"
  | "enum-value-removed"
  | "union-member-removed"
  | "error-code-changed"
  | "kind-changed"
  | "timeout-shortened"
  | "shard-key-changed"
  | "shards-changed"
  | "route-changed"
  | "transport-removed"
  | "config-required";

/** One change between the two models. */
export interface Change {
  readonly kind: ChangeKind;
  readonly breaking: boolean;
  /** What changed: `retail.wines.Wine.price`, `retail.wines.PublicWines.get(storeId)`. */
  readonly path: string;
  readonly message: string;
  /** The declaration it belongs to (fully qualified). */
  readonly decl: string;
}

/** A service's verdict. */
export interface ServiceVerdict {
  readonly service: string;
  readonly before: string;
  readonly after: string;
  /** Breaking changes to the service or to a type it uses. */
  readonly breaking: readonly Change[];
  /** True when there is a breaking change and the major version did not go up. */
  readonly failed: boolean;
}

/** The result of a comparison. */
export interface CompatReport {
  readonly changes: readonly Change[];
  readonly services: readonly ServiceVerdict[];
  readonly failed: boolean;
}

/** Compares `before` (the released IDL) with `after` (the new one). */
export function compareModels(before: ProgramModel, after: ProgramModel): CompatReport {
  const a = declsOf(before);
  const b = declsOf(after);
  const changes: Change[] = [];
  for (const [name, old] of a) {
    const now = b.get(name);
    if (now === undefined) {
      const renamed = [...b.values()].find((d) => !a.has(d.fullName) && d.kind === old.kind && sameShape(old, d));
      changes.push(
        renamed === undefined
          ? change("removed", name, name, `${old.kind} ${name} was removed`)
          : change("renamed", name, name, `${old.kind} ${name} was renamed to ${renamed.fullName}`),
      );
    } else if (old.kind !== now.kind) {
      changes.push(change("kind-changed", name, name, `${name} was a ${old.kind}, is now a ${now.kind}`));
    } else compareDecl(old, now, changes);
  }
  for (const [name, d] of b)
    if (!a.has(name)) changes.push({ ...change("added", name, name, `${d.kind} ${name} was added`), breaking: false });
  const services: ServiceVerdict[] = [];
  for (const [name, old] of a) {
    if (old.kind !== "service") continue;
    const now = b.get(name);
    const uses = usedDecls(old, a);
    const breaking = changes.filter((c) => c.breaking && (c.decl === name || uses.has(c.decl)));
    const after = now?.kind === "service" ? now.version : "(removed)";
    const bumped = now?.kind === "service" && semver.major(now.version) > semver.major(old.version);
    services.push({ service: name, before: old.version, after, breaking, failed: breaking.length > 0 && !bumped });
  }
  return { changes, services, failed: services.some((s) => s.failed) };
}

function change(kind: ChangeKind, decl: string, path: string, message: string): Change {
  return { kind, breaking: true, decl, path, message };
}

function declsOf(m: ProgramModel): Map<string, DeclModel> {
  const out = new Map<string, DeclModel>();
  for (const p of m.packages) for (const d of p.decls) out.set(d.fullName, d);
  return out;
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

function compareDecl(a: DeclModel, b: DeclModel, out: Change[]): void {
  switch (a.kind) {
    case "struct":
      compareFields(a.fullName, a.fullName, a.fields, (b as typeof a).fields, out);
      return;
    case "error": {
      const e = b as typeof a;
      if (a.code !== e.code)
        out.push(change("error-code-changed", a.fullName, a.fullName, `error ${a.fullName}: code ${a.code} → ${e.code}`));
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

/** Fields of a struct, an error, a method's or an event's parameters, or a config block. */
function compareFields(
  decl: string,
  owner: string,
  before: readonly FieldModel[],
  after: readonly FieldModel[],
  out: Change[],
): void {
  const now = new Map(after.map((f) => [f.name, f]));
  const was = new Set(before.map((f) => f.name));
  const required = (f: FieldModel): boolean => !f.optional && f.default === undefined;
  const added = after.filter((f) => !was.has(f.name));
  for (const f of before) {
    const g = now.get(f.name);
    const path = `${owner}.${f.name}`;
    if (g === undefined) {
      const twin = added.find((x) => typeText(x.type) === typeText(f.type));
      out.push(
        twin === undefined
          ? change("removed", decl, path, `${path} was removed`)
          : change("renamed", decl, path, `${path} was renamed to ${twin.name} (the wire name changes)`),
      );
      continue;
    }
    if (typeText(f.type) !== typeText(g.type))
      out.push(change("type-changed", decl, path, `${path}: type ${typeText(f.type)} → ${typeText(g.type)}`));
    if (!required(f) && required(g)) out.push(change("field-required", decl, path, `${path} was made required`));
  }
  for (const g of added) {
    const path = `${owner}.${g.name}`;
    if (required(g)) out.push(change("required-field-added", decl, path, `${path} was added as a required field`));
    else out.push({ ...change("added", decl, path, `${path} was added (optional)`), breaking: false });
  }
}

function compareEnum(a: EnumModel, b: EnumModel, out: Change[]): void {
  const names = new Set(b.members.map((m) => m.name));
  for (const m of a.members)
    if (!names.has(m.name))
      out.push(change("enum-value-removed", a.fullName, `${a.fullName}.${m.name}`, `enum value ${a.fullName}.${m.name} was removed`));
}

function compareUnion(a: UnionModel, b: UnionModel, out: Change[]): void {
  const now = new Map(b.members.map((m) => [m.name, m]));
  for (const m of a.members) {
    const path = `${a.fullName}.${m.name}`;
    const n = now.get(m.name);
    if (n === undefined) out.push(change("union-member-removed", a.fullName, path, `union member ${path} was removed`));
    else if (typeText(n.type) !== typeText(m.type))
      out.push(change("type-changed", a.fullName, path, `${path}: type ${typeText(m.type)} → ${typeText(n.type)}`));
  }
}

function compareService(a: ServiceModel, b: ServiceModel, out: Change[]): void {
  const s = a.fullName;
  if (a.shards !== b.shards) out.push(change("shards-changed", s, s, `${s}: @shards(${a.shards}) → @shards(${b.shards}) moves every key`));
  for (const t of a.transports)
    if (!b.transports.includes(t)) out.push(change("transport-removed", s, s, `${s} is no longer served over ${t}`));
  const methods = new Map(b.methods.map((m) => [m.name, m]));
  for (const m of a.methods) {
    const n = methods.get(m.name);
    const path = `${s}.${m.name}`;
    if (n === undefined) {
      out.push(change("removed", s, path, `${m.kind} ${path} was removed`));
      continue;
    }
    compareMethod(s, path, m, n, out);
  }
  for (const n of b.methods)
    if (!a.methods.some((m) => m.name === n.name))
      out.push({ ...change("added", s, `${s}.${n.name}`, `${n.kind} ${s}.${n.name} was added`), breaking: false });
  const events = new Map(b.events.map((e) => [e.name, e]));
  for (const e of a.events) {
    const n = events.get(e.name);
    const path = `${s}.${e.name}`;
    if (n === undefined) out.push(change("removed", s, path, `event ${path} was removed`));
    else compareFields(s, path, e.params, n.params, out);
  }
  const states = new Map(b.states.map((x) => [x.name, x]));
  for (const st of a.states) {
    const n = states.get(st.name);
    const path = `${s}.${st.name}`;
    if (n === undefined) out.push(change("removed", s, path, `state ${path} was removed`));
    else if (typeText(n.type) !== typeText(st.type))
      out.push(change("type-changed", s, path, `state ${path}: type ${typeText(st.type)} → ${typeText(n.type)}`));
  }
  const config = new Set(a.config.map((f) => f.name));
  for (const f of b.config)
    if (!config.has(f.name) && !f.optional && f.default === undefined)
      out.push(change("config-required", s, `${s}.config.${f.name}`, `${s}: new config key ${f.name} has no default (instances will not start without it)`));
}

function compareMethod(s: string, path: string, m: MethodModel, n: MethodModel, out: Change[]): void {
  if (m.kind !== n.kind) out.push(change("kind-changed", s, path, `${path} was a ${m.kind}, is now a ${n.kind}`));
  compareFields(s, path, m.params, n.params, out);
  if (typeText(m.returns) !== typeText(n.returns))
    out.push(change("type-changed", s, path, `${path}: returns ${typeText(m.returns)} → ${typeText(n.returns)}`));
  if (m.timeoutMs !== undefined && n.timeoutMs !== undefined && n.timeoutMs < m.timeoutMs)
    out.push(change("timeout-shortened", s, path, `${path}: @timeout ${m.timeoutMs} ms → ${n.timeoutMs} ms`));
  const key = (x: MethodModel): string => (x.shard ?? []).map((p) => p.join(".")).join(", ");
  if (key(m) !== key(n))
    out.push(change("shard-key-changed", s, path, `${path}: @shard(${key(m)}) → @shard(${key(n)}) moves keys between owners`));
  if (m.route !== undefined && m.route.path !== n.route?.path)
    out.push(change("route-changed", s, path, `${path}: @route ${m.route.path} → ${n.route?.path ?? "(none)"}`));
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
