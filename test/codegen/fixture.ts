/**
 * Hand-written ProgramModel fixtures for generator tests that do not go through the compiler
 * (and for cases the IDL cannot express directly, such as names that only a model can hold).
 */
import type {
  Constraints,
  DeclModel,
  FieldModel,
  JsonValue,
  MethodModel,
  PrimitiveName,
  ProgramModel,
  ServiceModel,
  TypeModel,
} from "../../src/compiler/model.js";

/** A primitive type. */
export const prim = (name: PrimitiveName): TypeModel => ({ kind: "primitive", name });
/** A reference to a declaration. */
export const ref = (target: string, declKind: "struct" | "enum" | "union" | "error"): TypeModel => ({ kind: "ref", target, declKind });
/** `list<T>`. */
export const list = (element: TypeModel): TypeModel => ({ kind: "list", element });
/** `map<K, V>`. */
export const map = (key: TypeModel, value: TypeModel): TypeModel => ({ kind: "map", key, value });

/** Options of a field in a fixture. */
export interface FieldOpts {
  optional?: boolean;
  default?: JsonValue;
  constraints?: Constraints;
  secret?: boolean;
  doc?: string;
  deprecated?: string;
}

/** A field, parameter or config entry. */
export function field(name: string, type: TypeModel, o: FieldOpts = {}): FieldModel {
  return {
    name,
    type,
    optional: o.optional ?? false,
    constraints: o.constraints ?? {},
    secret: o.secret ?? false,
    ...(o.default !== undefined ? { default: o.default } : {}),
    ...(o.doc !== undefined ? { doc: o.doc } : {}),
    ...(o.deprecated !== undefined ? { deprecated: o.deprecated } : {}),
  };
}

/** An rpc with defaults for everything not given. */
export function rpc(name: string, params: FieldModel[], returns: TypeModel, o: Partial<MethodModel> = {}): MethodModel {
  return { kind: "rpc", name, params, returns, throws: [], timeoutMs: 10_000, idempotent: false, retry: 0, ...o };
}

/** A service with defaults for everything not given. */
export function service(pkg: string, name: string, o: Partial<ServiceModel> = {}): ServiceModel {
  return {
    kind: "service",
    name,
    fullName: `${pkg}.${name}`,
    package: pkg,
    version: "1.0.0",
    transports: ["http", "amqp", "redis", "zmq", "local"],
    shards: 16,
    unique: false,
    depends: [],
    config: [],
    methods: [],
    events: [],
    states: [],
    subscriptions: [],
    ...o,
  };
}

/** A program of one package per entry, files named after the package. */
export function program(pkgs: Record<string, DeclModel[]>): ProgramModel {
  return {
    packages: Object.entries(pkgs)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, decls]) => ({ name, files: [`${name.split(".").join("/")}.fan`], decls })),
  };
}

/** The example of docs/generated-code.md as a model: one package of every declaration kind, plus a subscriber. */
export function docExample(): ProgramModel {
  const p = "retail.wines";
  return program({
    "retail.common": [
      { kind: "struct", name: "Money", fullName: "retail.common.Money", package: "retail.common", fields: [field("amount", prim("decimal")), field("currency", prim("string"), { constraints: { pattern: "^[A-Z]{3}$" } })] },
    ],
    [p]: [
      { kind: "enum", name: "Color", fullName: `${p}.Color`, package: p, doc: "The colour of a wine.", members: [{ name: "RED", value: 1 }, { name: "WHITE", value: 2 }] },
      {
        kind: "struct", name: "Wine", fullName: `${p}.Wine`, package: p,
        fields: [
          field("id", prim("uuid")),
          field("name", prim("string"), { constraints: { maxLength: 200 }, doc: "Display name." }),
          field("color", ref(`${p}.Color`, "enum")),
          field("vintage", prim("int"), { optional: true, constraints: { min: 1800 } }),
          field("price", ref("retail.common.Money", "struct")),
          field("tags", list(prim("string")), { default: [] }),
        ],
      },
      { kind: "struct", name: "CardPayment", fullName: `${p}.CardPayment`, package: p, fields: [field("last4", prim("string"))] },
      { kind: "struct", name: "CashPayment", fullName: `${p}.CashPayment`, package: p, fields: [field("tendered", ref("retail.common.Money", "struct"))] },
      { kind: "union", name: "Payment", fullName: `${p}.Payment`, package: p, members: [{ name: "card", type: ref(`${p}.CardPayment`, "struct") }, { name: "cash", type: ref(`${p}.CashPayment`, "struct") }] },
      { kind: "error", name: "WineNotFound", fullName: `${p}.WineNotFound`, package: p, code: "NOT_FOUND", fields: [field("inventoryId", prim("string"))] },
      service(p, "PublicWines", {
        version: "2.1.0",
        config: [field("pageSize", prim("int"), { default: 50 }), field("apiKey", prim("string"), { secret: true })],
        methods: [
          rpc("get", [field("storeId", prim("string")), field("inventoryId", prim("string"))], ref(`${p}.Wine`, "struct"), { timeoutMs: 2000, throws: [`${p}.WineNotFound`], doc: "Fetch one wine of a store." }),
          { kind: "push", name: "invalidate", params: [field("storeId", prim("string"))], returns: { kind: "void" }, throws: [], ttlMs: 30_000, idempotent: false, retry: 0 },
        ],
        events: [{ name: "wineChanged", params: [field("wine", ref(`${p}.Wine`, "struct"))], broadcast: false }],
        states: [{ name: "inventory", type: map(prim("string"), ref(`${p}.Wine`, "struct")), mode: "delta" }],
      }),
      service(p, "Sync", {
        methods: [rpc("ping", [], prim("string"))],
        subscriptions: [{ service: `${p}.PublicWines`, event: "wineChanged", handler: "onWineChanged" }],
      }),
    ],
  });
}

