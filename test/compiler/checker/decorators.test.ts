/** Decorators: known names, placement, arguments and repetition. */
import { describe, expect, it } from "vitest";
import { expectDiagnostics, messageOf, src } from "../helpers.js";

describe("decorators", () => {
  it("rejects unknown (FAN0301), misplaced (FAN0302, FAN0405), malformed (FAN0303) and repeated (FAN0304) decorators", () => {
    expectDiagnostics(
      src(
        "package p",
        "@frobnicate",
        "struct S { a: int @secret }",
        "@code(NOT_FOUND) struct T {}",
        "service Svc {",
        "  @ttl(1s) rpc a(): int",
        "  @timeout(1s) push b()",
        "  @idempotent(1) @idempotent rpc c(): int",
        '  @unique("x") rpc d(): int',
        "  @timeout(5) rpc e(): int",
        '  @deprecated("x") depends Other "*"',
        "  @full on Other.ev",
        "  @secret config { k: string @secret }",
        "}",
        "service Other { event ev() }",
        'union U { a: int @deprecated("x") }',
      ),
      [
        ["FAN0301", 2, 2],
        ["FAN0405", 3, 19],
        ["FAN0302", 4, 1],
        ["FAN0302", 6, 3],
        ["FAN0302", 7, 3],
        ["FAN0303", 8, 3],
        ["FAN0304", 8, 18],
        ["FAN0302", 9, 3],
        ["FAN0303", 10, 3],
        ["FAN0302", 11, 3],
        ["FAN0302", 12, 3],
        ["FAN0302", 13, 3],
        ["FAN0302", 16, 18],
      ],
    );
  });

  it("says where a misplaced decorator belongs", () => {
    const r = expectDiagnostics(src("package p", "service S { @ttl(1s) rpc a(): int }"), [["FAN0302", 2, 13]]);
    expect(messageOf(r, "FAN0302")).toBe("@ttl is not allowed on an rpc");
  });

  it("treats prototype property names as unknown decorators", () => {
    expectDiagnostics(src("package p", "struct S { a: int @constructor @toString() }"), [
      ["FAN0301", 2, 20],
      ["FAN0301", 2, 33],
    ]);
  });

  it("needs a string for @deprecated and records it", () => {
    expectDiagnostics(src("package p", "@deprecated struct S {}", "@deprecated(1) enum E { A }"), [
      ["FAN0303", 2, 1],
      ["FAN0303", 3, 1],
    ]);
  });
});

describe("decorators at the end of a member's line", () => {
  it("warns that they belong to the next member (FAN0507), and only then", () => {
    expectDiagnostics(
      src(
        "package p",
        "service Svc {",
        "  rpc b(): int @idempotent",
        "  rpc c(): int",
        "  @idempotent rpc d(): int",
        "  @retry(2) @idempotent",
        "  rpc e(): int",
        "  state x: int @full",
        "  rpc f(): int @timeout(1s) @idempotent // both dangle",
        "  rpc g(): int",
        "}",
      ),
      [
        ["FAN0507", 3, 16],
        ["FAN0507", 9, 16],
        ["FAN0507", 9, 29],
      ],
    );
  });
});
