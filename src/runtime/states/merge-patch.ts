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

/** `target` with `patch` applied (RFC 7396); neither argument is modified. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return patch;
  const out: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (FORBIDDEN.has(k)) throw new TypeError(`merge patch key "${k}" is not allowed`);
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
