/** `@auth`: on services, rpcs and pushes; string role arguments; a member's own wins. */
import { describe, expect, it } from "vitest";
import { expectClean, expectDiagnostics, messageOf, src } from "../helpers.js";

describe("@auth", () => {
  it("puts the roles on each method: the member's own, else its service's; absent without @auth", () => {
    const model = expectClean(
      src(
        "package p",
        '@auth("admin")',
        "service S {",
        "  rpc a(): int",
        "  @auth rpc b(): int",
        '  @auth("ops", "sre") push c()',
        "}",
        "service T { rpc d(): int }",
      ),
    );
    const [s, t] = model.packages[0]!.decls;
    if (s?.kind !== "service" || t?.kind !== "service") throw new Error("expected services");
    expect(s.methods.map((m) => [m.name, m.auth])).toEqual([
      ["a", ["admin"]],
      ["b", []],
      ["c", ["ops", "sre"]],
    ]);
    expect(t.methods[0]).not.toHaveProperty("auth");
  });

  it("wants string arguments, and no place but services, rpcs and pushes", () => {
    const r = expectDiagnostics(
      src("package p", "service S {", "  @auth(admin) rpc a(): int", "  @auth event e(x: int)", "}"),
      [
        ["FAN0303", 3, 3],
        ["FAN0302", 4, 3],
      ],
    );
    expect(messageOf(r, "FAN0303")).toContain("string arguments");
  });
});
