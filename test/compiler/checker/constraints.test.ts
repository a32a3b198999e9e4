/** Field constraints: where they apply, their arguments, and their consistency. */
import { describe, expect, it } from "vitest";
import { expectClean, expectDiagnostics, src } from "../helpers.js";

describe("constraints", () => {
  it("records constraints in wire units (int64 and decimal bounds as text, durations in ms)", () => {
    const model = expectClean(
      src(
        "package p",
        "struct S {",
        "  a: int @min(1) @max(10)",
        "  b: int64 @min(-5) @max(9007199254740993)",
        '  c: decimal @min(0.5) @max("99.99")',
        "  d: float @min(0) @max(1.5)",
        "  e: duration @max(4h)",
        '  f: string @minLength(1) @maxLength(10) @pattern("^a")',
        "  g: bytes @maxLength(16)",
        "  h: list<int> @maxItems(3)",
        "  i?: map<string, int> @maxItems(4)",
        "}",
      ),
    );
    const s = model.packages[0]!.decls[0]!;
    expect(s.kind === "struct" && s.fields.map((f) => f.constraints)).toEqual([
      { min: 1, max: 10 },
      { min: "-5", max: "9007199254740993" },
      { min: "0.5", max: "99.99" },
      { min: 0, max: 1.5 },
      { max: 14_400_000 },
      { minLength: 1, maxLength: 10, pattern: "^a" },
      { maxLength: 16 },
      { maxItems: 3 },
      { maxItems: 4 },
    ]);
  });

  it("rejects constraints on types they do not apply to (FAN0204), bad bounds (FAN0210), bad patterns (FAN0211), bad arguments (FAN0303, FAN0011)", () => {
    expectDiagnostics(
      src(
        "package p",
        "struct S {",
        "  a: string @min(1)",
        "  b: int @maxLength(3)",
        '  c: int @pattern("x")',
        "  d: string @maxItems(2)",
        "  e: int @min(5) @max(1)",
        "  f: string @minLength(5) @maxLength(2)",
        '  g: string @pattern("(")',
        '  h: int @min("x")',
        "  i: string @maxLength(-1)",
        "  j: string @maxLength(99999999999999999999)",
        "  k: int @min(1.5)",
        "  l: Color @min(1)",
        "}",
        "enum Color { RED }",
      ),
      [
        ["FAN0204", 3, 13],
        ["FAN0204", 4, 10],
        ["FAN0204", 5, 10],
        ["FAN0204", 6, 13],
        ["FAN0210", 7, 10],
        ["FAN0210", 8, 13],
        ["FAN0211", 9, 22],
        ["FAN0303", 10, 10],
        ["FAN0303", 11, 13],
        ["FAN0011", 12, 24],
        ["FAN0303", 13, 10],
        ["FAN0204", 14, 12],
      ],
    );
  });

  it("compares int64 and decimal bounds exactly", () => {
    expectDiagnostics(
      src(
        "package p",
        "struct S {",
        "  a: int64 @min(9007199254740993) @max(9007199254740992)",
        "  b: decimal @min(0.10) @max(0.09)",
        "}",
      ),
      [
        ["FAN0210", 3, 12],
        ["FAN0210", 4, 14],
      ],
    );
    expectClean(src("package p", "struct S { a: decimal @min(0.1) @max(0.10) }"));
  });
});
