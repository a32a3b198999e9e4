/** The parser: tables of input and the AST bits it must produce. */
import { describe, expect, it } from "vitest";
import { parseFile } from "../../src/compiler/parser.js";

/** The AST without spans, with names flattened to strings, so expectations stay readable. */
function plain(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(plain);
  if (node === null || typeof node !== "object") return node;
  const o = node as Record<string, unknown>;
  if (o.kind === "Ident") return o.name;
  if (o.kind === "QualifiedName") return (o.parts as { name: string }[]).map((p) => p.name).join(".");
  if (o.kind === "TypeRef" && (o.args as unknown[]).length === 0) return plain(o.name);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o))
    if (
      k !== "span" &&
      !(k === "text" && o.kind === "SourceFile") &&
      !(k === "decorators" && (v as unknown[]).length === 0)
    )
      out[k] = plain(v);
  return out;
}

function parse(text: string) {
  const r = parseFile("t.fan", `package p\n${text}`);
  expect(r.diagnostics.map((d) => d.message)).toEqual([]);
  return plain(r.ast) as {
    decls: Record<string, unknown>[];
    imports: unknown[];
    versions: unknown[];
    package: unknown;
  };
}

const decl = (text: string) => parse(text).decls[0];
const member = (text: string) => (decl(`service S { ${text} }`) as { members: unknown[] }).members;
const fields = (text: string) => (decl(`struct S { ${text} }`) as { fields: unknown[] }).fields;

describe("parser: file level", () => {
  it("reads package, imports (with aliases) and version lines", () => {
    const f = parse('import a.b\nimport c as d\nversion "1.2.3"');
    expect(f.package).toEqual({ kind: "Package", name: "p" });
    expect(f.imports).toEqual([
      { kind: "Import", name: "a.b" },
      { kind: "Import", name: "c", alias: "d" },
    ]);
    expect(f.versions).toEqual([{ kind: "Version", value: { kind: "StringLit", value: "1.2.3" } }]);
  });

  it.each([
    ["struct A {}", { kind: "Struct", name: "A", fields: [] }],
    [
      "enum B { X = 1, Y; Z }",
      {
        kind: "Enum",
        name: "B",
        members: [
          { kind: "EnumMember", name: "X", value: { kind: "IntLit" } },
          { kind: "EnumMember", name: "Y" },
          { kind: "EnumMember", name: "Z" },
        ],
      },
    ],
    [
      "union C { a: int, b: list<D> }",
      {
        kind: "Union",
        name: "C",
        members: [
          { kind: "UnionMember", name: "a", type: "int" },
          { kind: "UnionMember", name: "b", type: { kind: "TypeRef", name: "list", args: ["D"] } },
        ],
      },
    ],
    [
      '@deprecated("x") error E @code(NOT_FOUND) { id: string }',
      {
        kind: "Error",
        name: "E",
        decorators: [{ name: "deprecated" }, { name: "code", args: [{ kind: "NameExpr", name: "NOT_FOUND" }] }],
      },
    ],
    [
      "@unique @shards(4) service S {}",
      {
        kind: "Service",
        name: "S",
        decorators: [
          { name: "unique", args: undefined },
          { name: "shards", args: [{ kind: "IntLit" }] },
        ],
        members: [],
      },
    ],
    ["struct service { rpc: int }", { kind: "Struct", name: "service", fields: [{ name: "rpc" }] }],
  ])("declaration %j", (text, expected) => {
    expect(decl(text)).toMatchObject(expected);
  });
});

describe("parser: fields", () => {
  it.each([
    [
      "a: int, b?: string; c: bool",
      [
        { name: "a", optional: false, type: "int" },
        { name: "b", optional: true, type: "string" },
        { name: "c", type: "bool" },
      ],
    ],
    [
      "tags: list<string> = [] @maxItems(3)",
      [
        {
          name: "tags",
          default: { kind: "ListLit", items: [] },
          decorators: [{ name: "maxItems", args: [{ kind: "IntLit", text: "3" }] }],
        },
      ],
    ],
    [
      "m: map<string, list<common.Money>>",
      [
        {
          type: {
            kind: "TypeRef",
            name: "map",
            args: ["string", { kind: "TypeRef", name: "list", args: ["common.Money"] }],
          },
        },
      ],
    ],
    [
      "service: int state: int on: int rpc: int package: int list: int",
      ["service", "state", "on", "rpc", "package", "list"].map((name) => ({ name })),
    ],
    ["unit: Unit = BOTTLE", [{ default: { kind: "NameExpr", name: "BOTTLE" } }]],
    [
      "x: int @a @b() @c(1, -2)",
      [
        {
          decorators: [
            { name: "a", args: undefined },
            { name: "b", args: [] },
            { name: "c", args: [{ text: "1" }, { text: "-2" }] },
          ],
        },
      ],
    ],
  ])("%j", (text, expected) => {
    expect(fields(text)).toMatchObject(expected);
  });

  it.each([
    ['"a\\tb\\u0041"', { kind: "StringLit", value: "a\tbA" }],
    ["42", { kind: "IntLit", text: "42" }],
    ["-12", { kind: "IntLit", text: "-12" }],
    ["2.5", { kind: "FloatLit", text: "2.5" }],
    ["250ms", { kind: "DurationLit", ms: 250, text: "250ms" }],
    ["2s", { kind: "DurationLit", ms: 2000 }],
    ["5m", { kind: "DurationLit", ms: 300_000 }],
    ["1h", { kind: "DurationLit", ms: 3_600_000 }],
    ["true", { kind: "NameExpr", name: "true" }],
    ["Unit.BOTTLE", { kind: "NameExpr", name: "Unit.BOTTLE" }],
    [
      '[1, "a", [2.5], x,]',
      {
        kind: "ListLit",
        items: [
          { kind: "IntLit" },
          { kind: "StringLit", value: "a" },
          { kind: "ListLit", items: [{ kind: "FloatLit" }] },
          { kind: "NameExpr", name: "x" },
        ],
      },
    ],
  ])("literal %s", (text, expected) => {
    expect((fields(`x: json = ${text}`)[0] as { default: unknown }).default).toMatchObject(expected);
  });
});

