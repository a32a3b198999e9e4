/** Packages, imports and name resolution across files. */
import { describe, expect, it } from "vitest";
import { check, expectClean, expectDiagnostics, messageOf, src } from "../helpers.js";

describe("packages and imports", () => {
  it("merges files of one package into one namespace", () => {
    const model = expectClean({
      "a.fan": src("package p", "struct A {}"),
      "b.fan": src("package p", "struct B { a: A, b: p.A }"),
    });
    expect(model.packages).toHaveLength(1);
    expect(model.packages[0]!.files).toEqual(["a.fan", "b.fan"]);
    expect(model.packages[0]!.decls.map((d) => d.fullName)).toEqual(["p.A", "p.B"]);
  });

  it("reports a name declared twice in one package, even across files (FAN0102)", () => {
    expectDiagnostics({ "a.fan": src("package p", "struct A {}"), "b.fan": src("package p", "", "enum A { X }") }, [
      ["FAN0102", 3, 6, "b.fan"],
    ]);
  });

  it("makes `a.b.X` and `b.X` visible after `import a.b`", () => {
    const model = expectClean({
      "a.fan": src("package x.y", "struct A {}"),
      "b.fan": src("package q", "import x.y", "struct B { a: x.y.A, b: y.A }"),
    });
    const b = model.packages.find((p) => p.name === "q")!.decls[0]!;
    expect(b.kind === "struct" && b.fields.map((f) => f.type)).toEqual([
      { kind: "ref", target: "x.y.A", declKind: "struct" },
      { kind: "ref", target: "x.y.A", declKind: "struct" },
    ]);
  });

  it("makes only `c.X` and the full name visible after `import a.b as c`", () => {
    expectDiagnostics(
      {
        "a.fan": src("package x.y", "struct A {}"),
        "b.fan": src("package q", "import x.y as z", "struct B { a: z.A, b: x.y.A, c: y.A }"),
      },
      [["FAN0101", 3, 33, "b.fan"]],
    );
  });

  it("rejects a name from a package that is not imported (FAN0104)", () => {
    const r = expectDiagnostics(
      { "a.fan": src("package p", "struct A {}"), "b.fan": src("package q", "struct B { a: p.A }") },
      [["FAN0104", 2, 15, "b.fan"]],
    );
    expect(messageOf(r, "FAN0104")).toContain("import p");
  });

  it("rejects an import of a package that does not exist (FAN0105)", () => {
    expectDiagnostics(src("package q", "import nowhere.at.all"), [["FAN0105", 2, 8]]);
  });

  it("rejects one alias for two packages (FAN0106)", () => {
    expectDiagnostics(
      {
        "a.fan": src("package a", "struct A {}"),
        "b.fan": src("package b", "struct B {}"),
        "c.fan": src("package c", "import a as z", "import b as z", "struct C { x: z.A }"),
      },
      [["FAN0106", 3, 13, "c.fan"]],
    );
  });

  it("rejects a short name that two imports share when it is used (FAN0107)", () => {
    expectDiagnostics(
      {
        "a.fan": src("package a.x", "struct A {}"),
        "b.fan": src("package b.x", "struct B {}"),
        "c.fan": src("package c", "import a.x", "import b.x", "struct C { f: x.A, g: a.x.A, h: b.x.B }"),
      },
      [["FAN0107", 4, 15, "c.fan"]],
    );
  });

  it("allows import cycles between packages", () => {
    expectClean({
      "a.fan": src("package a", "import b", "struct A { b?: b.B }"),
      "b.fan": src("package b", "import a", "struct B { a?: a.A }"),
    });
  });

  it("allows a package's own full name", () => {
    expectClean(src("package p.q", "struct A { me?: p.q.A }"));
  });

  it("warns about an import that is never used (FAN0506)", () => {
    const r = expectDiagnostics(
      { "a.fan": src("package a", "struct A {}"), "b.fan": src("package b", "import a", "struct B {}") },
      [["FAN0506", 2, 1, "b.fan"]],
    );
    expect(r.diagnostics[0]!.severity).toBe("warning");
    expect(r.model).toBeDefined();
  });

  it("accepts one version line per package, across its files (FAN0319)", () => {
    expectDiagnostics(
      { "a.fan": src("package p", 'version "1.0.0"'), "b.fan": src("package p", "", 'version "1.0.0"') },
      [["FAN0319", 3, 1, "b.fan"]],
    );
    expectDiagnostics(src("package p", 'version "1.0.0"', 'version "2.0.0"'), [["FAN0319", 3, 1]]);
  });

  it("rejects a version line that is not semver (FAN0311)", () => {
    expectDiagnostics(src("package p", 'version "1.0"'), [["FAN0311", 2, 9]]);
  });

  it("warns about a package name that is not lowercase (FAN0504)", () => {
    const r = expectDiagnostics(src("package Retail.wines"), [["FAN0504", 1, 9]]);
    expect(r.model).toBeDefined();
    expect(check(src("package Retail.wines"), true).model).toBeUndefined();
  });
});
