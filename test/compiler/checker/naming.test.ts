/** Casing conventions are warnings: they never fail a compile unless strict. */
import { describe, expect, it } from "vitest";
import { check, expectDiagnostics, src } from "../helpers.js";

describe("naming", () => {
  const source = src(
    "package p",
    "struct my_struct { Bad_Field: int }",
    "service lower { rpc Get(X: int): int  event Changed()  state Big: int @full  config { Key: int } }",
    "union u { A: int }",
    "error e {}",
    "enum colour { RED, lower_case }",
  );

  it("warns on types and services not PascalCase (FAN0501) and members not camelCase (FAN0502)", () => {
    const r = expectDiagnostics(source, [
      ["FAN0501", 2, 8],
      ["FAN0502", 2, 20],
      ["FAN0501", 3, 9],
      ["FAN0502", 3, 21],
      ["FAN0502", 3, 25],
      ["FAN0502", 3, 45],
      ["FAN0502", 3, 62],
      ["FAN0502", 3, 87],
      ["FAN0501", 4, 7],
      ["FAN0502", 4, 11],
      ["FAN0501", 5, 7],
      ["FAN0501", 6, 6],
      ["FAN0503", 6, 20],
    ]);
    expect(r.diagnostics.every((d) => d.severity === "warning")).toBe(true);
    expect(r.model).toBeDefined();
  });

  it("fails the compile on warnings when strict", () => {
    const r = check(source, true);
    expect(r.model).toBeUndefined();
    expect(r.diagnostics).toHaveLength(13);
  });
});
