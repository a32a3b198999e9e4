/**
 * `fanc check`: a corpus of before/after IDL pairs, one per kind of change, each checked for the
 * change it must report (and that compatible changes pass); then the command on directories
 * and on a git ref, with its exit codes and JSON.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { run as check } from "../../src/cli/check.js";
import { type ChangeKind, compareModels } from "../../src/compiler/compat.js";
import { checkSources, type ProgramModel } from "../../src/compiler/index.js";

/** A package around `body`; `version` is the service version. */
const idl = (body: string, version = "1.0.0"): string => `package shop
version "${version}"

enum Color { RED, WHITE, ROSE }
union Price { cents: int, text: string }
error Missing { id: string }
error Sold { id: string }
struct Wine {
  id: string @maxLength(40)
  color: Color
  price?: Price
  year: int = 2000 @min(1900) @max(2100)
  label?: string @pattern("^[A-Z]")
  name?: string
}
service Stock { rpc level(id: string): int }
service Ledger { rpc total(): int }

${body}
`;

const base = `@shards(16)
service Cellar {
  depends shop.Stock ">=1.0.0"
  depends soft shop.Ledger ">=1.0.0"
  config { pageSize: int = 50 }
  @route("/wine/{id}") @shard(id) @fallback @timeout(2s)
  rpc get(id: string, note?: string): Wine throws Missing
  @idempotent @auth("staff", "admin")
  rpc list(limit: int = 20 @max(100)): list<Wine>
  push restock(id: string, count: int)
  event changed(wine: Wine)
  state stock: map<string, int> @full
}`;

function model(text: string): ProgramModel {
  const r = checkSources([{ path: "shop.fan", text }]);
  if (r.model === undefined) throw new Error(JSON.stringify(r.diagnostics.map((d) => d.message)));
  return r.model;
}

