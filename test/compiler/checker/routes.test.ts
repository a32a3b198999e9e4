/** `@route`: path syntax, parameters, and GET routes of idempotent rpcs. */
import { describe, expect, it } from "vitest";
import { expectClean, expectDiagnostics, messageOf, src } from "../helpers.js";

describe("routes", () => {
  it("records the path and the parameters it binds", () => {
    const model = expectClean(
      src(
        "package p",
        "service S {",
        '  @route("/store/{storeId}/item/{inventoryId}") rpc get(storeId: string, inventoryId: int, extra?: string): string',
        '  @route("/flush") push flush(all: bool)',
        "}",
      ),
    );
    const s = model.packages[0]!.decls[0]!;
    expect(s.kind === "service" && s.methods.map((m) => m.route)).toEqual([
      { path: "/store/{storeId}/item/{inventoryId}", params: ["storeId", "inventoryId"] },
      { path: "/flush", params: [] },
    ]);
  });

  it("rejects unknown params (FAN0314), params missing from a GET route (FAN0315) and malformed routes (FAN0316)", () => {
    expectDiagnostics(
      src(
        "package p",
        "service S {",
        '  @route("/a/{nope}") rpc a(x: string)',
        '  @idempotent @route("/b/{x}") rpc b(x: string, y: int, z?: int)',
        '  @route("c") rpc c()',
        '  @route("/d?q=1") rpc d()',
        '  @route("/e/{1x}") rpc e()',
        '  @route("/f/{x}/{x}") rpc f(x: string)',
        '  @route("/g/{x") rpc g(x: string)',
        '  @route("/h/{x}") rpc h(x?: string)',
        '  @route("/i/{x}") rpc i(x: list<string>)',
        "  @route(1) rpc j()",
        "}",
      ),
      [
        ["FAN0314", 3, 10],
        ["FAN0315", 4, 22],
        ["FAN0316", 5, 10],
        ["FAN0316", 6, 10],
        ["FAN0316", 7, 10],
        ["FAN0316", 8, 10],
        ["FAN0316", 9, 10],
        ["FAN0316", 10, 10],
        ["FAN0316", 11, 10],
        ["FAN0303", 12, 3],
      ],
    );
  });

  it("lets optional and defaulted parameters of a GET route travel in the query string", () => {
    const model = expectClean(
      src(
        "package p",
        "struct Filter { colour?: string }",
        "service S {",
        '  @route("/store/{storeId}/wines") @idempotent rpc list(storeId: string, filter?: Filter, page: int = 0): int',
        "}",
      ),
    );
    const s = model.packages[0]!.decls.find((d) => d.kind === "service");
    expect(s?.kind === "service" && s.methods[0]?.route).toEqual({ path: "/store/{storeId}/wines", params: ["storeId"] });
  });

  it("names the missing parameter of a GET route", () => {
    const r = expectDiagnostics(
      src("package p", 'service S { @idempotent @route("/x") rpc list(storeId: string): int }'),
      [["FAN0315", 2, 32]],
    );
    expect(messageOf(r, "FAN0315")).toBe("parameter `storeId` of `list` is not bound by its GET route");
  });
});
