/**
 * Data declarations: structs, enums, unions and errors, checked into their models.
 */
import type * as A from "./ast.js";
import { type Checker, here } from "./check-context.js";
import { checkFields, resolveType } from "./check-types.js";
import { argNames, argString, decoratorsFor, type Target } from "./decorators.js";
import { diag } from "./diagnostics.js";
import type {
  EnumMemberModel,
  EnumModel,
  ErrorModel,
  StatusCodeName,
  StructModel,
  UnionMemberModel,
  UnionModel,
} from "./model.js";
import { checkEnumMemberName, checkMemberName } from "./naming.js";
import type { DeclEntry, FileScope } from "./scope.js";

/** The runtime's status codes, in the runtime's order. */
export const STATUS_CODES: readonly StatusCodeName[] = [
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** Properties of the runtime's error class that an error's fields would shadow. */
const ERROR_RESERVED = new Set(["code", "message", "name", "stack", "cause", "details"]);

/** The parts every declaration model shares. */
export function declBase(c: Checker, entry: DeclEntry, decs: ReadonlyMap<string, A.Decorator>) {
  const dep = decs.get("deprecated");
  const deprecated = dep === undefined ? undefined : argString(dep, c.out)?.value;
  const d = entry.decl;
  return {
    name: d.name.name,
    fullName: entry.fullName,
    package: entry.pkg,
    ...(d.doc === undefined ? {} : { doc: d.doc }),
    ...(deprecated === undefined ? {} : { deprecated }),
  };
}

/** Check a struct. */
export function checkStruct(c: Checker, scope: FileScope, entry: DeclEntry, d: A.StructDecl): StructModel {
  const decs = decoratorsFor(d.decorators, "struct", c.out);
  return { kind: "struct", ...declBase(c, entry, decs), fields: checkFields(c, scope, d.fields, "field") };
}

/** Check an error: its fields and `@code` (default FAILED_PRECONDITION). */
export function checkError(c: Checker, scope: FileScope, entry: DeclEntry, d: A.ErrorDecl): ErrorModel {
  const decs = decoratorsFor(d.decorators, "error", c.out);
  for (const f of d.fields) {
    if (ERROR_RESERVED.has(f.name.name)) {
      c.out.push(
        diag.reservedMemberName(f.name.span, {
          name: f.name.name,
          what: "field of an error",
          reason: "the error class already has this property",
        }),
      );
    }
  }
  const fields = checkFields(c, scope, d.fields, "field").filter((f) => !ERROR_RESERVED.has(f.name));
  return { kind: "error", ...declBase(c, entry, decs), code: statusCode(c, decs.get("code")), fields };
}

function statusCode(c: Checker, d: A.Decorator | undefined): StatusCodeName {
  if (d === undefined) return "FAILED_PRECONDITION";
  const names = argNames(d, c.out);
  if (names === undefined) return "FAILED_PRECONDITION";
  if (names.length !== 1) {
    c.out.push(diag.decoratorArguments(d.span, { name: "code", expected: "one status code" }));
    return "FAILED_PRECONDITION";
  }
  const text = names[0]!.name.parts.map((p) => p.name).join(".");
  if ((STATUS_CODES as readonly string[]).includes(text)) return text as StatusCodeName;
  c.out.push(diag.invalidStatusCode(names[0]!.span, { name: text, codes: STATUS_CODES.join(", ") }));
  return "FAILED_PRECONDITION";
}

/** Check an enum: members unique by name and value, values implicit from previous + 1. */
export function checkEnum(c: Checker, entry: DeclEntry, d: A.EnumDecl): EnumModel {
  const decs = decoratorsFor(d.decorators, "enum", c.out);
  if (d.members.length === 0) c.out.push(diag.emptyEnum(d.name.span, { name: d.name.name }));
  const members: EnumMemberModel[] = [];
  const byName = new Set<string>();
  const byValue = new Map<number, string>();
  let next = 0;
  for (const m of d.members) {
    here(c, m.span);
    checkEnumMemberName(m.name, c.out);
    const value = memberValue(c, m, next);
    next = value + 1;
    const mdecs = decoratorsFor(m.decorators, "enumMember", c.out);
    if (byName.has(m.name.name)) {
      c.out.push(diag.duplicateMember(m.name.span, { what: "enum member", name: m.name.name }));
      continue;
    }
    byName.add(m.name.name);
    const other = byValue.get(value);
    if (other !== undefined)
      c.out.push(diag.duplicateEnumValue(m.value?.span ?? m.name.span, { value, name: m.name.name, other }));
    else byValue.set(value, m.name.name);
    const dep = mdecs.get("deprecated");
    const deprecated = dep === undefined ? undefined : argString(dep, c.out)?.value;
    members.push({
      name: m.name.name,
      value,
      ...(m.doc === undefined ? {} : { doc: m.doc }),
      ...(deprecated === undefined ? {} : { deprecated }),
    });
  }
  return { kind: "enum", ...declBase(c, entry, decs), members };
}

function memberValue(c: Checker, m: A.EnumMember, implicit: number): number {
  if (m.value === undefined) return implicit;
  const v = Number(m.value.text);
  if (Number.isSafeInteger(v)) return v;
  c.out.push(diag.invalidEnumValue(m.value.span, { value: m.value.text }));
  return implicit;
}

/** Check a union: members unique, each with a data type. */
export function checkUnion(c: Checker, scope: FileScope, entry: DeclEntry, d: A.UnionDecl): UnionModel {
  const decs = decoratorsFor(d.decorators, "union", c.out);
  if (d.members.length === 0) c.out.push(diag.emptyUnion(d.name.span, { name: d.name.name }));
  const members: UnionMemberModel[] = [];
  const seen = new Set<string>();
  for (const m of d.members) {
    here(c, m.span);
    checkMemberName(m.name, "union member", c.out);
    decoratorsFor(m.decorators, "unionMember", c.out);
    const type = resolveType(c, scope, m.type, "union", m.name.name);
    if (seen.has(m.name.name)) {
      c.out.push(diag.duplicateMember(m.name.span, { what: "union member", name: m.name.name }));
      continue;
    }
    seen.add(m.name.name);
    if (type !== undefined) members.push({ name: m.name.name, type, ...(m.doc === undefined ? {} : { doc: m.doc }) });
  }
  return { kind: "union", ...declBase(c, entry, decs), members };
}

/** The decorator target of a declaration kind. */
export function declTarget(d: A.Decl): Target {
  return ({ Struct: "struct", Enum: "enum", Union: "union", Error: "error", Service: "service" } as const)[d.kind];
}
