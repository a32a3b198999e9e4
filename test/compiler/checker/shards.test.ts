/** `@shard` key paths and the service's `@shards` count. */
import { describe, expect, it } from "vitest";
import { expectClean, expectDiagnostics, src } from "../helpers.js";

describe("shards", () => {
  it("records shard paths through struct parameters, and the shard count (default 16)", () => {
    const model = expectClean(
      src(
        "package p",
        "struct Inner { code: string, deep: Deeper }",
        "struct Deeper { id: int }",
        "enum Color { RED }",
        "@shards(8)",
        "service S {",
        "  @shard(a, w.code, w.deep.id) rpc ok(a: string, w: Inner)",
        "  @shard(c) push j(c: Color)",
        "}",
        "service T {}",
      ),
    );
    const [s, t] = model.packages[0]!.decls.slice(3);
    expect(s!.kind === "service" && [s!.shards, s!.methods.map((m) => m.shard)]).toEqual([
      8,
      [[["a"], ["w", "code"], ["w", "deep", "id"]], [["c"]]],
    ]);
    expect(t!.kind === "service" && t!.shards).toBe(16);
  });

  it("rejects paths that do not resolve (FAN0317), go through optionals (FAN0318), or are not names (FAN0303)", () => {
    expectDiagnostics(
      src(
        "package p",
        "struct Inner { code: string, maybe?: string, tags: list<string> }",
        "service S {",
        "  @shard(nope) rpc b(a: string)",
        "  @shard(a.x) rpc c(a: string)",
        "  @shard(w.missing) rpc d(w: Inner)",
        "  @shard(o) rpc e(o?: string)",
        "  @shard(w.maybe) rpc f(w: Inner)",
        "  @shard(w.tags) rpc g(w: Inner)",
        "  @shard(w) rpc h(w: Inner)",
        '  @shard("a") rpc i(a: string)',
        "  @shard() rpc k(a: string)",
        "}",
      ),
      [
        ["FAN0317", 4, 10],
        ["FAN0317", 5, 10],
        ["FAN0317", 6, 10],
        ["FAN0318", 7, 10],
        ["FAN0318", 8, 10],
        ["FAN0317", 9, 10],
        ["FAN0317", 10, 10],
        ["FAN0303", 11, 3],
        ["FAN0303", 12, 3],
      ],
    );
  });

  it("fallback: @fallback on a sharded method is recorded; without @shard it is FAN0320, with arguments FAN0303", () => {
    const model = expectClean(
      src(
        "package p",
        "service S {",
        "  @shard(a) @fallback rpc fallbackOk(a: string)",
        "  @fallback @shard(c) push fallbackPush(c: string)",
        "  @shard(a) rpc fallbackNone(a: string)",
        "}",
      ),
    );
    const s = model.packages[0]!.decls[0]!;
    expect(s.kind === "service" && s.methods.map((m) => m.shardFallback)).toEqual([true, true, undefined]);
    expectDiagnostics(
      src(
        "package p",
        "service S {",
        "  @fallback rpc fallbackBare(a: string)",
        "  @idempotent",
        "  @fallback",
        "  rpc fallbackLater(a: string)",
        "  @shard(a) @fallback(a) rpc fallbackArgs(a: string)",
        "  @fallback event fallbackEvent(a: string)",
        "}",
      ),
      [
        ["FAN0320", 3, 3],
        ["FAN0320", 5, 3],
        ["FAN0303", 7, 13],
        ["FAN0302", 8, 3],
      ],
    );
  });

  it("a path through a parameter or struct field whose type is unknown reports only the type (FAN0101), not FAN0317", () => {
    expectDiagnostics(
      src(
        "package p",
        "struct Inner { code: strin }",
        "service S {",
        "  @shard(sku) rpc a(sku: strin)",
        "  @shard(w.code) rpc b(w: Inner)",
        "  @shard(w.nope) rpc c(w: Inner)",
        "}",
      ),
      [
        ["FAN0101", 2, 22],
        ["FAN0101", 4, 26],
        ["FAN0317", 6, 10],
      ],
    );
  });

  it("rejects a shard count below one (FAN0307)", () => {
    expectDiagnostics(
      src("package p", "@shards(0) service T {}", "@shards(-3) service U {}", '@shards("x") service V {}'),
      [
        ["FAN0307", 2, 9],
        ["FAN0307", 3, 9],
        ["FAN0303", 4, 1],
      ],
    );
  });
});
