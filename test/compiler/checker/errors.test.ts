/** Error declarations: status codes, fields, and `throws`. */
import { describe, expect, it } from "vitest";
import { expectClean, expectDiagnostics, messageOf, src } from "../helpers.js";

describe("errors", () => {
  it("takes the code from @code, FAILED_PRECONDITION by default", () => {
    const model = expectClean(
      src(
        "package p",
        "error A @code(NOT_FOUND) { id: string }",
        "/// Doc.",
        "@code(UNAVAILABLE) error B {}",
        "error C { id: string; why?: string }",
      ),
    );
    expect(model.packages[0]!.decls.map((d) => d.kind === "error" && [d.name, d.code, d.fields.length, d.doc])).toEqual(
      [
        ["A", "NOT_FOUND", 1, undefined],
        ["B", "UNAVAILABLE", 0, "Doc."],
        ["C", "FAILED_PRECONDITION", 2, undefined],
      ],
    );
  });

  it("rejects a @code that is not a status code (FAN0305) or not one name (FAN0303)", () => {
    const r = expectDiagnostics(
      src(
        "package p",
        "error C @code(NOPE) {}",
        "error D @code(NOT_FOUND, INTERNAL) {}",
        'error E @code("NOT_FOUND") {}',
        "error G @code {}",
      ),
      [
        ["FAN0305", 2, 15],
        ["FAN0303", 3, 9],
        ["FAN0303", 4, 9],
        ["FAN0303", 5, 9],
      ],
    );
    expect(messageOf(r, "FAN0305")).toContain("PERMISSION_DENIED");
  });

  it("rejects error fields that shadow the error class's own properties (FAN0114)", () => {
    expectDiagnostics(src("package p", "error F { message: string, code: int, reason: string }"), [
      ["FAN0114", 2, 11],
      ["FAN0114", 2, 28],
    ]);
  });

  it("resolves `throws` to errors only (FAN0113), once each (FAN0103)", () => {
    const r = expectDiagnostics(
      src("package p", "error A {}", "struct S {}", "service Svc {", "  rpc a(): int throws A, S, Missing, A", "}"),
      [
        ["FAN0113", 5, 26],
        ["FAN0101", 5, 29],
        ["FAN0103", 5, 38],
      ],
    );
    expect(messageOf(r, "FAN0113")).toBe("`p.S` is a struct, not an error");
  });

  it("lists thrown errors by full name, across packages", () => {
    const model = expectClean({
      "a.fan": src("package a", "error Denied @code(PERMISSION_DENIED) {}"),
      "b.fan": src(
        "package b",
        "import a as x",
        "error Gone {}",
        "service S { rpc get(): string throws Gone, x.Denied }",
      ),
    });
    const s = model.packages[1]!.decls[1]!;
    expect(s.kind === "service" && s.methods[0]!.throws).toEqual(["b.Gone", "a.Denied"]);
  });
});
