/** The dependency graph: hard cycles named in full, and versions outside the asked range. */
import { describe, expect, it } from "vitest";
import { expectClean, expectDiagnostics, messageOf, src } from "../helpers.js";

describe("dependencies", () => {
  it("names a cycle of hard dependencies in full, across packages (FAN0401)", () => {
    const r = expectDiagnostics(
      {
        "a.fan": src("package a", "import b", 'service A { depends b.B "*" }'),
        "b.fan": src("package b", "import c", 'service B { depends c.C "*" }'),
        "c.fan": src("package c", "import a", 'service C { depends a.A "*" }'),
      },
      [["FAN0401", 3, 21, "a.fan"]],
    );
    expect(messageOf(r, "FAN0401")).toBe("cycle of hard dependencies: a.A -> b.B -> c.C -> a.A");
  });

  it("reports a service that depends on itself, and each distinct cycle once", () => {
    const r = expectDiagnostics(
      src(
        "package p",
        'service A { depends A "*" }',
        'service B { depends C "*" }',
        'service C { depends B "*", depends A "*" }',
      ),
      [
        ["FAN0401", 2, 21],
        ["FAN0401", 3, 21],
      ],
    );
    expect(r.diagnostics.map((d) => d.message)).toEqual([
      "cycle of hard dependencies: p.A -> p.A",
      "cycle of hard dependencies: p.B -> p.C -> p.B",
    ]);
  });

  it("lets a soft dependency close a loop", () => {
    expectClean(src("package p", 'service A { depends B "*" }', 'service B { depends soft A "*" }'));
  });

  it("warns when the declared version does not satisfy the range (FAN0505)", () => {
    const r = expectDiagnostics(
      src(
        "package p",
        '@version("1.4.0") service A {}',
        'service B { depends A "^2", depends soft Gone "*" }',
        "service Gone {}",
      ),
      [["FAN0505", 3, 23]],
    );
    expect(messageOf(r, "FAN0505")).toBe('`p.A` is version 1.4.0 here, which does not satisfy "^2"');
    expect(r.model).toBeDefined();
  });
});
