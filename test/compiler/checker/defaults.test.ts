/** Default values: fit to the type, wire form, and the field's own constraints. */
import { describe, expect, it } from "vitest";
import { expectClean, expectDiagnostics, messageOf, src } from "../helpers.js";

describe("defaults", () => {
  it("turns defaults into their JSON wire form", () => {
    const model = expectClean(
      src(
        "package p",
        "enum Unit { BOTTLE, CASE }",
        "struct S {",
        "  a: int64 = 12",
        "  b: decimal = 12.50",
        '  c: decimal = "-3.5"',
        "  d: float = 2",
        "  e: duration = 1h",
        "  f: Unit = CASE",
        "  g: Unit = Unit.BOTTLE",
        "  h: bool = false",
        '  i: string = "a\\"b\\u0041"',
        "  j: list<Unit> = [BOTTLE, CASE,]",
        '  k: json = [1, "a", true, null, [2.5]]',
        '  l: timestamp = "2024-01-02T03:04:05Z"',
        '  m: uuid = "123e4567-e89b-12d3-a456-426614174000"',
        '  n: bytes = "AQID"',
        "  o: int = -7",
        "  q: list<list<int>> = [[1], []]",
        "}",
      ),
    );
    const s = model.packages[0]!.decls[1]!;
    expect(s.kind === "struct" && s.fields.map((f) => f.default)).toEqual([
      "12",
      "12.50",
      "-3.5",
      2,
      3_600_000,
      "CASE",
      "BOTTLE",
      false,
      'a"bA',
      ["BOTTLE", "CASE"],
      [1, "a", true, null, [2.5]],
      "2024-01-02T03:04:05Z",
      "123e4567-e89b-12d3-a456-426614174000",
      "AQID",
      -7,
      [[1], []],
    ]);
  });

  it("rejects defaults that do not fit their type (FAN0203)", () => {
    expectDiagnostics(
      src(
        "package p",
        "enum Unit { BOTTLE, CASE }",
        "struct S {",
        "  a: int = 1.5",
        "  b: string = 3",
        "  c: bool = yes",
        "  d: Unit = PINT",
        '  e: list<int> = [1, "x"]',
        "  f: map<string, int> = []",
        '  g: uuid = "nope"',
        '  h: timestamp = "yesterday"',
        "  i: duration = -5s",
        "  n: int64 = 99999999999999999999",
        "  o: S2 = 1",
        '  q: bytes = "***"',
        "  r: int = 9007199254740993",
        "}",
        "struct S2 {}",
      ),
      [
        ["FAN0203", 4, 12],
        ["FAN0203", 5, 15],
        ["FAN0203", 6, 13],
        ["FAN0203", 7, 13],
        ["FAN0203", 8, 22],
        ["FAN0203", 9, 25],
        ["FAN0203", 10, 13],
        ["FAN0203", 11, 18],
        ["FAN0203", 12, 17],
        ["FAN0203", 13, 14],
        ["FAN0203", 14, 11],
        ["FAN0203", 15, 14],
        ["FAN0203", 16, 12],
      ],
    );
  });

  it("names the enum's members when a default is not one of them", () => {
    const r = expectDiagnostics(src("package p", "enum Unit { BOTTLE, CASE }", "struct S { u: Unit = PINT }"), [
      ["FAN0203", 3, 22],
    ]);
    expect(messageOf(r, "FAN0203")).toContain("BOTTLE, CASE");
  });

  it("rejects defaults that break the field's own constraints (FAN0213)", () => {
    expectDiagnostics(
      src(
        "package p",
        "struct S {",
        "  j: int = 0 @min(1)",
        '  k: string = "abcdef" @maxLength(3)',
        "  l: list<int> = [1, 2, 3] @maxItems(2)",
        '  m: string = "abc" @pattern("^[0-9]+$")',
        "  n: decimal = 10.5 @max(10.25)",
        "  o: duration = 1s @min(2s)",
        '  q: string = "" @minLength(1)',
        "}",
      ),
      [
        ["FAN0213", 3, 12],
        ["FAN0213", 4, 15],
        ["FAN0213", 5, 18],
        ["FAN0213", 6, 15],
        ["FAN0213", 7, 16],
        ["FAN0213", 8, 17],
        ["FAN0213", 9, 15],
      ],
    );
  });

  it("applies defaults to parameters and config entries too", () => {
    const model = expectClean(
      src(
        "package p",
        "service S {",
        "  config { tick: duration = 250ms }",
        "  rpc a(limit: int = 10 @min(1)): int",
        "}",
      ),
    );
    const s = model.packages[0]!.decls[0]!;
    expect(s.kind === "service" && [s.config[0]!.default, s.methods[0]!.params[0]!.default]).toEqual([250, 10]);
    expectDiagnostics(
      src("package p", "service S {", '  config { tick: duration = "x" }', "  rpc a(limit: int = 0 @min(1)): int", "}"),
      [
        ["FAN0203", 3, 29],
        ["FAN0213", 4, 22],
      ],
    );
  });
});
