/**
 * Compiles a schema to closures, once per schema object (and depth bound). Refs are resolved
 * when compiled, which happens on first use, after every generated module has loaded; a
 * recursive type meets its own half-built entry in the cache and goes through a forwarder.
 */
import type { RefSchema, Schema } from "./schema.js";
import { describe, schemaError } from "./fail.js";
import { enumCodec, listCodec, mapCodec, unionCodec, voidCodec } from "./containers.js";
import { jsonCodec } from "./json.js";
import { boolCodec, durationCodec, durationConfigCodec, floatCodec, int64Codec, intCodec } from "./numbers.js";
import { structCodec } from "./struct.js";
import { bytesCodec, decimalCodec, stringCodec, uuidCodec } from "./text.js";
import { timestampCodec } from "./time.js";
import type { Compiled, Compiler } from "./types.js";

const compilers = new Map<string, Compiler>();

/** The shared compiler (and cache) for a depth bound and reading of durations. */
export function compilerFor(maxDepth: number, durationLiterals = false): Compiler {
  const key = `${maxDepth}/${durationLiterals}`;
  let c = compilers.get(key);
  if (c === undefined) {
    c = { maxDepth, durationLiterals, cache: new WeakMap() };
    compilers.set(key, c);
  }
  return c;
}

/** The compiled closures of `schema`, from the cache or built now. */
export function compile(schema: Schema, c: Compiler): Compiled {
  const hit = c.cache.get(schema);
  if (hit !== undefined) return hit;
  let real: Compiled | undefined;
  const target = (): Compiled => real as Compiled;
  c.cache.set(schema, {
    decode: (v, d) => target().decode(v, d),
    encode: (v, d) => target().encode(v, d),
    validate: (v, d) => target().validate(v, d),
  });
  try {
    real = build(schema, c);
  } catch (e) {
    c.cache.delete(schema);
    throw e;
  }
  c.cache.set(schema, real);
  return real;
}

function build(s: Schema, c: Compiler): Compiled {
  if (typeof s !== "object" || s === null) throw schemaError(`expected a schema object, got ${describe(s)}`);
  const sub = (x: Schema): Compiled => compile(x, c);
  switch (s.kind) {
    case "bool":
      return boolCodec();
    case "int":
      return intCodec(s);
    case "int64":
      return int64Codec(s);
    case "float":
      return floatCodec(s);
    case "duration":
      return c.durationLiterals ? durationConfigCodec(s) : durationCodec(s);
    case "decimal":
      return decimalCodec(s);
    case "string":
      return stringCodec(s);
    case "uuid":
      return uuidCodec();
    case "bytes":
      return bytesCodec(s);
    case "timestamp":
      return timestampCodec();
    case "json":
      return jsonCodec(c);
    case "list":
      return listCodec(s, c, sub);
    case "map":
      return mapCodec(s, c, sub);
    case "struct":
      return structCodec(s, c, sub);
    case "enum":
      return enumCodec(s);
    case "union":
      return unionCodec(s, c, sub);
    case "void":
      return voidCodec();
    case "ref":
      return compile(resolveRef(s), c);
    default:
      throw schemaError(`unknown schema kind ${describe((s as { kind: unknown }).kind)}`);
  }
}

/** Follows a chain of refs to the schema it names. */
export function resolveRef(ref: RefSchema): Schema {
  let cur: Schema = ref;
  const seen = new Set<Schema>();
  while (cur.kind === "ref") {
    if (seen.has(cur)) throw schemaError(`ref ${ref.name} refers to itself`);
    seen.add(cur);
    const next: unknown = cur.get();
    if (typeof next !== "object" || next === null) throw schemaError(`ref ${cur.name} resolved to ${describe(next)}`);
    cur = next as Schema;
  }
  return cur;
}
