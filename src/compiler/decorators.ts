/**
 * Which decorators exist, where each may appear, and helpers that read their arguments.
 * Every helper reports its own diagnostic and returns `undefined` on bad arguments.
 */
import type * as A from "./ast.js";
import { type Diagnostic, diag } from "./diagnostics.js";
import { closest, hintText } from "./suggest.js";

/** The kinds of things a decorator can be written on. */
export type Target =
  | "struct"
  | "enum"
  | "union"
  | "error"
  | "service"
  | "rpc"
  | "push"
  | "event"
  | "state"
  | "depends"
  | "config"
  | "on"
  | "field"
  | "configField"
  | "enumMember"
  | "unionMember";

const TARGET_TEXT: Readonly<Record<Target, string>> = {
  struct: "a struct",
  enum: "an enum",
  union: "a union",
  error: "an error",
  service: "a service",
  rpc: "an rpc",
  push: "a push",
  event: "an event",
  state: "a state",
  depends: "a `depends`",
  config: "a `config` block",
  on: "an `on` subscription",
  field: "a field or parameter",
  configField: "a config entry",
  enumMember: "an enum member",
  unionMember: "a union member",
};

const FIELDS: readonly Target[] = ["field", "configField"];
const METHODS: readonly Target[] = ["rpc", "push"];

/** Every known decorator and the targets it is allowed on. */
export const DECORATOR_TARGETS: Readonly<Record<string, readonly Target[]>> = {
  deprecated: [
    "struct",
    "enum",
    "union",
    "error",
    "service",
    "rpc",
    "push",
    "event",
    "field",
    "configField",
    "enumMember",
  ],
  code: ["error"],
  version: ["service"],
  transports: ["service"],
  shards: ["service"],
  unique: ["service"],
  timeout: ["rpc"],
  ttl: ["push"],
  idempotent: METHODS,
  retry: METHODS,
  route: METHODS,
  shard: [...METHODS, "state"],
  fallback: METHODS,
  since: ["rpc", "push", "event"],
  broadcast: ["event"],
  full: ["state"],
  delta: ["state"],
  min: FIELDS,
  max: FIELDS,
  minLength: FIELDS,
  maxLength: FIELDS,
  maxItems: FIELDS,
  pattern: FIELDS,
  secret: ["configField"],
  auth: ["service", "rpc", "push"],
};

const NONE: ReadonlyMap<string, A.Decorator> = new Map();

/**
 * Check names, placement and repetition of the decorators on one target; returns the valid
 * ones by name (the first of a repeated decorator wins).
 */
export function decoratorsFor(
  decs: readonly A.Decorator[],
  target: Target,
  out: Diagnostic[],
): ReadonlyMap<string, A.Decorator> {
  if (decs.length === 0) return NONE;
  const found = new Map<string, A.Decorator>();
  for (const d of decs) {
    const name = d.name.name;
    const allowed = DECORATOR_TARGETS[name];
    if (allowed === undefined || !Object.hasOwn(DECORATOR_TARGETS, name)) {
      out.push(
        diag.unknownDecorator(d.name.span, {
          name,
          hint: hintText(closest(name, Object.keys(DECORATOR_TARGETS)), "@"),
        }),
      );
    } else if (!allowed.includes(target)) {
      if (name === "secret" && target === "field") out.push(diag.secretMisplaced(d.span));
      else out.push(diag.decoratorMisplaced(d.span, { name, target: TARGET_TEXT[target] }));
    } else if (found.has(name)) {
      out.push(diag.duplicateDecorator(d.span, { name }));
    } else {
      found.set(name, d);
    }
  }
  return found;
}

function bad(d: A.Decorator, expected: string, out: Diagnostic[]): undefined {
  out.push(diag.decoratorArguments(d.span, { name: d.name.name, expected }));
  return undefined;
}

/** `@flag` or `@flag()`: true when it has no arguments. */
export function argNone(d: A.Decorator, out: Diagnostic[]): boolean {
  if (d.args === undefined || d.args.length === 0) return true;
  bad(d, "no arguments", out);
  return false;
}

/** Exactly one argument of any kind. */
export function argOne(d: A.Decorator, expected: string, out: Diagnostic[]): A.Expr | undefined {
  if (d.args?.length !== 1) return bad(d, expected, out);
  return d.args[0];
}

/** Exactly one string argument. */
export function argString(d: A.Decorator, out: Diagnostic[]): A.StringLit | undefined {
  const e = argOne(d, "one string argument", out);
  if (e === undefined) return undefined;
  return e.kind === "StringLit" ? e : bad(d, "one string argument", out);
}

/** Exactly one integer argument, returned as a number (must be a safe integer). */
export function argInt(d: A.Decorator, out: Diagnostic[]): { value: number; lit: A.IntLit } | undefined {
  const e = argOne(d, "one integer argument", out);
  if (e === undefined) return undefined;
  if (e.kind !== "IntLit") return bad(d, "one integer argument", out);
  const value = Number(e.text);
  if (!Number.isSafeInteger(value)) {
    out.push(diag.invalidNumber(e.span, { text: e.text }));
    return undefined;
  }
  return { value, lit: e };
}

/** Exactly one duration argument (`2s`). */
export function argDuration(d: A.Decorator, out: Diagnostic[]): A.DurationLit | undefined {
  const e = argOne(d, "one duration such as `2s` or `250ms`", out);
  if (e === undefined) return undefined;
  return e.kind === "DurationLit" ? e : bad(d, "one duration such as `2s` or `250ms`", out);
}

/** Zero or more string arguments: `@auth`, `@auth("admin", "ops")`. */
export function argStrings(d: A.Decorator, out: Diagnostic[]): string[] | undefined {
  const args = d.args ?? [];
  if (args.some((a) => a.kind !== "StringLit")) return bad(d, "string arguments (role names), or none", out);
  return (args as A.StringLit[]).map((a) => a.value);
}

/** One or more (possibly dotted) names: `@transports(http, amqp)`, `@shard(a, b.c)`. */
export function argNames(d: A.Decorator, out: Diagnostic[]): A.NameExpr[] | undefined {
  const args = d.args ?? [];
  if (args.length === 0 || args.some((a) => a.kind !== "NameExpr")) return bad(d, "one or more names", out);
  return args as A.NameExpr[];
}
