/**
 * Default values: check a literal against a field's type and turn it into its JSON wire form
 * (durations in ms, int64 as a decimal string, enums by member name, bytes as base64).
 */
import type * as A from "./ast.js";
import { type Checker, here } from "./check-context.js";
import { typeText } from "./check-types.js";
import { violatedConstraint } from "./constraints.js";
import { diag } from "./diagnostics.js";
import { numericExpectation, numericValue } from "./literals.js";
import type { Constraints, JsonValue, TypeModel } from "./model.js";

/** A failed conversion: why the literal does not fit. */
class Misfit {
  constructor(
    readonly reason: string,
    readonly span: A.Span,
  ) {}
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Convert a default to wire form, reporting (and returning undefined) when it does not fit. */
export function wireDefault(c: Checker, t: TypeModel, e: A.Expr, k: Constraints): JsonValue | undefined {
  here(c, e.span);
  const v = convert(c, t, e);
  if (v instanceof Misfit) {
    c.out.push(diag.defaultMismatch(v.span, { type: typeText(t), reason: v.reason }));
    return undefined;
  }
  const violated = violatedConstraint(k, t, v);
  if (violated !== undefined) {
    c.out.push(diag.defaultViolatesConstraint(e.span, { value: JSON.stringify(v), constraint: violated }));
    return undefined;
  }
  return v;
}

function describe(e: A.Expr): string {
  switch (e.kind) {
    case "StringLit":
      return "a string";
    case "IntLit":
      return `the integer ${e.text}`;
    case "FloatLit":
      return `the number ${e.text}`;
    case "DurationLit":
      return `the duration ${e.text}`;
    case "ListLit":
      return "a list";
    case "NameExpr":
      return `the name \`${e.name.parts.map((p) => p.name).join(".")}\``;
    case "BoolLit":
      return String(e.value);
  }
}

function expected(what: string, e: A.Expr): Misfit {
  return new Misfit(`expected ${what}, found ${describe(e)}`, e.span);
}

function bareName(e: A.Expr): string | undefined {
  return e.kind === "NameExpr" && e.name.parts.length === 1 ? e.name.parts[0]!.name : undefined;
}

function convert(c: Checker, t: TypeModel, e: A.Expr): JsonValue | Misfit {
  switch (t.kind) {
    case "primitive":
      return primitive(t.name, e);
    case "list":
      return list(c, t.element, e);
    case "map":
      return new Misfit("a map has no literal form; leave the default out", e.span);
    case "ref":
      return t.declKind === "enum"
        ? enumMember(c, t.target, e)
        : new Misfit(`a ${t.declKind} has no literal form; leave the default out`, e.span);
    case "void":
      return new Misfit("void has no value", e.span);
  }
}

function list(c: Checker, element: TypeModel, e: A.Expr): JsonValue | Misfit {
  if (e.kind !== "ListLit") return expected("a list such as `[]`", e);
  const out: JsonValue[] = [];
  for (const item of e.items) {
    const v = convert(c, element, item);
    if (v instanceof Misfit) return v;
    out.push(v);
  }
  return out;
}

function enumMember(c: Checker, target: string, e: A.Expr): JsonValue | Misfit {
  const entry = c.byFullName.get(target);
  const members = entry?.decl.kind === "Enum" ? entry.decl.members.map((m) => m.name.name) : [];
  const simple = target.slice(target.lastIndexOf(".") + 1);
  let name = bareName(e);
  if (name === undefined && e.kind === "NameExpr" && e.name.parts.length === 2 && e.name.parts[0]!.name === simple)
    name = e.name.parts[1]!.name;
  if (name === undefined) return expected(`a member of ${simple}`, e);
  if (!members.includes(name))
    return new Misfit(`\`${name}\` is not a member of ${simple} (${members.join(", ")})`, e.span);
  return name;
}

function primitive(name: string, e: A.Expr): JsonValue | Misfit {
  switch (name) {
    case "bool": {
      const b = bareName(e);
      return b === "true" ? true : b === "false" ? false : expected("true or false", e);
    }
    case "int":
    case "int64":
    case "float":
    case "decimal":
    case "duration": {
      const v = numericValue(e, name);
      if (v === undefined) return expected(numericExpectation(name), e);
      return name === "duration" && (v as number) < 0 ? new Misfit("a duration cannot be negative", e.span) : v;
    }
    case "json":
      return json(e);
    default:
      return stringLike(name, e);
  }
}

function stringLike(name: string, e: A.Expr): JsonValue | Misfit {
  if (e.kind !== "StringLit") return expected("a string", e);
  const s = e.value;
  if (name === "uuid" && !UUID.test(s)) return new Misfit(`"${s}" is not a UUID`, e.span);
  if (name === "timestamp" && (!RFC3339.test(s) || Number.isNaN(Date.parse(s))))
    return new Misfit(`"${s}" is not an RFC 3339 timestamp`, e.span);
  if (name === "bytes" && !BASE64.test(s)) return new Misfit("bytes defaults are written in base64", e.span);
  return s;
}

function json(e: A.Expr): JsonValue | Misfit {
  switch (e.kind) {
    case "StringLit":
      return e.value;
    case "IntLit":
    case "FloatLit": {
      const n = Number(e.text);
      return Number.isFinite(n) ? n : new Misfit(`${e.text} is not a finite number`, e.span);
    }
    case "ListLit": {
      const out: JsonValue[] = [];
      for (const item of e.items) {
        const v = json(item);
        if (v instanceof Misfit) return v;
        out.push(v);
      }
      return out;
    }
    default: {
      const b = bareName(e);
      if (b === "true" || b === "false") return b === "true";
      if (b === "null") return null;
      return expected("a JSON value", e);
    }
  }
}
