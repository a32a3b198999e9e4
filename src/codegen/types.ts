/**
 * IDL types as TypeScript type text and as schema literals (the data `codec()` compiles), and
 * JSON values as TypeScript literals. Pure functions of the model and the module context.
 */
import type { Constraints, FieldModel, JsonValue, PrimitiveName, TypeModel } from "../compiler/model.js";
import type { ModuleContext } from "./module-context.js";
import { propKey, str } from "./names.js";

const PRIMITIVE_TS: Readonly<Record<PrimitiveName, string>> = {
  bool: "boolean",
  int: "number",
  int64: "bigint",
  float: "number",
  decimal: "string",
  string: "string",
  bytes: "Uint8Array",
  timestamp: "Date",
  duration: "number",
  uuid: "string",
  json: "unknown",
};

/** The TypeScript type of an IDL type, as written in module `ctx`. */
export function tsType(ctx: ModuleContext, t: TypeModel): string {
  switch (t.kind) {
    case "primitive":
      if (t.name === "bytes") return ctx.global("Uint8Array");
      if (t.name === "timestamp") return ctx.global("Date");
      return PRIMITIVE_TS[t.name];
    case "list":
      return `${tsType(ctx, t.element)}[]`;
    case "map":
      return mapType(ctx, t.key, t.value);
    case "ref":
      return ctx.ref(t.target, t.declKind === "error" ? "Fields" : "main");
    case "void":
      return "void";
  }
}

function mapType(ctx: ModuleContext, key: TypeModel, value: TypeModel): string {
  const record = ctx.global("Record");
  const v = tsType(ctx, value);
  if (key.kind === "ref" && key.declKind === "enum") {
    return `${ctx.global("Partial")}<${record}<${tsType(ctx, key)}, ${v}>>`;
  }
  const k = key.kind === "primitive" && key.name === "int" ? "number" : "string";
  return `${record}<${k}, ${v}>`;
}

/** The schema literal of an IDL type, with the field's constraints applied at its top level. */
export function schemaExpr(ctx: ModuleContext, t: TypeModel, c: Constraints = {}): string {
  switch (t.kind) {
    case "primitive":
      return obj([["kind", str(t.name)], ...scalarConstraints(c)]);
    case "list":
      return obj([["kind", str("list")], ["of", schemaExpr(ctx, t.element)], ...maxItems(c)]);
    case "map":
      return obj([["kind", str("map")], ["key", schemaExpr(ctx, t.key)], ["of", schemaExpr(ctx, t.value)], ...maxItems(c)]);
    case "ref":
      return obj([["kind", str("ref")], ["name", str(t.target)], ["get", `() => ${ctx.ref(t.target, "Schema")}`]]);
    case "void":
      return obj([["kind", str("void")]]);
  }
}

type Entry = readonly [string, string];

function scalarConstraints(c: Constraints): Entry[] {
  const out: Entry[] = [];
  if (c.min !== undefined) out.push(["min", jsonLiteral(c.min)]);
  if (c.max !== undefined) out.push(["max", jsonLiteral(c.max)]);
  if (c.minLength !== undefined) out.push(["minLength", jsonLiteral(c.minLength)]);
  if (c.maxLength !== undefined) out.push(["maxLength", jsonLiteral(c.maxLength)]);
  if (c.pattern !== undefined) out.push(["pattern", jsonLiteral(c.pattern)]);
  return out;
}

function maxItems(c: Constraints): Entry[] {
  return c.maxItems === undefined ? [] : [["maxItems", jsonLiteral(c.maxItems)]];
}

/** An object literal on one line from written keys and values: `{ kind: "int", min: 0 }`. */
export function obj(entries: readonly Entry[]): string {
  if (entries.length === 0) return "{}";
  return `{ ${entries.map(([k, v]) => `${k}: ${v}`).join(", ")} }`;
}

/** The schema entry of one struct field, error field, config entry or parameter. */
export function fieldSchema(ctx: ModuleContext, f: FieldModel): string {
  const entries: Entry[] = [["name", str(f.name)], ["schema", schemaExpr(ctx, f.type, f.constraints)]];
  if (f.optional) entries.push(["optional", "true"]);
  if (f.default !== undefined) entries.push(["default", jsonLiteral(f.default)]);
  if (f.secret) entries.push(["secret", "true"]);
  return obj(entries);
}

/** A JSON value as a TypeScript literal (deterministic: keys in the model's order). */
export function jsonLiteral(v: JsonValue): string {
  if (typeof v === "string") return str(v);
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${(v as readonly JsonValue[]).map(jsonLiteral).join(", ")}]`;
  return obj(Object.entries(v as { readonly [k: string]: JsonValue }).map(([k, x]) => [propKey(k), jsonLiteral(x)] as const));
}

/** `name: T;` or `name?: T | undefined;` for a member of an interface or object type. */
export function propertySignature(ctx: ModuleContext, f: FieldModel, forceOptional = false): string {
  const type = tsType(ctx, f.type);
  const key = propKey(f.name, "type");
  return f.optional || forceOptional ? `${key}?: ${type} | undefined` : `${key}: ${type}`;
}

/**
 * An inline object type of parameters, `{ storeId: string; quantity: number }`.
 * `callerSide` makes defaulted parameters optional (the decoder fills them in before a
 * handler sees them). No parameters: `Record<string, never>`.
 */
export function paramsType(ctx: ModuleContext, params: readonly FieldModel[], callerSide = false): string {
  if (params.length === 0) return `${ctx.global("Record")}<string, never>`;
  const members = params.map((p) => propertySignature(ctx, p, callerSide && p.default !== undefined));
  return `{ ${members.join("; ")} }`;
}

/** True when a caller may leave the whole request out (every parameter optional or defaulted). */
export function requestOptional(params: readonly FieldModel[]): boolean {
  return params.every((p) => p.optional || p.default !== undefined);
}