/**
 * Names that are reserved words or globals in TypeScript, or that collide with runtime
 * symbols: a model only (the checker warns on most of these), to prove the output still compiles.
 */
export function reservedNames(): ProgramModel {
  const p = "odd";
  const decl = (kind: "struct", name: string, fields: FieldModel[]): DeclModel => ({ kind, name, fullName: `${p}.${name}`, package: p, fields });
  return program({
    [p]: [
      decl("struct", "class", [field("delete", prim("bool")), field("default", prim("string"), { optional: true }), field("__proto__", prim("int"), { optional: true })]),
      decl("struct", "Date", [field("at", prim("timestamp")), field("raw", prim("bytes"))]),
      decl("struct", "Record", [field("m", map(prim("string"), prim("int")))]),
      decl("struct", "Promise", [field("x", ref(`${p}.Date`, "struct"))]),
      decl("struct", "Struct", [field("codec", prim("string"))]),
      decl("struct", "Codec", [field("schema", prim("json"))]),
      {
        kind: "enum", name: "enum", fullName: `${p}.enum`, package: p,
        members: [{ name: "constructor", value: 0 }, { name: "__proto__", value: 1 }, { name: "delete", value: 2 }],
      },
      { kind: "union", name: "Partial", fullName: `${p}.Partial`, package: p, members: [{ name: "class", type: ref(`${p}.class`, "struct") }, { name: "function", type: prim("string") }] },
      {
        kind: "error", name: "Fail", fullName: `${p}.Fail`, package: p, code: "INTERNAL",
        fields: [field("code", prim("int")), field("message", prim("string")), field("class", prim("string"), { optional: true })],
      },
      { kind: "error", name: "fields", fullName: `${p}.fields`, package: p, code: "ABORTED", fields: [] },
      service(p, "Service", {
        config: [field("if", prim("int"), { default: 1 })],
        methods: [
          rpc("delete", [field("class", prim("string")), field("in", map(ref(`${p}.enum`, "enum"), prim("int")), { default: {} })], ref(`${p}.class`, "struct"), { throws: [`${p}.Fail`, `${p}.fields`] }),
          rpc("constructor", [], { kind: "void" }),
          rpc("toString", [field("valueOf", prim("int"))], prim("string")),
          rpc("emit", [], prim("bool")),
          rpc("client", [], prim("bool")),
          { kind: "push", name: "new", params: [], returns: { kind: "void" }, throws: [], idempotent: false, retry: 0 },
        ],
        events: [{ name: "typeof", params: [field("var", prim("string"))], broadcast: true }],
        states: [{ name: "let", type: ref(`${p}.Partial`, "union"), mode: "full" }],
      }),
    ],
  });
}

/** Two packages that import each other: types, errors and a subscription across the cycle. */
export function cycle(): ProgramModel {
  return program({
    "cy.a": [
      { kind: "struct", name: "A", fullName: "cy.a.A", package: "cy.a", fields: [field("b", ref("cy.b.B", "struct"), { optional: true }), field("n", prim("int"), { default: 7 })] },
      service("cy.a", "SA", {
        methods: [rpc("get", [field("id", prim("string"))], ref("cy.b.B", "struct"), { throws: ["cy.b.EB"] })],
        subscriptions: [{ service: "cy.b.SB", event: "ev", handler: "onEv" }],
      }),
    ],
    "cy.b": [
      { kind: "struct", name: "B", fullName: "cy.b.B", package: "cy.b", fields: [field("a", ref("cy.a.A", "struct"), { optional: true })] },
      { kind: "error", name: "EB", fullName: "cy.b.EB", package: "cy.b", code: "NOT_FOUND", fields: [field("why", prim("string"))] },
      service("cy.b", "SB", { events: [{ name: "ev", params: [field("a", ref("cy.a.A", "struct"))], broadcast: false }] }),
    ],
  });
}
