/** rpc, push, event and state members: their decorators and defaults. */
import { describe, expect, it } from "vitest";
import { expectClean, expectDiagnostics, messageOf, src } from "../helpers.js";

describe("methods", () => {
  it("fills defaults: rpc timeout 10 s, push no timeout, no retry, not idempotent", () => {
    const model = expectClean(
      src(
        "package p",
        'version "2.0.0"',
        "service S {",
        "  /// Gets.",
        "  rpc a(x: int): string",
        "  @timeout(250ms) @idempotent @retry(3)",
        '  @since("1.5.0") @deprecated("use a")',
        "  rpc b(): int",
        "  @ttl(1m) push c(y?: string)",
        "  push d()",
        '  @broadcast @since("2.0.0") event e(v: int)',
        "  state f: map<string, int> @delta",
        "  state g: int @full",
        "}",
      ),
    );
    const s = model.packages[0]!.decls[0]!;
    if (s.kind !== "service") throw new Error("expected a service");
    expect(s.methods).toEqual([
      {
        kind: "rpc",
        name: "a",
        params: [
          { name: "x", optional: false, type: { kind: "primitive", name: "int" }, constraints: {}, secret: false },
        ],
        returns: { kind: "primitive", name: "string" },
        throws: [],
        idempotent: false,
        retry: 0,
        timeoutMs: 10_000,
        doc: "Gets.",
      },
      {
        kind: "rpc",
        name: "b",
        params: [],
        returns: { kind: "primitive", name: "int" },
        throws: [],
        idempotent: true,
        retry: 3,
        timeoutMs: 250,
        since: "1.5.0",
        deprecated: "use a",
      },
      {
        kind: "push",
        name: "c",
        params: [
          { name: "y", optional: true, type: { kind: "primitive", name: "string" }, constraints: {}, secret: false },
        ],
        returns: { kind: "void" },
        throws: [],
        idempotent: false,
        retry: 0,
        ttlMs: 60_000,
      },
      { kind: "push", name: "d", params: [], returns: { kind: "void" }, throws: [], idempotent: false, retry: 0 },
    ]);
    expect(s.events).toEqual([
      {
        name: "e",
        params: [
          { name: "v", optional: false, type: { kind: "primitive", name: "int" }, constraints: {}, secret: false },
        ],
        broadcast: true,
        since: "2.0.0",
      },
    ]);
    expect(s.states).toEqual([
      {
        name: "f",
        type: { kind: "map", key: { kind: "primitive", name: "string" }, value: { kind: "primitive", name: "int" } },
        mode: "delta",
      },
      { name: "g", type: { kind: "primitive", name: "int" }, mode: "full" },
    ]);
  });

  it("rejects bad durations (FAN0306), retry without idempotent (FAN0308), bad or late @since (FAN0311, FAN0313), reserved names (FAN0114) and duplicates (FAN0103)", () => {
    expectDiagnostics(
      src(
        "package p",
        'version "1.2.0"',
        "service S {",
        "  @timeout(0ms) rpc a(): int",
        "  @ttl(-1s) push b()",
        "  @retry(2) rpc c(): int",
        '  @since("1.3.0") rpc d(): int',
        '  @since("1.x") rpc e(): int',
        "  rpc start(): int",
        "  rpc events(): int",
        "  rpc a(): int",
        "  event ev()",
        "  event ev()",
        "  state st: int @full",
        "  state st: int @full",
        "  @idempotent @retry(-1) rpc f(): int",
        "}",
      ),
      [
        ["FAN0306", 4, 12],
        ["FAN0306", 5, 8],
        ["FAN0308", 6, 3],
        ["FAN0313", 7, 10],
        ["FAN0311", 8, 10],
        ["FAN0114", 9, 7],
        ["FAN0114", 10, 7],
        ["FAN0103", 11, 7],
        ["FAN0103", 13, 9],
        ["FAN0103", 15, 9],
        ["FAN0303", 16, 15],
      ],
    );
  });

  it("explains why a method name is reserved", () => {
    const r = expectDiagnostics(src("package p", "service S { push stop() }"), [["FAN0114", 2, 18]]);
    expect(messageOf(r, "FAN0114")).toContain("lifecycle hook");
  });

  it("needs exactly one of @full or @delta on a state (FAN0310)", () => {
    expectDiagnostics(
      src("package p", "service S {", "  state a: int", "  state b: int @full @delta", "  @delta state c: int", "}"),
      [
        ["FAN0310", 3, 9],
        ["FAN0310", 4, 9],
      ],
    );
  });

  it("takes @shard without arguments on a state (FAN0321), and nowhere else on it", () => {
    expectClean(
      src(
        "package p",
        "@shards(4) service S {",
        "  state a: map<string, int> @delta @shard",
        "  @shard state b: int @full",
        "}",
      ),
    );
    expectDiagnostics(src("package p", "service S {", "  state a: map<string, int> @delta @shard(x)", "}"), [
      ["FAN0321", 3, 36],
    ]);
  });

  it("compares @since with the service's own @version over the package version", () => {
    expectClean(src("package p", 'version "1.0.0"', '@version("3.0.0") service S { @since("2.0.0") rpc a(): int }'));
    expectDiagnostics(src("package p", 'service S { @since("0.0.1") rpc a(): int }'), [["FAN0313", 2, 20]]);
  });
});
