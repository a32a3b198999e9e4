/** Lexical and syntax errors: located, one per problem, all of them in one run. */
import { describe, expect, it } from "vitest";
import { check, expectDiagnostics, messageOf, src } from "../helpers.js";

describe("syntax errors", () => {
  it("reports stray characters (FAN0001)", () => {
    const r = expectDiagnostics(src("package p", "struct S { a: int # }", "struct T { b: int \u0007 }"), [
      ["FAN0001", 2, 19],
      ["FAN0001", 3, 19],
    ]);
    expect(r.diagnostics.map((d) => d.message)).toEqual(["unexpected character `#`", "unexpected character U+0007"]);
  });

  it("reports unterminated strings (FAN0002) and block comments (FAN0003)", () => {
    expectDiagnostics(src("package p", 'version "1.0.0', "/* open", "struct S {}"), [
      ["FAN0002", 2, 9],
      ["FAN0003", 3, 1],
    ]);
  });

  it("reports escapes that JSON does not have (FAN0004)", () => {
    expectDiagnostics(src("package p", 'struct S { a: string = "x\\qy", b: string = "\\u12" }'), [
      ["FAN0004", 2, 26],
      ["FAN0004", 2, 45],
    ]);
  });

  it("says what was expected (FAN0005)", () => {
    const r = expectDiagnostics(src("package p", "struct S { a int }"), [["FAN0005", 2, 14]]);
    expect(messageOf(r, "FAN0005")).toBe("expected `:` but found `int`");
    const eof = expectDiagnostics(src("package p", "struct S { a: int"), [["FAN0005", 2, 10]]);
    expect(messageOf(eof, "FAN0005")).toBe("expected `}` but found end of file: this `{` is never closed");
    // The innermost bracket left open, several lines up.
    const nested = expectDiagnostics(src("package p", "service S {", "  rpc get(id: string", "", ""), [
      ["FAN0005", 3, 10],
    ]);
    expect(messageOf(nested, "FAN0005")).toMatch(/: this `\(` is never closed$/);
  });

  it("reports every syntax error of a file in one run, and still checks the rest", () => {
    expectDiagnostics(
      src(
        "package p",
        "struct A { a int }",
        "struct B { b: Nope }",
        "service S { rpc x( }",
        "}}",
        "struct C { c: int = }",
        "enum E { X = y }",
        "struct D { d: Missing }",
      ),
      [
        ["FAN0005", 2, 14],
        ["FAN0101", 3, 15],
        ["FAN0005", 4, 20],
        ["FAN0005", 5, 1],
        ["FAN0005", 6, 21],
        ["FAN0005", 7, 14],
        ["FAN0503", 7, 14],
        ["FAN0101", 8, 15],
      ],
    );
  });

  it("reports a missing `}` or `)` once, at the next declaration or member, which is still read", () => {
    const r = expectDiagnostics(
      src(
        "package p",
        "struct A {",
        "  x: int",
        "struct B { y: string }",
        "enum E { on off",
        "@unique service S {",
        "  rpc get(id: string): B",
        "  rpc put(b: B",
        "  rpc del(id: string): Nope",
        "}",
      ),
      [
        ["FAN0005", 4, 1],
        ["FAN0503", 5, 10],
        ["FAN0503", 5, 13],
        ["FAN0005", 6, 1],
        ["FAN0005", 9, 3],
        ["FAN0101", 9, 24],
      ],
    );
    expect(r.diagnostics.filter((d) => d.code === "FAN0005").map((d) => d.message)).toEqual([
      "expected `}` but found `struct`",
      "expected `}` but found `@`",
      "expected `)` but found `rpc`",
    ]);
  });

  it("skips input nested more than 64 levels deep (FAN0006)", () => {
    const deep = `${"list<".repeat(70)}int${">".repeat(70)}`;
    expectDiagnostics(src("package p", `struct S { a: ${deep} }`, "struct T { b: Nope }"), [
      // The struct's `{` is the first level, so the 64th `<` is one too many.
      ["FAN0006", 2, 15 + 63 * 5 + 4],
      ["FAN0101", 3, 15],
    ]);
  });

  it("needs exactly one package line, first (FAN0007, FAN0008, FAN0009)", () => {
    expectDiagnostics(src("struct S {}"), [["FAN0007", 1, 1]]);
    expectDiagnostics(src("package a", "package b"), [["FAN0008", 2, 1]]);
    expectDiagnostics(src("/// Doc.", "import x", "package a"), [
      ["FAN0105", 2, 8],
      ["FAN0009", 3, 1],
    ]);
    expect(check("").diagnostics.map((d) => d.code)).toEqual(["FAN0007"]);
  });

  it("stops after 100 errors of one kind in a file (FAN0010)", () => {
    const lexical = check(src("package p", "#".repeat(150).split("").join(" ")));
    expect(lexical.diagnostics).toHaveLength(101);
    expect(lexical.diagnostics[100]!.code).toBe("FAN0010");
    const syntax = check(src("package p", ...Array.from({ length: 150 }, () => "struct { }")));
    expect(syntax.diagnostics.filter((d) => d.code === "FAN0005")).toHaveLength(100);
    expect(syntax.diagnostics.filter((d) => d.code === "FAN0010")).toHaveLength(1);
  });
});
