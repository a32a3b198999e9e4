/**
 * Validating an owner's merge patch against the state's type without re-checking the whole
 * value: the patch is walked alongside the schema, so a patch of one map entry costs one
 * entry's check (the whole 10,000-entry value would cost ~1 ms per patch). Structs and maps
 * are descended into; anything else is replaced whole and checked whole. A key whose value is
 * `undefined` is absent, as the codec takes it in a value. The result is the patch in wire
 * form; nothing is modified, so a rejected patch leaves the state as it was.
 */
import { codec, type Codec } from "../codec/index.js";
import type { MapSchema, Schema, StructSchema } from "../codec/schema.js";
import { Code, FanError } from "../errors.js";
import { applyMergePatch } from "./merge-patch.js";

const codecs = new WeakMap<Schema, Codec<unknown>>();
const keyCodecs = new WeakMap<MapSchema, Codec<unknown>>();

function codecOf(s: Schema): Codec<unknown> {
  let c = codecs.get(s);
  if (c === undefined) {
    c = codec(s);
    codecs.set(s, c);
  }
  return c;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function deref(s: Schema): Schema {
  let out = s;
  while (out.kind === "ref") out = out.get();
  return out;
}

const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);

function invalid(path: string, why: string): FanError {
  return new FanError(Code.INVALID_ARGUMENT, `invalid patch of ${path}: ${why}`);
}

/**
 * The wire form of `patch` (a merge patch with typed leaves) applied to `oldWire`, checked
 * against `schema`; throws INVALID_ARGUMENT naming the path when the result would not fit.
 */
export function wirePatch(schema: Schema, oldWire: unknown, patch: unknown, path: string): unknown {
  const s = deref(schema);
  if (isPlainObject(patch) && isPlainObject(oldWire)) {
    if (s.kind === "struct") return structPatch(s, oldWire, patch, path);
    if (s.kind === "map") return mapPatch(s, oldWire, patch, path);
  }
  if (patch === null) throw invalid(path, "null would remove the value itself");
  const c = codecOf(s);
  const next = isPlainObject(patch)
    ? applyMergePatch(oldWire === undefined ? undefined : c.decode(oldWire), patch)
    : patch;
  return c.encode(next, path);
}

function structPatch(s: StructSchema, old: Record<string, unknown>, patch: Record<string, unknown>, path: string) {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(patch)) {
    if (FORBIDDEN.has(k)) throw invalid(path, `key "${k}" is not allowed`);
    const field = s.fields.find((f) => f.name === k);
    if (field === undefined) throw invalid(path, `${s.name} has no field ${k}`);
    const v = patch[k];
    if (v === undefined) continue;
    if (v === null) {
      if (field.optional !== true) throw invalid(`${path}.${k}`, "a required field cannot be removed");
      out[k] = null;
    } else out[k] = wirePatch(field.schema, old[k], v, `${path}.${k}`);
  }
  return out;
}

function mapPatch(s: MapSchema, old: Record<string, unknown>, patch: Record<string, unknown>, path: string) {
  const out: Record<string, unknown> = {};
  let keys = s.maxItems === undefined ? 0 : Object.keys(old).length;
  let keyCodec = keyCodecs.get(s);
  if (keyCodec === undefined) {
    keyCodec = codec({ kind: "map", key: s.key, of: { kind: "bool" } });
    keyCodecs.set(s, keyCodec);
  }
  for (const k of Object.keys(patch)) {
    if (FORBIDDEN.has(k)) throw invalid(path, `key "${k}" is not allowed`);
    const v = patch[k];
    if (v === undefined) continue;
    const had = Object.hasOwn(old, k);
    if (v === null) {
      out[k] = null;
      if (had) keys--;
      continue;
    }
    keyCodec.encode({ [k]: true }, `${path} key ${JSON.stringify(k)}`);
    out[k] = wirePatch(s.of, had ? old[k] : undefined, v, `${path}[${JSON.stringify(k)}]`);
    if (!had) keys++;
  }
  if (s.maxItems !== undefined && keys > s.maxItems) throw invalid(path, `more than ${s.maxItems} entries`);
  return out;
}
