/** `on Service.event` subscriptions and their generated handler names. */
import { describe, expect, it } from "vitest";
import { expectClean, expectDiagnostics, messageOf, src } from "../helpers.js";

describe("subscriptions", () => {
  it("resolves the publisher by any visible name and names the handler on + Event", () => {
    const model = expectClean({
      "a.fan": src(
        "package shop.wines",
        "service Wines { event wineChanged(id: string) @broadcast event cacheFlush() }",
      ),
      "b.fan": src(
        "package sync",
        "import shop.wines",
        "service Sync {",
        "  /// React.",
        "  on shop.wines.Wines.wineChanged",
        "  on wines.Wines.cacheFlush",
        "  on tick",
        "  event tick()",
        "}",
      ),
    });
    const sync = model.packages.find((p) => p.name === "sync")!.decls[0]!;
    expect(sync.kind === "service" && sync.subscriptions).toEqual([
      { service: "shop.wines.Wines", event: "wineChanged", handler: "onWineChanged", doc: "React." },
      { service: "shop.wines.Wines", event: "cacheFlush", handler: "onCacheFlush" },
      { service: "sync.Sync", event: "tick", handler: "onTick" },
    ]);
  });

  it("rejects targets that are not events (FAN0112) or not services (FAN0111, FAN0110)", () => {
    const r = expectDiagnostics(
      src(
        "package p",
        "struct S {}",
        "service Pub { rpc get(): int, state s: int @full, event ok() }",
        "service Sub {",
        "  on Pub.get",
        "  on Pub.missing",
        "  on Pub.s",
        "  on S.x",
        "  on Nope.x",
        "}",
      ),
      [
        ["FAN0112", 5, 10],
        ["FAN0112", 6, 10],
        ["FAN0112", 7, 10],
        ["FAN0111", 8, 6],
        ["FAN0110", 9, 6],
      ],
    );
    expect(r.diagnostics[0]!.message).toBe("`get` is not an event of service `p.Pub` (it is an rpc)");
  });

  it("rejects a second subscription to one event (FAN0403)", () => {
    expectDiagnostics(src("package p", "service Pub { event ev() }", "service Sub { on Pub.ev on p.Pub.ev }"), [
      ["FAN0403", 3, 28],
    ]);
  });

  it("rejects handler names that collide with a method or another subscription (FAN0115)", () => {
    const r = expectDiagnostics(
      src(
        "package p",
        "service A { event changed() }",
        "service B { event changed() }",
        "service Sub {",
        "  on A.changed",
        "  on B.changed",
        "  rpc onChanged(): int",
        "}",
      ),
      [
        ["FAN0115", 5, 6],
        ["FAN0115", 6, 6],
      ],
    );
    expect(r.diagnostics.map((d) => d.message)).toEqual([
      "subscription handler `onChanged` collides with the rpc `onChanged`",
      "subscription handler `onChanged` collides with the subscription to p.A.changed",
    ]);
    expect(
      messageOf(
        expectDiagnostics(src("package p", "service A { event x() }", "service S { on A.x push onX() }"), [
          ["FAN0115", 3, 16],
        ]),
        "FAN0115",
      ),
    ).toContain("push");
  });
});
