/**
 * How a method's shard key binds to its parameters: `@shard(a, b.c)` (`@route` is in
 * check-routes.ts).
 */
import type * as A from "./ast.js";
import type { Checker } from "./check-context.js";
import { isScalar, typeText } from "./check-types.js";
import { argNames } from "./decorators.js";
import { diag } from "./diagnostics.js";
import type { FieldModel, TypeModel } from "./model.js";

/**
 * Check `@shard(...)`: each path is a parameter then struct fields, never optional, ending in a
 * scalar. `written` is every parameter name as written, with those whose type did not resolve
 * (and so are not in `params`).
 */
export function checkShard(
  c: Checker,
  d: A.Decorator,
  params: readonly FieldModel[],
  written: readonly string[] = [],
): string[][] | undefined {
  const names = argNames(d, c.out);
  if (names === undefined) return undefined;
  const paths: string[][] = [];
  for (const n of names) {
    const parts = n.name.parts.map((p) => p.name);
    if (shardPath(c, n, parts, params, written)) paths.push(parts);
  }
  return paths.length === names.length ? paths : undefined;
}

function unresolvedPath(c: Checker, n: A.NameExpr, path: string, reason: string): false {
  c.out.push(diag.shardPathUnresolved(n.span, { path, reason }));
  return false;
}

function shardPath(
  c: Checker,
  n: A.NameExpr,
  parts: readonly string[],
  params: readonly FieldModel[],
  written: readonly string[],
): boolean {
  const path = parts.join(".");
  let fields: readonly FieldModel[] = params;
  let names = written;
  let owner = "the method";
  let type: TypeModel | undefined;
  for (const part of parts) {
    if (type !== undefined) {
      const target = type.kind === "ref" ? type.target : undefined;
      const struct = target === undefined ? undefined : c.models.get(target);
      if (target === undefined || struct === undefined || (struct.kind !== "struct" && struct.kind !== "error"))
        return unresolvedPath(c, n, path, `\`${owner}\` is a ${typeText(type)}, not a struct`);
      fields = struct.fields;
      names = writtenFields(c, target);
      owner = struct.name;
    }
    const f = fields.find((x) => x.name === part);
    // Written but not in the model: its type did not resolve (or the name is refused), which
    // is reported where the field is; the path is not wrong about it.
    if (f === undefined && names.includes(part)) return false;
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

/** The field names a struct or error declares as written, with those dropped from its model. */
function writtenFields(c: Checker, fullName: string): readonly string[] {
  const decl = c.byFullName.get(fullName)?.decl;
  return decl?.kind === "Struct" || decl?.kind === "Error" ? decl.fields.map((f) => f.name.name) : [];
}
