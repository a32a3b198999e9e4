/** Enums: implicit values, duplicates, empty enums, member casing. */
import { describe, expect, it } from "vitest";
import { expectClean, expectDiagnostics, src } from "../helpers.js";

describe("enums", () => {
  it("numbers members from 0, and after an explicit value from that value + 1", () => {
    const model = expectClean(
      src(
        "package p",
        "enum E { A, B = 10, C, D = -5; E }",
        "/// Doc.",
        "enum F {",
        "  /// First.",
        '  Alpha @deprecated("use Beta")',
        "  Beta",
        "}",
      ),
    );
    const [e, f] = model.packages[0]!.decls;
    expect(e!.kind === "enum" && e!.members.map((m) => [m.name, m.value])).toEqual([
      ["A", 0],
      ["B", 10],
      ["C", 11],
      ["D", -5],
      ["E", -4],
    ]);
    expect(f).toMatchObject({
      kind: "enum",
      doc: "Doc.",
      members: [
        { name: "Alpha", value: 0, doc: "First.", deprecated: "use Beta" },
        { name: "Beta", value: 1 },
      ],
    });
  });

  it("rejects duplicate values, explicit or implicit (FAN0208)", () => {
    expectDiagnostics(src("package p", "enum E { A = 1, B = 0, C, D = 5, F = 5 }"), [
      ["FAN0208", 2, 24],
      ["FAN0208", 2, 38],
    ]);
  });

  it("rejects duplicate member names (FAN0103), empty enums (FAN0207) and unsafe values (FAN0209)", () => {
    expectDiagnostics(src("package p", "enum E { A, B, A }", "enum Empty {}", "enum Big { X = 9007199254740993 }"), [
      ["FAN0103", 2, 16],
      ["FAN0207", 3, 6],
      ["FAN0209", 4, 16],
    ]);
  });

  it("accepts UPPER_CASE and PascalCase members and warns about others (FAN0503)", () => {
    const r = expectDiagnostics(src("package p", "enum E { UPPER_CASE, Pascal, camelCase, snake_case }"), [
      ["FAN0503", 2, 30],
      ["FAN0503", 2, 41],
    ]);
    expect(r.model).toBeDefined();
  });
});
