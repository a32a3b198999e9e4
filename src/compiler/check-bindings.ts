/**
 * How a method binds to its parameters: `@route("/path/{param}")` and `@shard(a, b.c)`.
 */
import type * as A from "./ast.js";
import type { Checker } from "./check-context.js";
import { isScalar, typeText } from "./check-types.js";
import { argNames, argString } from "./decorators.js";
import { diag } from "./diagnostics.js";
import type { FieldModel, MethodModel, TypeModel } from "./model.js";

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The parameters named in a route path, or a reason the path is malformed. */
function routeParams(path: string): string[] | { reason: string } {
  if (!path.startsWith("/")) return { reason: "a route starts with `/`" };
  if (/[?#]/.test(path)) return { reason: "a route has no query string or fragment" };
  const names: string[] = [];
  const re = /\{([^{}]*)\}/g;
  for (let m = re.exec(path); m !== null; m = re.exec(path)) {
    const name = m[1]!;
    if (!PARAM_NAME.test(name)) return { reason: `\`{${name}}\` is not a parameter name` };
    if (names.includes(name)) return { reason: `\`{${name}}\` appears twice` };
    names.push(name);
  }
  if (/[{}]/.test(path.replace(re, ""))) return { reason: "unbalanced `{` or `}`" };
  return names;
}

/**
 * Check `@route`. An @idempotent rpc with a route is served by GET, which carries no body, so
 * every required parameter must then appear in the path.
 */
export function checkRoute(
  c: Checker,
  d: A.Decorator,
  method: string,
  params: readonly FieldModel[],
  getLike: boolean,
): MethodModel["route"] {
  const s = argString(d, c.out);
  if (s === undefined) return undefined;
  const names = routeParams(s.value);
  if (!Array.isArray(names)) {
    c.out.push(diag.invalidRoute(s.span, { path: s.value, reason: names.reason }));
    return undefined;
  }
  let ok = true;
  for (const name of names) {
    const p = params.find((x) => x.name === name);
    const problem =
      p === undefined
        ? undefined
        : p.optional
          ? `path parameter \`${name}\` is optional`
          : isScalar(p.type)
            ? undefined
            : `path parameter \`${name}\` has type ${typeText(p.type)}, not a scalar`;
    if (p === undefined) c.out.push(diag.routeUnknownParam(s.span, { param: name, method }));
    else if (problem !== undefined) c.out.push(diag.invalidRoute(s.span, { path: s.value, reason: problem }));
    ok &&= p !== undefined && problem === undefined;
  }
  if (getLike) {
    for (const p of params) {
      // Optional and defaulted parameters may travel in the query string; only a required one
      // without a default must be in the path (a GET has no body to carry it).
      if (!p.optional && p.default === undefined && !names.includes(p.name)) {
        c.out.push(diag.routeMissingParam(s.span, { param: p.name, method }));
        ok = false;
      }
    }
  }
  return ok ? { path: s.value, params: names } : undefined;
}

/** Check `@shard(...)`: each path is a parameter then struct fields, never optional, ending in a scalar. */
export function checkShard(c: Checker, d: A.Decorator, params: readonly FieldModel[]): string[][] | undefined {
  const names = argNames(d, c.out);
  if (names === undefined) return undefined;
  const paths: string[][] = [];
  for (const n of names) {
    const parts = n.name.parts.map((p) => p.name);
    if (shardPath(c, n, parts, params)) paths.push(parts);
  }
  return paths.length === names.length ? paths : undefined;
}

function unresolvedPath(c: Checker, n: A.NameExpr, path: string, reason: string): false {
  c.out.push(diag.shardPathUnresolved(n.span, { path, reason }));
  return false;
}

function shardPath(c: Checker, n: A.NameExpr, parts: readonly string[], params: readonly FieldModel[]): boolean {
  const path = parts.join(".");
  let fields: readonly FieldModel[] = params;
  let owner = "the method";
  let type: TypeModel | undefined;
  for (const part of parts) {
    if (type !== undefined) {
      const struct = type.kind === "ref" ? c.models.get(type.target) : undefined;
      if (struct === undefined || (struct.kind !== "struct" && struct.kind !== "error"))
        return unresolvedPath(c, n, path, `\`${owner}\` is a ${typeText(type)}, not a struct`);
      fields = struct.fields;
      owner = struct.name;
    }
    const f = fields.find((x) => x.name === part);
    if (f === undefined)
      return unresolvedPath(
        c,
        n,
        path,
        type === undefined ? `\`${part}\` is not a parameter` : `${owner} has no field \`${part}\``,
      );
    if (f.optional) {
      c.out.push(diag.shardPathOptional(n.span, { path, name: part }));
      return false;
    }
    type = f.type;
    owner = part;
  }
  if (type !== undefined && !isScalar(type))
    return unresolvedPath(c, n, path, `the key is a ${typeText(type)}; a shard key must be a scalar`);
  return true;
}
