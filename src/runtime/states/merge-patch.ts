/**
 * JSON Merge Patch (RFC 7396): apply a patch without mutating its target, and compute the
 * patch between two JSON values. Non-plain values (Date, Uint8Array, bigint) are leaves.
 */

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);

/**
 * What a merge patch of a value of type `T` may be (`patch()` of an owner, `patchState` of a
 * mock): for a struct, any of its fields, each a patch of its own type, or `null` where the
 * field is optional (a required field cannot be removed); for a map, any keys of its key
 * type, each a patch of the value type or `null` (removes the entry); an optional field may
 * also be `undefined` (absent: no change). Anything else is replaced whole: scalars,
 * enums, lists, the codec's typed leaves (`Date`, `bigint`, `Uint8Array`) and a union of
 * several members (a patch `{ value: ... }` could carry another member's fields). `unknown`
 * (a `json` value, an untyped state) takes any patch. The top level is never `null` (that
 * would remove the state's value). Not expressible: a state with no value yet takes its first
 * patch as the whole value, so that patch must be complete; the codec checks it at run time.
 */
export type MergePatch<T> = unknown extends T ? T : PatchOf<T>;

/** Values a merge patch replaces rather than merges into. */
type Whole = string | number | boolean | bigint | Date | Uint8Array | readonly unknown[];

type PatchOf<T> = [T] extends [Whole]
  ? T
  : IsUnion<T> extends true
    ? T
    : string extends keyof T
      ? { [key: string]: MergePatch<T[keyof T & string]> | null }
      : number extends keyof T
        ? { [key: number]: MergePatch<T[keyof T & number]> | null }
        : FieldsPatch<T>;

/** A struct's fields, or an enum-keyed map's (`Partial<Record<Color, V>>`) keys. */
type FieldsPatch<T> = {
  // Only an optional field (every key of an enum-keyed map) may be removed. It may also be
  // `undefined`, as in the value's own type: absent from the patch, it changes nothing (so a
  // whole value is a patch too).
  [K in keyof T]?: {} extends Pick<T, K> ? MergePatch<Exclude<T[K], undefined>> | null | undefined : MergePatch<T[K]>;
};

type IsUnion<T, U = T> = T extends unknown ? ([U] extends [T] ? false : true) : never;

/**
 * `target` with `patch` applied (RFC 7396); neither argument is modified. A key whose value is
 * `undefined` is absent from the patch and changes nothing (as in its JSON, and as an optional
 * field left `undefined` is absent to the codec).
 */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return patch;
  const out: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (FORBIDDEN.has(k)) throw new TypeError(`merge patch key "${k}" is not allowed`);
    if (v === undefined) continue;
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

/** The merge patch that turns JSON value `from` into `to` (undefined when they are equal). */
export function diffMergePatch(from: unknown, to: unknown): unknown {
  if (!isPlainObject(from) || !isPlainObject(to)) return jsonEqual(from, to) ? undefined : to;
  const patch: Record<string, unknown> = {};
  let changed = false;
  for (const k of Object.keys(from)) {
    if (!Object.hasOwn(to, k)) {
      patch[k] = null;
      changed = true;
    }
  }
  for (const [k, v] of Object.entries(to)) {
    const d = Object.hasOwn(from, k) ? diffMergePatch(from[k], v) : v;
    if (d !== undefined) {
      patch[k] = d;
      changed = true;
    }
  }
  return changed ? patch : undefined;
}

function jsonEqual(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/**
 * `patch` applied to `target` in place (the replica's and owner's own wire values, which
 * nothing else references); returns the new root. Objects of the patch are rebuilt, never
 * inserted, so a patch shared between replicas is never aliased.
 */
export function applyMergePatchInPlace(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return patch;
  const out: Record<string, unknown> = isPlainObject(target) ? target : {};
  for (const k of Object.keys(patch)) {
    if (FORBIDDEN.has(k)) throw new TypeError(`merge patch key "${k}" is not allowed`);
    const v = patch[k];
    if (v === null) delete out[k];
    else out[k] = applyMergePatchInPlace(out[k], v);
  }
  return out;
}
