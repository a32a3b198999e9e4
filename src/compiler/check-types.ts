/**
 * Types and fields: resolve a TypeRef to a TypeModel, and check a field (or parameter, or config
 * entry) with its default and constraints into a FieldModel.
 */
import type * as A from "./ast.js";
import { type Checker, here } from "./check-context.js";
import { checkConstraints } from "./constraints.js";
import { decoratorsFor, argString } from "./decorators.js";
import { type Diagnostic, diag } from "./diagnostics.js";
import type { FieldModel, JsonValue, PrimitiveName, TypeModel } from "./model.js";
import { checkMemberName } from "./naming.js";
import { type FileScope, reportUnresolved, resolve } from "./scope.js";
import { closest, hintText } from "./suggest.js";
import { wireDefault } from "./values.js";

const PRIMITIVES: ReadonlySet<string> = new Set<PrimitiveName>([
  "bool",
  "int",
  "int64",
  "float",
  "decimal",
  "string",
  "bytes",
  "timestamp",
  "duration",
  "uuid",
  "json",
]);

/** Keys every runtime decoder rejects (prototype pollution), so no field may carry them. */
const UNSAFE_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/** Names that are built-in types and so cannot name a declaration. */
export const BUILTIN_TYPE_NAMES: ReadonlySet<string> = new Set([...PRIMITIVES, "list", "map", "void"]);

/** Where a type is used: `void` is allowed only as a return type. */
export type TypeUse = "field" | "return" | "union";

const DECL_KIND = { Struct: "struct", Enum: "enum", Union: "union", Error: "error" } as const;

/**
 * The FAN0101 constructor for names written in `scope`: for a simple name it hints the closest
 * declaration of this package of the kinds `wanted` (and built-in type, when `builtins`).
 */
export function unknownTypeIn(
  scope: FileScope,
  wanted: (kind: A.Decl["kind"]) => boolean,
  builtins: boolean,
): (span: A.Span, name: string) => Diagnostic {
  return (span, name) => {
    if (name.includes(".")) return diag.unknownType(span, { name, hint: "" });
    const local = [...scope.pkg.decls].filter(([, e]) => wanted(e.decl.kind)).map(([n]) => n);
    const pool = builtins ? [...BUILTIN_TYPE_NAMES, ...local] : local;
    return diag.unknownType(span, { name, hint: hintText(closest(name, pool)) });
  };
}

/** Resolve a written type; reports and returns undefined when it is not a valid type here. */
export function resolveType(
  c: Checker,
  scope: FileScope,
  ref: A.TypeRef,
  use: TypeUse,
  owner = "",
): TypeModel | undefined {
  here(c, ref.span);
  const name = ref.name.parts.length === 1 ? ref.name.parts[0]!.name : undefined;
  if (name !== undefined && BUILTIN_TYPE_NAMES.has(name)) return builtin(c, scope, ref, name, use, owner);
  const r = resolve(scope, ref.name, c.packages);
  if (!("ok" in r)) {
    c.out.push(reportUnresolved(r, ref.name.span, unknownTypeIn(scope, (k) => k !== "Service", true)));
    return undefined;
  }
  const decl = r.ok.decl;
  if (decl.kind === "Service") {
    c.out.push(diag.notAType(ref.name.span, { name: r.ok.fullName, kind: "service" }));
    return undefined;
  }
  if (ref.args.length > 0) return wrongArgs(c, ref, "no type arguments");
  return { kind: "ref", target: r.ok.fullName, declKind: DECL_KIND[decl.kind] };
}

function wrongArgs(c: Checker, ref: A.TypeRef, expected: string): undefined {
  const name = ref.name.parts.map((p) => p.name).join(".");
  c.out.push(diag.wrongTypeArguments(ref.span, { name, expected, actual: ref.args.length }));
  return undefined;
}

