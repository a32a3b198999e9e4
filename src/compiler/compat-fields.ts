/**
 * `fanc check` on fields (of a struct, an error, a method's or an event's parameters): removed,
 * renamed, retyped, made required, added; constraints tightened or loosened; defaults changed.
 */
import { typeText } from "./check-types.js";
import { change, type Found } from "./compat-kinds.js";
import type { Constraints, FieldModel } from "./model.js";

const required = (f: FieldModel): boolean => !f.optional && f.default === undefined;

/** Compares the fields `before` and `after` of `owner` (a path) in `decl`. */
export function compareFields(
  decl: string,
  owner: string,
  before: readonly FieldModel[],
  after: readonly FieldModel[],
  out: Found[],
): void {
  const now = new Map(after.map((f) => [f.name, f]));
  const was = new Set(before.map((f) => f.name));
  const added = after.filter((f) => !was.has(f.name));
  /** Added fields that are the new name of a removed one: the rename is their one finding. */
  const renamedTo = new Set<FieldModel>();
  for (const f of before) {
    const g = now.get(f.name);
    const path = `${owner}.${f.name}`;
    if (g === undefined) {
      const twin = added.find((x) => !renamedTo.has(x) && typeText(x.type) === typeText(f.type));
      if (twin !== undefined) renamedTo.add(twin);
      out.push(
        twin === undefined
          ? change("removed", decl, path, `${path} was removed`)
          : {
              ...change("renamed", decl, path, `${path} was renamed to ${twin.name} (the wire name changes)`),
              atAfter: `${owner}.${twin.name}`,
            },
      );
      continue;
    }
    if (typeText(f.type) !== typeText(g.type)) {
      out.push(change("type-changed", decl, path, `${path}: type ${typeText(f.type)} → ${typeText(g.type)}`));
      continue;
    }
    if (!required(f) && required(g)) out.push(change("field-required", decl, path, `${path} was made required`));
    compareConstraints(decl, path, f.constraints, g.constraints, out);
    if (f.default !== undefined && g.default !== undefined && JSON.stringify(f.default) !== JSON.stringify(g.default))
      out.push(
        change(
          "default-changed",
          decl,
          path,
          `${path}: default ${JSON.stringify(f.default)} → ${JSON.stringify(g.default)} (callers that omit it get the new one)`,
        ),
      );
  }
  for (const g of added) {
    if (renamedTo.has(g)) continue;
    const path = `${owner}.${g.name}`;
    if (required(g)) out.push(change("required-field-added", decl, path, `${path} was added as a required field`));
    else out.push(change("added", decl, path, `${path} was added (optional)`));
  }
}

/** Lower bounds (a value below is rejected) and upper bounds, by decorator name. */
const LOWER = ["min", "minLength"] as const;
const UPPER = ["max", "maxLength", "maxItems"] as const;

/**
 * A constraint added, a lower bound raised, an upper bound lowered or a pattern added or
 * changed rejects values that were valid: tightened (breaking). The reverse is compatible.
 */
export function compareConstraints(decl: string, path: string, a: Constraints, b: Constraints, out: Found[]): void {
  const report = (tight: boolean, what: string, x: unknown, y: unknown): void => {
    const text = (v: unknown): string => (v === undefined ? "(none)" : typeof v === "string" ? v : String(v));
    const msg = `${path}: @${what} ${text(x)} → ${text(y)}`;
    out.push(
      tight
        ? change("constraint-tightened", decl, path, `${msg} (values valid before are rejected now)`)
        : change("constraint-loosened", decl, path, msg),
    );
  };
  for (const k of LOWER) {
    const x = a[k];
    const y = b[k];
    if (x === y) continue;
    if (y !== undefined && (x === undefined || compare(y, x) > 0)) report(true, k, x, y);
    else report(false, k, x, y);
  }
  for (const k of UPPER) {
    const x = a[k];
    const y = b[k];
    if (x === y) continue;
    if (y !== undefined && (x === undefined || compare(y, x) < 0)) report(true, k, x, y);
    else report(false, k, x, y);
  }
  if (a.pattern !== b.pattern) {
    const show = (p: string | undefined): string | undefined => (p === undefined ? undefined : JSON.stringify(p));
    report(b.pattern !== undefined, "pattern", show(a.pattern), show(b.pattern));
  }
}

/** Compares two bounds: numbers, or int64 / decimal literal text. */
function compare(x: number | string, y: number | string): number {
  const int = /^-?\d+$/;
  if (typeof x === "string" && typeof y === "string" && int.test(x) && int.test(y)) {
    const d = BigInt(x) - BigInt(y);
    return d === 0n ? 0 : d > 0n ? 1 : -1;
  }
  return Math.sign(Number(x) - Number(y));
}
