/** Type references: built-ins, generics, map keys, `void`, and names that are not types. */
import { describe, expect, it } from "vitest";
import { check, expectClean, expectDiagnostics, src } from "../helpers.js";

describe("types", () => {
  it("resolves built-ins, generics and declarations to type models", () => {
    const model = expectClean(
      src(
        "package p",
        "enum Color { RED }",
        "struct S {",
        "  a: list<map<string, int64>>",
        "  b: map<Color, list<S>>",
        "  c: map<int, json>",
        "}",
      ),
    );
    const s = model.packages[0]!.decls[1]!;
    expect(s.kind === "struct" && s.fields.map((f) => f.type)).toEqual([
      {
        kind: "list",
        element: {
          kind: "map",
          key: { kind: "primitive", name: "string" },
          value: { kind: "primitive", name: "int64" },
        },
      },
      {
        kind: "map",
        key: { kind: "ref", target: "p.Color", declKind: "enum" },
        value: { kind: "list", element: { kind: "ref", target: "p.S", declKind: "struct" } },
      },
      { kind: "map", key: { kind: "primitive", name: "int" }, value: { kind: "primitive", name: "json" } },
    ]);
  });

  it("rejects unknown types (FAN0101), wrong type arguments (FAN0202), bad map keys (FAN0201), void fields (FAN0205) and services as types (FAN0109)", () => {
    expectDiagnostics(
      src(
        "package p",
        "struct S {",
        "  a: Nope",
        "  b: list<int, int>",
        "  c: map<string>",
        "  d: int<string>",
        "  e: map<float, int>",
        "  f: void",
        "  g: Svc",
        "  h: list<Missing>",
        "}",
        "service Svc {}",
      ),
      [
        ["FAN0101", 3, 6],
        ["FAN0202", 4, 6],
        ["FAN0202", 5, 6],
        ["FAN0202", 6, 6],
        ["FAN0201", 7, 10],
        ["FAN0205", 8, 6],
        ["FAN0109", 9, 6],
        ["FAN0101", 10, 11],
      ],
    );
  });

  it("rejects a declaration named like a built-in type (FAN0108)", () => {
    expectDiagnostics(src("package p", "struct string {}", "enum Void { A }", "union list { a: int }"), [
      ["FAN0108", 2, 8],
      ["FAN0501", 2, 8],
      ["FAN0108", 4, 7],
      ["FAN0501", 4, 7],
    ]);
  });

  it("accepts void only as an rpc return type; a missing return type means void", () => {
    const model = expectClean(src("package p", "service S {", "  rpc a(): void", "  rpc b()", "}"));
    const s = model.packages[0]!.decls[0]!;
    expect(s.kind === "service" && s.methods.map((m) => m.returns)).toEqual([{ kind: "void" }, { kind: "void" }]);
    expectDiagnostics(
      src(
        "package p",
        "service S {",
        "  rpc a(x: void): list<void>",
        "  event e(x: void)",
        "  state s: void @full",
        "}",
      ),
      [
        ["FAN0205", 3, 12],
        ["FAN0205", 3, 24],
        ["FAN0205", 4, 14],
        ["FAN0205", 5, 12],
      ],
    );
  });

  it("rejects void union members (FAN0206), duplicate members (FAN0103) and empty unions (FAN0212)", () => {
    expectDiagnostics(src("package p", "union U { a: void, b: int, a: string }", "union E {}"), [
      ["FAN0206", 2, 14],
      ["FAN0103", 2, 28],
      ["FAN0212", 3, 7],
    ]);
  });

  it("resolves union members in order", () => {
    const model = expectClean(
      src(
        "package p",
        "struct Card {}",
        "/// Pay.",
        "union Pay {",
        "  /// By card.",
        "  card: Card",
        "  cash: decimal",
        "}",
      ),
    );
    const u = model.packages[0]!.decls[1]!;
    expect(u).toMatchObject({
      kind: "union",
      doc: "Pay.",
      members: [
        { name: "card", doc: "By card.", type: { kind: "ref", target: "p.Card" } },
        { name: "cash", type: { kind: "primitive", name: "decimal" } },
      ],
    });
  });

  it("rejects field and parameter names the runtime's decoders refuse (FAN0114)", () => {
    const r = expectDiagnostics(
      src("package p", "struct S { __proto__: int }", "service A { rpc a(constructor: int, prototype?: int) }"),
      [
        ["FAN0114", 2, 12],
        ["FAN0502", 2, 12],
        ["FAN0114", 3, 19],
        ["FAN0114", 3, 37],
      ],
    );
    expect(r.diagnostics[0]!.message).toBe(
      "`__proto__` cannot name a field: the runtime rejects this key in every payload",
    );
  });
});

describe("did-you-mean hints", () => {
  it("offers the closest visible type, error or decorator, and nothing when none is close", () => {
    const r = check(
      src(
        "package p",
        "struct Wine { id: strng, n: Wien, c: Colour, b: boolean, z: Zzzzzz }",
        "enum Color { RED }",
        "error NotFound {}",
        "service S {",
        "  @idempotnt @maxlength(3) rpc f(): int throws NotFund",
        "}",
      ),
    );
    expect(r.diagnostics.map((d) => d.message)).toEqual([
      "unknown type `strng`; did you mean `string`?",
      "unknown type `Wien`; did you mean `Wine`?",
      "unknown type `Colour`; did you mean `Color`?",
      "unknown type `boolean`; did you mean `bool`?",
      "unknown type `Zzzzzz`",
      "unknown decorator @idempotnt; did you mean `@idempotent`?",
      "unknown decorator @maxlength; did you mean `@maxLength`?",
      "unknown type `NotFund`; did you mean `NotFound`?",
    ]);
  });
});