/** [name, the change, the kind it must report] — applied to `base` or to the shared types. */
const corpus: [string, (s: string) => string, ChangeKind][] = [
  ["rpc removed", (s) => s.replace(/ {2}@route[^\n]*\n {2}rpc get[^\n]*\n/, ""), "removed"],
  ["parameter renamed", (s) => s.replace("note?: string", "comment?: string"), "renamed"],
  ["parameter type changed", (s) => s.replace("rpc get(id: string", "rpc get(id: int"), "type-changed"],
  ["return type changed", (s) => s.replace("): Wine throws", "): list<Wine> throws"), "type-changed"],
  ["optional parameter made required", (s) => s.replace("note?: string", "note: string"), "field-required"],
  [
    "required parameter added",
    (s) => s.replace("note?: string)", "note?: string, lang: string)"),
    "required-field-added",
  ],
  ["struct field made required", (s) => s.replace("price?: Price", "price: Price"), "field-required"],
  ["struct field removed", (s) => s.replace("  color: Color\n", ""), "removed"],
  [
    "enum value removed",
    (s) => s.replace("enum Color { RED, WHITE, ROSE }", "enum Color { RED, WHITE }"),
    "enum-value-removed",
  ],
  [
    "union member removed",
    (s) => s.replace("union Price { cents: int, text: string }", "union Price { cents: int }"),
    "union-member-removed",
  ],
  [
    "error code changed",
    (s) => s.replace("error Missing { id: string }", "@code(NOT_FOUND) error Missing { id: string }"),
    "error-code-changed",
  ],
  [
    "shard key changed",
    (s) => s.replace("@shard(id)", "@shard(note)").replace("note?: string", "note: string"),
    "shard-key-changed",
  ],
  ["@shards changed", (s) => s.replace("@shards(16)", "@shards(32)"), "shards-changed"],
  ["timeout shortened", (s) => s.replace("@timeout(2s)", "@timeout(1s)"), "timeout-shortened"],
  [
    "push made an rpc",
    (s) => s.replace("push restock(id: string, count: int)", "rpc restock(id: string, count: int): void"),
    "kind-changed",
  ],
  ["route changed", (s) => s.replace('@route("/wine/{id}")', '@route("/wines/{id}")'), "route-changed"],
  ["route verb changed", (s) => s.replace('@route("/wine/{id}")', '@route("PATCH /wine/{id}")'), "route-changed"],
  [
    "@idempotent added to a routed rpc: its route becomes a GET",
    (s) => s.replace('@route("/wine/{id}")', '@idempotent @route("/wine/{id}")'),
    "route-changed",
  ],
  ["event removed", (s) => s.replace("  event changed(wine: Wine)\n", ""), "removed"],
  ["state type changed", (s) => s.replace("map<string, int>", "map<string, int64>"), "type-changed"],
  [
    "config key without default added",
    (s) => s.replace("config { pageSize: int = 50 }", "config { pageSize: int = 50, apiKey: string }"),
    "config-required",
  ],
  ["service renamed", (s) => s.replace("service Cellar", "service WineCellar"), "renamed"],
  ["@min raised", (s) => s.replace("@min(1900)", "@min(1950)"), "constraint-tightened"],
  ["@max lowered", (s) => s.replace("@max(2100)", "@max(2030)"), "constraint-tightened"],
  ["@maxLength lowered", (s) => s.replace("@maxLength(40)", "@maxLength(20)"), "constraint-tightened"],
  ["@pattern changed", (s) => s.replace('@pattern("^[A-Z]")', '@pattern("^[A-Z][a-z]")'), "constraint-tightened"],
  ["@pattern added", (s) => s.replace("name?: string", 'name?: string @pattern("^\\\\w+$")'), "constraint-tightened"],
  [
    "a constraint on an existing field that had none",
    (s) => s.replace("name?: string", "name?: string @minLength(2)"),
    "constraint-tightened",
  ],
  ["a parameter's @max lowered", (s) => s.replace("@max(100)", "@max(50)"), "constraint-tightened"],
  ["@idempotent removed", (s) => s.replace("@idempotent @auth", "@auth"), "idempotent-removed"],
  [
    "@unique added",
    (s) => s.replace("@shards(16)\nservice Cellar", "@shards(16) @unique\nservice Cellar"),
    "unique-changed",
  ],
  ["new hard dependency", (s) => s.replace("depends soft shop.Ledger", "depends shop.Ledger"), "dependency-added"],
  [
    "dependency range tightened",
    (s) => s.replace('depends shop.Stock ">=1.0.0"', 'depends shop.Stock ">=1.2.0"'),
    "dependency-range-changed",
  ],
  ["@auth role removed", (s) => s.replace('@auth("staff", "admin")', '@auth("admin")'), "auth-tightened"],
  ["@auth added", (s) => s.replace("rpc get(", '@auth("staff")\n  rpc get('), "auth-tightened"],
  ["state @full made @delta", (s) => s.replace("int> @full", "int> @delta"), "state-mode-changed"],
  ["state made @shard", (s) => s.replace("int> @full", "int> @full @shard"), "state-sharding-changed"],
  [
    "event made @broadcast",
    (s) => s.replace("  event changed", "  @broadcast\n  event changed"),
    "event-delivery-changed",
  ],
  ["config key type changed", (s) => s.replace("pageSize: int = 50", 'pageSize: string = "50"'), "config-changed"],
  ["config key lost its default", (s) => s.replace("pageSize: int = 50", "pageSize: int"), "config-required"],
  ["@ttl added to a push", (s) => s.replace("  push restock", "  @ttl(5s)\n  push restock"), "timeout-shortened"],
  ["@fallback removed", (s) => s.replace(" @fallback", ""), "fallback-removed"],
];

/** Changes reported but not failing a service without --strict: [name, edit, kind]. */
const warnings: [string, (s: string) => string, ChangeKind][] = [
  ["a method throws a new error", (s) => s.replace("throws Missing", "throws Missing, Sold"), "error-added"],
  ["a default changed", (s) => s.replace("limit: int = 20", "limit: int = 10"), "default-changed"],
];

