/**
 * What `fanc config` knows from the IDL: the services there are and each one's `config {}`
 * block, as the runtime schema the App decodes config with. `set` and `push` check values
 * against it before writing (type, constraints, unknown keys); `get` and `watch` mask
 * `@secret` fields.
 */
import type { FieldSchema, Schema, StructSchema } from "../runtime/codec/schema.js";
import { badValues, configCodec, missingKeys } from "../runtime/app/config.js";
import { DECIMAL_TEXT } from "../runtime/codec/decimal.js";
import { withoutValue } from "../runtime/codec/fail.js";
import { redactSecrets } from "../runtime/telemetry/logging.js";
import {
  checkSources,
  type DeclModel,
  type FieldModel,
  type ProgramModel,
  readSources,
  type ServiceModel,
  type TypeModel,
} from "../compiler/index.js";
import { UsageError } from "./ls.js";

/** A failure of the IDL itself (exit code 1). */
export class IdlError extends Error {}

/** The services of an IDL folder and their config schemas. */
export class IdlConfig {
  readonly #decls = new Map<string, DeclModel>();
  readonly #services: ServiceModel[] = [];
  readonly #schemas = new Map<string, Schema>();

  private constructor(
    readonly dir: string,
    model: ProgramModel,
  ) {
    for (const p of model.packages)
      for (const d of p.decls) {
        this.#decls.set(d.fullName, d);
        if (d.kind === "service") this.#services.push(d);
      }
  }

  /** Reads and checks the `.fan` files under `dir`; throws IdlError when they are missing or broken. */
  static async load(dir: string): Promise<IdlConfig> {
    let sources: Awaited<ReturnType<typeof readSources>>;
    try {
      sources = await readSources(dir);
    } catch (e) {
      throw new IdlError(
        `cannot read the IDL at ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give its folder with --idl <dir>`,
      );
    }
    if (sources.length === 0) throw new IdlError(`no .fan files under ${dir}; give the IDL folder with --idl <dir>`);
    const checked = checkSources(sources);
    const errors = checked.diagnostics.filter((d) => d.severity === "error").length;
    if (checked.model === undefined || errors > 0)
      throw new IdlError(`the IDL at ${dir} has ${errors} error(s); run "fanc compile ${dir}" to see them`);
    return new IdlConfig(dir, checked.model);
  }

  /** The service named `name`, by full name or a short name only one service ends with. */
  service(name: string): ServiceModel {
    const exact = this.#services.find((s) => s.fullName === name);
    if (exact !== undefined) return exact;
    const matches = this.#services.filter((s) => s.fullName.endsWith(`.${name}`));
    if (matches.length === 1) return matches[0] as ServiceModel;
    if (matches.length > 1)
      throw new UsageError(
        `"${name}" is ambiguous in the IDL at ${this.dir}: ${matches.map((s) => s.fullName).join(", ")}; give the full name`,
      );
    const all = this.#services.map((s) => s.fullName).sort();
    throw new IdlError(
      `unknown service "${name}": the IDL at ${this.dir} has ${all.length === 0 ? "no services" : all.join(", ")}`,
    );
  }

