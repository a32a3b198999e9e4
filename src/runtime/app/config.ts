/**
 * Service config at start: the raw (wire-form) object from the config source or from
 * `serve(..., { config })`, checked against the IDL `config {}` block. Every missing required
 * key is named at once; then the codec decodes it (defaults, constraints) into the typed config.
 */
import { type Codec, codec } from "../codec/index.js";
import type { ServiceDescriptor } from "../descriptor.js";
import { Code, FanError } from "../errors.js";
import type { FieldSchema, Schema, StructSchema } from "../codec/schema.js";
import { withoutValue } from "../codec/fail.js";

/**
 * The codec config values are read with: a `duration` is the IDL's literal (`500ms`, `2s`,
 * `1m`, `1h`) or a number of milliseconds, as config files and `etcdctl put` write them; every
 * other type is its wire form. The App's start, live updates and `fanc config` all use it.
 */
export function configCodec<T>(schema: Schema): Codec<T> {
  return codec<T>(schema, { durationLiterals: true });
}

/** The paths of required keys absent from `raw` (recursing into present struct values). */
export function missingKeys(schema: StructSchema, raw: unknown, prefix = ""): string[] {
  const obj = typeof raw === "object" && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
  const out: string[] = [];
  for (const f of schema.fields) {
    const path = prefix === "" ? f.name : `${prefix}.${f.name}`;
    const v = Object.hasOwn(obj, f.name) ? obj[f.name] : undefined;
    if (v === undefined || v === null) {
      if (f.optional !== true && f.default === undefined) out.push(path);
      continue;
    }
    const inner = structOf(f.schema);
    if (inner !== undefined) out.push(...missingKeys(inner, v, path));
  }
  return out;
}

/**
 * The paths of keys in `raw` that `schema` does not declare (recursing into declared struct
 * values): ignored by the decode, so most likely a misspelling, or a key for another version.
 */
export function unknownKeys(schema: StructSchema | undefined, raw: unknown, prefix = ""): string[] {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return [];
  const fields = new Map((schema?.fields ?? []).map((f) => [f.name, f]));
  const out: string[] = [];
  for (const [key, v] of Object.entries(raw)) {
    const path = prefix === "" ? key : `${prefix}.${key}`;
    const f = fields.get(key);
    if (f === undefined) out.push(path);
    else {
      const inner = structOf(f.schema);
      if (inner !== undefined) out.push(...unknownKeys(inner, v, path));
    }
  }
  return out;
}

function structOf(schema: Schema): StructSchema | undefined {
  const s = schema.kind === "ref" ? schema.get() : schema;
  return s.kind === "struct" ? s : undefined;
}

/** One value the codec refuses: its key path and why. */
export interface ConfigProblem {
  readonly key: string;
  readonly problem: string;
}

/** What `badValues` says of a field without a value (its key path): a problem, or undefined for none. */
export type AbsentCheck = (field: FieldSchema, key: string) => ConfigProblem | undefined;

/**
 * Every present value of `raw` that its declared type refuses, each decoded on its own
 * (recursing into struct values), so a config with three bad values names all three. A
 * `@secret` value is named by its path, never quoted. `absent`, when given, is asked about each
 * field without a value, in field order (the live config's decoder names missing keys with it).
 * The one loop over a config's fields: the App's start (`decodeConfig`, once the whole decode
 * failed), live updates (`configDecoder`) and `fanc config` all check values with it.
 */
export function badValues(
  schema: StructSchema,
  raw: unknown,
  prefix = "",
  secret = false,
  absent?: AbsentCheck,
): ConfigProblem[] {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return [];
  const obj = raw as Record<string, unknown>;
  const out: ConfigProblem[] = [];
  for (const f of schema.fields) {
    const v = Object.hasOwn(obj, f.name) ? obj[f.name] : undefined;
    const path = prefix === "" ? f.name : `${prefix}.${f.name}`;
    if (v === undefined || v === null) {
      const p = absent?.(f, path);
      if (p !== undefined) out.push(p);
      continue;
    }
    // Everything inside a @secret struct is secret too.
    const hidden = secret || f.secret === true;
    const inner = structOf(f.schema);
    if (inner !== undefined && typeof v === "object" && !Array.isArray(v)) {
      out.push(...badValues(inner, v, path, hidden, absent));
      continue;
    }
    try {
      configCodec(f.schema).decode(v, path);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      out.push({ key: path, problem: hidden ? withoutValue(message) : message });
    }
  }
  return out;
}

/**
 * A refusal of a service's config with what its source holds instead (`ConfigSource.absence`:
 * the file has no section for the service's full name, and the sections it has), so "missing
 * adminToken" of a file keyed `Catalog:` says where the key went.
 */
export function withAbsence(e: unknown, absence: string): unknown {
  if (!(e instanceof FanError)) return e;
  const details = typeof e.details === "object" && e.details !== null ? e.details : {};
  return new FanError(e.code, `${e.message}; ${absence}`, {
    details: { ...details, absence },
    ...(e.cause === undefined ? {} : { cause: e.cause }),
  });
}

/**
 * The typed config of a service from its raw config. Throws FAILED_PRECONDITION naming every
 * missing key path, or INVALID_ARGUMENT naming every bad value (`details.problems`).
 */
export function decodeConfig(service: ServiceDescriptor, raw: Record<string, unknown>): unknown {
  const schema = service.config;
  if (schema === undefined) return Object.freeze({});
  // Keys the block does not declare, named with a refusal: `apiKye` explains a missing `apiKey`.
  const unknown = unknownKeys(schema, raw);
  const also = unknown.length === 0 ? "" : ` (keys it does not declare: ${unknown.join(", ")})`;
  const undeclared = unknown.length === 0 ? {} : { unknownKeys: unknown };
  const missing = missingKeys(schema, raw);
  if (missing.length > 0) {
    throw new FanError(Code.FAILED_PRECONDITION, `config of ${service.name} is missing ${missing.join(", ")}${also}`, {
      details: { service: service.name, missing, ...undeclared },
    });
  }
  try {
    return configCodec(schema).decode(raw, "config");
  } catch (e) {
    // Each value decoded on its own names them all; the codec's messages start with the path
    // (`config.port: expected an int ...`). The whole decode's own error is not kept as `cause`:
    // it may quote a @secret value.
    const found = badValues(schema, raw, "config");
    const problems = found.length > 0 ? found : [{ key: "config", problem: withoutValue(FanError.from(e).message) }];
    const list = problems.map((p) => p.problem).join("; ");
    throw new FanError(Code.INVALID_ARGUMENT, `config of ${service.name} is invalid: ${list}${also}`, {
      details: { service: service.name, path: problems[0]?.key, problems, ...undeclared },
    });
  }
}