describe("fanc check: one before/after pair per kind of change", () => {
  const before = model(idl(base));

  for (const [name, edit, kind] of corpus) {
    it(`${name}: reported as ${kind}, and fails without a major bump`, () => {
      const text = edit(idl(base));
      expect(text, "the edit must change the IDL").not.toBe(idl(base));
      const report = compareModels(before, model(text));
      const found = report.changes.filter((c) => c.breaking && c.kind === kind);
      expect(found.length, JSON.stringify(report.changes)).toBeGreaterThan(0);
      expect(report.failed).toBe(true);
      expect(report.services.find((s) => s.service === "shop.Cellar")?.failed).toBe(true);
    });
  }

  for (const [name, edit, kind] of warnings) {
    it(`${name}: a ${kind} warning; fails only with strict`, () => {
      const text = edit(idl(base));
      expect(text, "the edit must change the IDL").not.toBe(idl(base));
      const report = compareModels(before, model(text));
      const found = report.changes.filter((c) => c.kind === kind);
      expect(found.length, JSON.stringify(report.changes)).toBeGreaterThan(0);
      expect(found.every((c) => c.severity === "warning" && !c.breaking)).toBe(true);
      expect(report.changes.filter((c) => c.breaking)).toEqual([]);
      expect(report.failed).toBe(false);
      expect(report.services.find((s) => s.service === "shop.Cellar")?.warnings.length).toBeGreaterThan(0);
      expect(compareModels(before, model(text), { strict: true }).failed).toBe(true);
    });
  }

  it("loosened constraints, a removed error, a soft dependency and a wider range are compatible", () => {
    const text = idl(
      base
        .replace("@max(100)", "@max(500)")
        .replace("throws Missing", "")
        .replace('depends shop.Stock ">=1.0.0"', 'depends shop.Stock ">=0.5.0"')
        .replace('@auth("staff", "admin")', '@auth("staff", "admin", "guest")'),
    )
      .replace("@min(1900)", "@min(1800)")
      .replace('@pattern("^[A-Z]")', "");
    const report = compareModels(before, model(text));
    expect(report.changes.filter((c) => c.breaking)).toEqual([]);
    expect(report.changes.filter((c) => c.kind === "constraint-loosened").length).toBe(3);
    expect(report.failed).toBe(false);
  });

  it("a route's verb written out as the one it had is no change: `/wine/{id}` of an rpc is POST", () => {
    const report = compareModels(before, model(idl(base.replace('@route("/wine/{id}")', '@route("POST /wine/{id}")'))));
    expect(report.changes).toEqual([]);
  });

  it("route-changed names the verbs: `POST /wine/{id} → DELETE /wine/{id}`", () => {
    const text = idl(base.replace('@route("/wine/{id}")', '@idempotent @route("DELETE /wine/{id}")'));
    const found = compareModels(before, model(text)).changes.filter((c) => c.kind === "route-changed");
    expect(found.map((c) => c.message)).toEqual(["shop.Cellar.get: @route POST /wine/{id} → DELETE /wine/{id}"]);
  });

  it("a rename is one finding: a required or optional parameter, a field, a declaration (nothing 'added' beside it)", () => {
    const renames: [string, string, string][] = [
      [
        idl(base).replace("restock(id: string, count: int)", "restock(id: string, quantity: int)"),
        "shop.Cellar.restock.count",
        "quantity",
      ],
      [idl(base).replace("note?: string", "comment?: string"), "shop.Cellar.get.note", "comment"],
      [idl(base).replace("  color: Color\n", "  colour: Color\n"), "shop.Wine.color", "colour"],
      [idl(base).replace("error Sold {", "error SoldOut {"), "shop.Sold", "shop.SoldOut"],
    ];
    for (const [text, path, to] of renames) {
      const changes = compareModels(before, model(text)).changes;
      expect(
        changes.map((c) => [c.code, c.kind, c.path]),
        path,
      ).toEqual([["FAN1002", "renamed", path]]);
      expect(changes[0]!.message).toContain(`renamed to ${to}`);
    }
  });

  it("a renamed declaration is one finding, not also a type change where it is used or an error added", () => {
    const text = idl(base)
      .replace("struct Wine {", "struct Bottle {")
      .replace(/\bWine\b/g, "Bottle")
      .replace(/\bMissing\b/g, "Absent");
    const changes = compareModels(before, model(text)).changes;
    expect(changes.map((c) => [c.kind, c.path, c.message])).toEqual([
      ["renamed", "shop.Missing", "error shop.Missing was renamed to shop.Absent"],
      ["renamed", "shop.Wine", "struct shop.Wine was renamed to shop.Bottle"],
    ]);
  });

  it("a rename is located at the old name before and at the new name after", async () => {
    const { locator } = await import("../../src/compiler/compat.js");
    const { ParseCache } = await import("../../src/compiler/index.js");
    const located = (text: string) => {
      const cache = new ParseCache();
      const r = checkSources([{ path: "shop.fan", text }], { cache });
      return { model: r.model as ProgramModel, locate: locator([cache.parse("shop.fan", text).ast]) };
    };
    const a = located(idl(base));
    const b = located(idl(base).replace("push restock(id: string, count: int)", "push restock(id: string, n: int)"));
    const [renamed] = compareModels(a.model, b.model, { locate: { before: a.locate, after: b.locate } }).changes;
    expect(renamed).toMatchObject({
      kind: "renamed",
      before: { line: 28, column: 28 },
      after: { line: 28, column: 28 },
    });
    const c = located(
      idl(base).replace("push restock(id: string, count: int)", "push restock(quantity: int, id: string)"),
    );
    const [moved] = compareModels(a.model, c.model, { locate: { before: a.locate, after: c.locate } }).changes;
    expect(moved).toMatchObject({ kind: "renamed", before: { line: 28, column: 28 }, after: { line: 28, column: 16 } });
  });

  it("error-added says what an old client sees (there is no generated error union to extend)", () => {
    const [found] = compareModels(before, model(idl(base.replace("throws Missing", "throws Missing, Sold")))).changes;
    expect(found?.message).toBe(
      "shop.Cellar.get now throws shop.Sold: clients built on the old IDL get it as a plain FanError (its status code and name, not the class); callers that handle this method's errors by class or code need a case for it",
    );
  });

  it("0.x: the major is the line, 0 included (docs/versions.md): 0.1.0 → 0.2.0 fails, 0.1.0 → 1.0.0 passes", async () => {
    const { majorRange } = await import("../../src/runtime/call/versions.js");
    const breaking = (s: string) =>
      s.replace("rpc get(id: string, note?: string)", "rpc get(id: string, note: string)");
    const at = (v: string, edit = (s: string) => s) => model(idl(edit(base), v));
    expect(
      compareModels(at("0.1.0"), at("0.2.0", breaking)).services.find((s) => s.service === "shop.Cellar"),
    ).toMatchObject({
      before: "0.1.0",
      after: "0.2.0",
      failed: true,
    });
    expect(compareModels(at("0.1.0"), at("1.0.0", breaking)).failed).toBe(false);
    // A client generated at 0.1.0 accepts every 0.x: npm's `^0.1` would not.
    expect(majorRange("0.1.0")).toBe("0.x");
  });

  it("fallback: @fallback added to a sharded method is compatible (FAN1092), listed, and passes", () => {
    const report = compareModels(model(idl(base.replace(" @fallback", ""))), before);
    expect(report.changes.map((c) => [c.code, c.kind, c.severity, c.path])).toEqual([
      ["FAN1092", "fallback-added", "compatible", "shop.Cellar.get"],
    ]);
    expect(report.failed).toBe(false);
  });

  it("every change carries its code and where it is in both versions", async () => {
    const { locator } = await import("../../src/compiler/compat.js");
    const { ParseCache } = await import("../../src/compiler/index.js");
    const located = (text: string, file: string) => {
      const cache = new ParseCache();
      const r = checkSources([{ path: "shop.fan", text }], { cache });
      return { model: r.model as ProgramModel, locate: locator([cache.parse("shop.fan", text).ast], () => file) };
    };
    const a = located(idl(base), "old.fan");
    // A line moved down, a field removed, a constraint tightened.
    const b = located(
      idl(base)
        .replace("struct Wine {", "\nstruct Wine {")
        .replace("  color: Color\n", "")
        .replace("@max(2100)", "@max(2050)"),
      "new.fan",
    );
    const report = compareModels(a.model, b.model, { locate: { before: a.locate, after: b.locate } });
    const year = report.changes.find((c) => c.kind === "constraint-tightened");
    expect(year).toMatchObject({
      code: "FAN1016",
      path: "shop.Wine.year",
      before: { file: "old.fan", line: 12, column: 3 },
      after: { file: "new.fan", line: 12, column: 3 },
    });
    const removed = report.changes.find((c) => c.kind === "removed");
    // Removed: where it was, and its enclosing declaration in the new version.
    expect(removed).toMatchObject({
      code: "FAN1001",
      before: { file: "old.fan", line: 10, column: 3 },
      after: { file: "new.fan", line: 9, column: 8 },
    });
  });

  it("the codes are stable and documented in docs/fanc-check.md and docs/diagnostics.md", async () => {
    const { CHANGE_KINDS } = await import("../../src/compiler/compat.js");
    const { readFileSync } = await import("node:fs");
    const doc = readFileSync(new URL("../../docs/fanc-check.md", import.meta.url), "utf8");
    const codes = Object.values(CHANGE_KINDS).map((k) => k.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const [kind, { code }] of Object.entries(CHANGE_KINDS))
      expect(doc, `${code} ${kind} in the docs table`).toMatch(new RegExp(`\\| ${code} \\| \`${kind}\``));
    const diagnostics = readFileSync(new URL("../../docs/diagnostics.md", import.meta.url), "utf8");
    const listed = [...diagnostics.matchAll(/^\| (FAN10\d\d) \| `([\w-]+)` \| (\w+) \|$/gm)].map((m) => m.slice(1));
    expect(listed).toEqual(Object.entries(CHANGE_KINDS).map(([kind, k]) => [k.code, kind, k.severity]));
  });

  it("the same breaking change with a major bump passes", () => {
    const text = idl(base.replace("@timeout(2s)", "@timeout(1s)"), "2.0.0");
    const report = compareModels(before, model(text));
    expect(report.changes.some((c) => c.kind === "timeout-shortened")).toBe(true);
    expect(report.failed).toBe(false);
  });

  it("compatible changes pass: optional parameter, new rpc, new enum value, longer timeout, comments", () => {
    const text = idl(
      base
        .replace("note?: string)", "note?: string, lang?: string)")
        .replace("@timeout(2s)", "@timeout(5s)")
        .replace("  push restock", "  rpc count(): int\n  // a comment\n  push restock"),
      "1.1.0",
    ).replace("ROSE }", "ROSE, SPARKLING }");
    const report = compareModels(before, model(text));
    expect(report.changes.filter((c) => c.breaking)).toEqual([]);
    expect(report.changes.filter((c) => !c.breaking).length).toBeGreaterThanOrEqual(2);
    expect(report.failed).toBe(false);
  });
});