  /** The `config {}` block of `svc` as a struct schema (no fields when it has none). */
  configSchema(svc: ServiceModel): StructSchema {
    return { kind: "struct", name: `${svc.fullName}$config`, fields: svc.config.map((f) => this.#field(f)) };
  }

  #field(f: FieldModel): FieldSchema {
    return {
      name: f.name,
      schema: this.#type(f.type, f.constraints),
      ...(f.optional ? { optional: true } : {}),
      ...(f.default === undefined ? {} : { default: f.default }),
      ...(f.secret ? { secret: true } : {}),
    };
  }

  #type(t: TypeModel, c: FieldModel["constraints"] = {}): Schema {
    switch (t.kind) {
      case "primitive":
        return { kind: t.name, ...c } as Schema;
      case "list":
        return {
          kind: "list",
          of: this.#type(t.element),
          ...(c.maxItems === undefined ? {} : { maxItems: c.maxItems }),
        };
      case "map":
        return {
          kind: "map",
          key: this.#type(t.key) as never,
          of: this.#type(t.value),
          ...(c.maxItems === undefined ? {} : { maxItems: c.maxItems }),
        };
      case "ref":
        return { kind: "ref", name: t.target, get: () => this.#decl(t.target) };
      case "void":
        return { kind: "void" };
    }
  }

  #decl(name: string): Schema {
    const cached = this.#schemas.get(name);
    if (cached !== undefined) return cached;
    const d = this.#decls.get(name);
    let s: Schema;
    if (d === undefined || d.kind === "service") throw new IdlError(`the IDL has no type ${name}`);
    else if (d.kind === "enum") s = { kind: "enum", name, values: d.members.map((m) => m.name) };
    else if (d.kind === "union")
      s = { kind: "union", name, members: d.members.map((m) => ({ name: m.name, schema: this.#type(m.type) })) };
    else s = { kind: "struct", name, fields: d.fields.map((f) => this.#field(f)) };
    this.#schemas.set(name, s);
    return s;
  }
}

/** A value the IDL refuses, with every reason. */
export class ConfigValueError extends Error {}

/**
 * Checks a `set` patch (top-level keys; null deletes) against the config schema: every key must
 * be declared, every value must decode, and a required key without default cannot be deleted.
 */
export function checkPatch(service: string, schema: StructSchema, patch: Readonly<Record<string, unknown>>): void {
  const problems: string[] = [];
  for (const [key, value] of Object.entries(patch)) {
    const field = schema.fields.find((f) => f.name === key);
    if (field === undefined) {
      problems.push(`unknown key "${key}" (${service} has ${known(schema)})`);
      continue;
    }
    if (value === null) {
      if (field.optional !== true && field.default === undefined)
        problems.push(`${key} is required and cannot be deleted`);
      continue;
    }
    const why = decodeError(field.schema, value, key);
    if (why === undefined) continue;
    // `key=123` is YAML for a number: a string field needs the value quoted, and so does a
    // decimal written as no decimal text is (`1e3`, `.5`; `12.25` is taken as written).
    const quote =
      field.schema.kind === "string" && (typeof value === "number" || typeof value === "boolean")
        ? ` (YAML read a ${typeof value}: quote it for a string, ${key}='"…"')`
        : field.schema.kind === "decimal" && typeof value === "number"
          ? ` (YAML read a number: a decimal is digits with an optional fraction, -?digits[.digits]; quote it, ${key}='"…"')`
          : "";
    // Each bad value inside a struct on its own, a @secret one (or one inside a @secret struct)
    // named by its path only.
    const each = badValues({ kind: "struct", name: schema.name, fields: [field] }, { [key]: value }).map(
      (p) => p.problem,
    );
    const told = each.length > 0 ? each.join("; ") : withoutValue(why);
    problems.push(`${told}${quote}`);
  }
  if (problems.length > 0)
    throw new ConfigValueError(`config of ${service} refused, nothing written: ${problems.join("; ")}`);
}

/**
 * `raw` with each top-level `decimal` value that YAML read as a number replaced by its text as
 * written (`unitPrice=12.25`, `unitPrice: 3.10`): a decimal is text, and the float YAML made of
 * it may have lost what the text said (3.10 became 3.1). `written(key)` is a key's value as
 * written; one that is not decimal text (`1e3`) stays a number, for the check to refuse.
 */
export function decimalsAsWritten(
  schema: StructSchema,
  raw: Readonly<Record<string, unknown>>,
  written: (key: string) => string | undefined,
): Record<string, unknown> {
  const out = { ...raw };
  for (const f of schema.fields) {
    if (f.schema.kind !== "decimal" || typeof out[f.name] !== "number") continue;
    const text = written(f.name)?.trim();
    if (text !== undefined && DECIMAL_TEXT.test(text)) out[f.name] = text;
  }
  return out;
}

/** Checks a whole config (`push`): unknown keys, missing required keys, and every value. */
export function checkWhole(service: string, schema: StructSchema, raw: Readonly<Record<string, unknown>>): void {
  const problems: string[] = [];
  const names = new Set(schema.fields.map((f) => f.name));
  for (const key of Object.keys(raw))
    if (!names.has(key)) problems.push(`unknown key "${key}" (${service} has ${known(schema)})`);
  const missing = missingKeys(schema, raw);
  if (missing.length > 0) problems.push(`missing ${missing.join(", ")}`);
  if (problems.length === 0) {
    const why = decodeError(schema, raw, "");
    // Every bad value, each decoded on its own; the whole decode's message when none is found alone.
    const each = why === undefined ? [] : badValues(schema, raw).map((p) => p.problem);
    if (why !== undefined) problems.push(...(each.length > 0 ? each : [withoutValue(why)]));
  }
  if (problems.length > 0)
    throw new ConfigValueError(`config of ${service} refused, nothing written: ${problems.join("; ")}`);
}

/** `raw` with `@secret` values replaced, for printing. */
export function masked(schema: StructSchema, raw: Record<string, unknown>): Record<string, unknown> {
  return redactSecrets(schema, raw) as Record<string, unknown>;
}

function known(schema: StructSchema): string {
  return schema.fields.length === 0 ? "no config" : schema.fields.map((f) => f.name).join(", ");
}

function decodeError(schema: Schema, value: unknown, path: string): string | undefined {
  try {
    configCodec(schema).decode(value, path);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