describe("parser: service members", () => {
  it.each([
    [
      'depends api.Integration "^1.0"',
      [{ kind: "Depends", soft: false, service: "api.Integration", range: { value: "^1.0" } }],
    ],
    ['depends soft Lightspeed "^2"', [{ kind: "Depends", soft: true, service: "Lightspeed" }]],
    ['depends soft "*"', [{ kind: "Depends", soft: false, service: "soft" }]],
    [
      "config { pageSize: int = 50 apiKey: string @secret }",
      [{ kind: "Config", fields: [{ name: "pageSize" }, { name: "apiKey", decorators: [{ name: "secret" }] }] }],
    ],
    [
      "rpc get(a: string, b?: int,): Wine throws NotFound, common.Denied",
      [
        {
          kind: "Rpc",
          name: "get",
          params: [{ name: "a" }, { name: "b", optional: true }],
          returns: "Wine",
          throws: ["NotFound", "common.Denied"],
        },
      ],
    ],
    ["rpc ping()", [{ kind: "Rpc", returns: "void", throws: [] }]],
    [
      "rpc a(): int throws E1, rpc b(): int",
      [
        { kind: "Rpc", name: "a", throws: ["E1"] },
        { kind: "Rpc", name: "b" },
      ],
    ],
    [
      "rpc a(): int throws E1, @idempotent rpc b(): int",
      [{ throws: ["E1"] }, { name: "b", decorators: [{ name: "idempotent" }] }],
    ],
    ["rpc a(): int throws E1, config {}", [{ throws: ["E1"] }, { kind: "Config" }]],
    [
      "rpc state(service: string, event?: string): string",
      [{ kind: "Rpc", name: "state", params: [{ name: "service" }, { name: "event" }] }],
    ],
    [
      "@ttl(30s) push invalidate(storeId: string)",
      [
        {
          kind: "Push",
          name: "invalidate",
          decorators: [{ name: "ttl", args: [{ kind: "DurationLit", ms: 30_000 }] }],
        },
      ],
    ],
    [
      "@broadcast event cacheFlush()",
      [{ kind: "Event", name: "cacheFlush", params: [], decorators: [{ name: "broadcast" }] }],
    ],
    [
      "state inventory: map<string, Wine> @delta",
      [{ kind: "State", name: "inventory", decorators: [{ name: "delta" }] }],
    ],
    [
      "state a: int @full\n  @delta state b: int",
      [
        { kind: "State", name: "a", decorators: [{ name: "full" }] },
        { kind: "State", name: "b", decorators: [{ name: "delta" }] },
      ],
    ],
    ["state a: int\n  @delta\n", [{ kind: "State", name: "a", decorators: [{ name: "delta" }] }]],
    [
      'state a: int @full\n  @deprecated("x") rpc b()',
      [
        { kind: "State", decorators: [{ name: "full" }] },
        { kind: "Rpc", decorators: [{ name: "deprecated" }] },
      ],
    ],
    ["on retail.wines.PublicWines.wineChanged", [{ kind: "On", target: "retail.wines.PublicWines.wineChanged" }]],
  ])("%j", (text, expected) => {
    expect(member(text)).toMatchObject(expected);
  });
});

describe("parser: doc comments", () => {
  it("attaches `///` blocks to the next package, declaration, member, field, parameter and enum or union member", () => {
    const r = parseFile(
      "t.fan",
      [
        "/// The package.",
        "package p",
        "/// A struct,",
        "/// two lines.",
        '@deprecated("x")',
        "struct S {",
        "  /// A field.",
        "  a: int",
        "}",
        "enum E { /// Member.",
        "  X }",
        "union U { /// Union member.",
        "  u: int }",
        "service Svc {",
        "  /// A method.",
        "  @idempotent",
        "  rpc m(/// A param.",
        "    x: int): int",
        "  /// Attached: the `///` lines of a run with plain comments.",
        "  // plain",
        "  rpc n()",
        "}",
      ].join("\n"),
    );
    const [s, e, u, svc] = r.ast.decls as unknown as Record<string, never>[];
    expect(r.ast.package?.doc).toBe("The package.");
    expect(plain(s)).toMatchObject({ doc: "A struct,\ntwo lines.", fields: [{ doc: "A field." }] });
    expect(plain(e)).toMatchObject({ members: [{ doc: "Member." }] });
    expect(plain(u)).toMatchObject({ members: [{ doc: "Union member." }] });
    const members = (plain(svc) as { members: Record<string, unknown>[] }).members;
    expect(members[0]).toMatchObject({ doc: "A method.", params: [{ doc: "A param." }] });
    expect(members[1]!.doc).toBe("Attached: the `///` lines of a run with plain comments.");
  });
});

describe("parser: spans", () => {
  it("gives every node a span of offsets into its file", () => {
    const text = "package p\nstruct Wine { name: string }";
    const r = parseFile("w.fan", text);
    const s = r.ast.decls[0]!;
    expect(text.slice(s.span.start, s.span.end)).toBe("struct Wine { name: string }");
    expect(s.kind === "Struct" && text.slice(s.fields[0]!.type.span.start, s.fields[0]!.type.span.end)).toBe("string");
    expect(s.span.file).toBe("w.fan");
  });
});