function builtin(
  c: Checker,
  scope: FileScope,
  ref: A.TypeRef,
  name: string,
  use: TypeUse,
  owner: string,
): TypeModel | undefined {
  if (name === "list") {
    if (ref.args.length !== 1) return wrongArgs(c, ref, "one type argument");
    const element = resolveType(c, scope, ref.args[0]!, "field");
    return element === undefined ? undefined : { kind: "list", element };
  }
  if (name === "map") return mapType(c, scope, ref);
  if (ref.args.length > 0) return wrongArgs(c, ref, "no type arguments");
  if (name !== "void") return { kind: "primitive", name: name as PrimitiveName };
  if (use === "return") return { kind: "void" };
  if (use === "union") c.out.push(diag.invalidUnionMember(ref.span, { name: owner, type: "void" }));
  else c.out.push(diag.voidNotAllowed(ref.span));
  return undefined;
}

function mapType(c: Checker, scope: FileScope, ref: A.TypeRef): TypeModel | undefined {
  if (ref.args.length !== 2) return wrongArgs(c, ref, "two type arguments");
  const key = resolveType(c, scope, ref.args[0]!, "field");
  const value = resolveType(c, scope, ref.args[1]!, "field");
  if (key === undefined || value === undefined) return undefined;
  const keyOk =
    (key.kind === "primitive" && (key.name === "string" || key.name === "int")) ||
    (key.kind === "ref" && key.declKind === "enum");
  if (!keyOk) {
    c.out.push(diag.invalidMapKey(ref.args[0]!.span, { type: typeText(key) }));
    return undefined;
  }
  return { kind: "map", key, value };
}

/** The type as the user would write it, with full names: `map<string, retail.wines.Wine>`. */
export function typeText(t: TypeModel): string {
  switch (t.kind) {
    case "primitive":
      return t.name;
    case "list":
      return `list<${typeText(t.element)}>`;
    case "map":
      return `map<${typeText(t.key)}, ${typeText(t.value)}>`;
    case "ref":
      return t.target;
    case "void":
      return "void";
  }
}

/** True for types whose values are single scalars (usable in routes and shard keys). */
export function isScalar(t: TypeModel): boolean {
  if (t.kind === "ref") return t.declKind === "enum";
  return t.kind === "primitive" && t.name !== "json" && t.name !== "bytes";
}

/** A model under construction (optional properties are set only when present). */
export type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** What a field is, for messages: "field", "parameter", "config entry". */
export type FieldWhat = "field" | "parameter" | "config entry";

/** Check one field, parameter or config entry. */
export function checkField(c: Checker, scope: FileScope, f: A.Field, what: FieldWhat): FieldModel | undefined {
  here(c, f.span);
  checkMemberName(f.name, what, c.out);
  if (UNSAFE_KEYS.has(f.name.name)) {
    c.out.push(
      diag.reservedMemberName(f.name.span, {
        name: f.name.name,
        what,
        reason: "the runtime rejects this key in every payload",
      }),
    );
  }
  const decs = decoratorsFor(f.decorators, what === "config entry" ? "configField" : "field", c.out);
  const type = resolveType(c, scope, f.type, "field");
  if (type === undefined) return undefined;
  const constraints = checkConstraints(c, decs, type);
  let dflt: JsonValue | undefined;
  if (f.default !== undefined) dflt = wireDefault(c, type, f.default, constraints);
  const model: Mutable<FieldModel> = {
    name: f.name.name,
    optional: f.optional,
    type,
    constraints,
    secret: decs.has("secret"),
  };
  if (dflt !== undefined) model.default = dflt;
  const dep = decs.get("deprecated");
  const deprecated = dep === undefined ? undefined : argString(dep, c.out)?.value;
  if (deprecated !== undefined) model.deprecated = deprecated;
  if (f.doc !== undefined) model.doc = f.doc;
  return model;
}

/** Check a list of fields; duplicate names are reported and dropped. */
export function checkFields(c: Checker, scope: FileScope, fs: readonly A.Field[], what: FieldWhat): FieldModel[] {
  const out: FieldModel[] = [];
  const seen = new Set<string>();
  for (const f of fs) {
    const m = checkField(c, scope, f, what);
    if (seen.has(f.name.name)) {
      c.out.push(diag.duplicateMember(f.name.span, { what, name: f.name.name }));
      continue;
    }
    seen.add(f.name.name);
    if (m !== undefined) out.push(m);
  }
  return out;
}