describe("fanc check (the command)", () => {
  const dir = mkdtempSync(join(tmpdir(), "fanc-check-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const io = () => {
    const out: string[] = [];
    return { out: (t: string) => out.push(t), err: (t: string) => out.push(t), text: () => out.join("\n") };
  };
  const write = (sub: string, text: string): string => {
    mkdirSync(join(dir, sub), { recursive: true });
    writeFileSync(join(dir, sub, "shop.fan"), text);
    return join(dir, sub);
  };

  it("against a directory: lists the breaking change per service and exits 1; --json for CI", async () => {
    const old = write("old", idl(base));
    const now = write("new", idl(base.replace("@timeout(2s)", "@timeout(1s)")));
    const o = io();
    expect(await check([now, "--against", old], o)).toBe(1);
    expect(o.text()).toContain("shop.Cellar 1.0.0 → 1.0.0: FAIL");
    expect(o.text()).toContain("FAN1010 timeout-shortened");
    expect(o.text()).toContain("shop.Cellar.get: @timeout 2000 ms → 1000 ms");
    const line =
      idl(base)
        .split("\n")
        .findIndex((l) => l.includes("rpc get(")) + 1;
    expect(o.text()).toContain(`was ${join(old, "shop.fan")}:${line}:7, now ${join(now, "shop.fan")}:${line}:7`);
    const j = io();
    expect(await check([now, "--against", old, "--json"], j)).toBe(1);
    const report = JSON.parse(j.text()) as { failed: boolean; services: { service: string; failed: boolean }[] };
    expect(report.failed).toBe(true);
    expect(report.services.filter((s) => s.failed)).toEqual([
      expect.objectContaining({ service: "shop.Cellar", failed: true }),
    ]);
    const same = io();
    expect(await check([old, "--against", old], same)).toBe(0);
    expect(same.text()).toContain("no breaking changes");
  });

  it("against a git ref of the directory's repository", async () => {
    const repo = join(dir, "repo");
    const idlDir = write("repo/idl", idl(base));
    const git = (...a: string[]): string =>
      execFileSync("git", ["-C", repo, "-c", "user.name=t", "-c", "user.email=t@t", ...a], { encoding: "utf8" });
    git("init", "-q");
    git("add", ".");
    git("commit", "-qm", "v1");
    write("repo/idl", idl(base.replace("  event changed(wine: Wine)\n", ""), "1.1.0"));
    const o = io();
    expect(await check([idlDir, "--against", "HEAD"], o)).toBe(1);
    expect(o.text()).toContain("event shop.Cellar.changed was removed");
    write("repo/idl", idl(base.replace("  event changed(wine: Wine)\n", ""), "2.0.0"));
    expect(await check([idlDir, "--against", "HEAD"], io())).toBe(0);
    const bad = io();
    expect(await check([idlDir, "--against", "no-such-ref"], bad)).toBe(2);
    expect(bad.text()).toContain("--against no-such-ref: unknown revision no-such-ref");
    expect(bad.text()).not.toContain("Command failed");
  });
});
