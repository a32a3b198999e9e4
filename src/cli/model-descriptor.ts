/**
 * Service descriptors built in-process from the checked model, as `fanc call` needs them: the
 * same data `codegen/emit-descriptor.ts` writes into generated modules (schemas with their
 * constraints and defaults, timeouts, IDL errors), as values instead of source text. No
 * generated code is written or imported, so fanc works on any IDL folder without a build step.
 */
import type { DeclModel, FieldModel, ProgramModel, ServiceModel, TypeModel, Constraints } from "../compiler/model.js";
import type { FieldSchema, Schema, StructSchema } from "../runtime/codec/schema.js";
import type { ErrorDescriptor, ServiceDescriptor } from "../runtime/descriptor.js";
import { type Code, FanError } from "../runtime/errors.js";

/** The rpc timeout when the IDL gives none (as in generated descriptors). */
const DEFAULT_TIMEOUT_MS = 10_000;

/** Every declaration of a program, by fully qualified name, and schemas built from them. */
export class ModelSchemas {
  readonly #decls = new Map<string, DeclModel>();
  readonly #schemas = new Map<string, Schema>();

  constructor(readonly model: ProgramModel) {
    for (const p of model.packages) for (const d of p.decls) this.#decls.set(d.fullName, d);
  }

  /** Every service of the program. */
  services(): ServiceModel[] {
    return [...this.#decls.values()].filter((d): d is ServiceModel => d.kind === "service");
  }

  /** The schema of a named struct, enum, union or error (built once; references stay lazy). */
  named(name: string): Schema {
    const known = this.#schemas.get(name);
    if (known !== undefined) return known;
    const d = this.#decls.get(name);
    let s: Schema;
    switch (d?.kind) {
      case "struct":
      case "error":
        s = this.struct(d.fullName, d.fields);
        break;
      case "enum":
        s = { kind: "enum", name: d.fullName, values: d.members.map((m) => m.name) };
        break;
      case "union":
        s = {
          kind: "union",
          name: d.fullName,
          members: d.members.map((m) => ({ name: m.name, schema: this.type(m.type) })),
        };
        break;
      default:
        throw new Error(`the IDL has no data type ${name}`);
    }
    this.#schemas.set(name, s);
    return s;
  }

  /** The schema of a type, with a field's constraints at its top level (as `codegen/types.ts` writes it). */
  type(t: TypeModel, c: Constraints = {}): Schema {
    switch (t.kind) {
      case "primitive":
        return { kind: t.name, ...pick(c, ["min", "max", "minLength", "maxLength", "pattern"]) };
      case "list":
        return { kind: "list", of: this.type(t.element), ...pick(c, ["maxItems"]) };
      case "map":
        return {
          kind: "map",
          key: this.type(t.key) as Extract<Schema, { kind: "map" }>["key"],
          of: this.type(t.value),
          ...pick(c, ["maxItems"]),
        };
      case "ref":
        return { kind: "ref", name: t.target, get: () => this.named(t.target) };
      case "void":
        return { kind: "void" };
    }
  }

  /** A struct schema of fields (struct, error, parameters, event payload). */
  struct(name: string, fields: readonly FieldModel[]): StructSchema {
    return { kind: "struct", name, fields: fields.map((f) => this.field(f)) };
  }

  field(f: FieldModel): FieldSchema {
    return {
      name: f.name,
      schema: this.type(f.type, f.constraints),
      ...(f.optional ? { optional: true } : {}),
      ...(f.default !== undefined ? { default: f.default } : {}),
      ...(f.secret ? { secret: true } : {}),
    };
  }

  /** The descriptor of a service, as its generated `<Name>Descriptor` holds it. */
  descriptor(svc: ServiceModel): ServiceDescriptor {
    const errors: Record<string, ErrorDescriptor> = {};
    for (const name of svc.methods.flatMap((m) => m.throws)) {
      const d = this.#decls.get(name);
      if (d?.kind !== "error") continue;
      errors[name] = {
        name,
        code: d.code as Code,
        fields: this.named(name) as StructSchema,
        create: (fields, message) => new FanError(d.code as Code, message, { details: { error: name, fields } }),
      };
    }
    return {
      name: svc.fullName,
      version: svc.version,
      transports: svc.transports,
      shards: svc.shards,
      unique: svc.unique,
      methods: Object.fromEntries(
        svc.methods.map((m) => [
          m.name,
          {
            name: m.name,
            kind: m.kind,
            input: this.struct(`${svc.fullName}.${m.name}$input`, m.params),
            output: this.type(m.kind === "push" ? { kind: "void" } : m.returns),
            timeoutMs: m.timeoutMs ?? DEFAULT_TIMEOUT_MS,
            ...(m.ttlMs !== undefined ? { ttlMs: m.ttlMs } : {}),
            idempotent: m.idempotent,
            retry: m.retry,
            ...(m.route !== undefined ? { route: m.route } : {}),
            ...(m.shard !== undefined ? { shard: m.shard } : {}),
            ...(m.shardFallback === true ? { shardFallback: true } : {}),
            ...(m.since !== undefined ? { since: m.since } : {}),
            ...(m.auth !== undefined ? { auth: m.auth } : {}),
            throws: m.throws,
          },
        ]),
      ),
      events: Object.fromEntries(
        svc.events.map((e) => [
          e.name,
          { name: e.name, payload: this.struct(`${svc.fullName}.${e.name}$event`, e.params), broadcast: e.broadcast },
        ]),
      ),
      states: Object.fromEntries(
        svc.states.map((s) => [
          s.name,
          {
            name: s.name,
            schema: this.type(s.type),
            mode: s.mode,
            ...(s.sharded === true ? { sharded: true as const } : {}),
          },
        ]),
      ),
      subscriptions: [],
      depends: svc.depends,
      ...(svc.config.length > 0 ? { config: this.struct(`${svc.fullName}$config`, svc.config) } : {}),
      errors,
    };
  }
}

function pick<K extends keyof Constraints>(c: Constraints, keys: readonly K[]): Partial<Pick<Constraints, K>> {
  const out: Partial<Pick<Constraints, K>> = {};
  for (const k of keys) if (c[k] !== undefined) out[k] = c[k];
  return out;
}
