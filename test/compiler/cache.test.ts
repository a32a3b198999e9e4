/**
 * The check cache (watch mode): after any sequence of edits, a check that reuses earlier
 * results gives exactly the diagnostics and model of a fresh check.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkSources, ParseCache, type SourceInput } from "../../src/compiler/index.js";
import { src } from "./helpers.js";

const root = fileURLToPath(new URL("../../idl", import.meta.url));
const idl: SourceInput[] = readdirSync(root, { recursive: true, encoding: "utf8" })
  .filter((p) => p.endsWith(".fan"))
  .sort()
  .map((p) => ({ path: p.split("\\").join("/"), text: readFileSync(join(root, p), "utf8") }));

/** Edits that keep files parseable and change bodies or interfaces. */
const EDITS: readonly ((t: string) => string)[] = [
  (t) => t.replace("= 0", "= 1"),
  (t) => t.replace("@min(1)", "@min(2)"),
  (t) => t.replace(/struct (\w+) \{/, "struct $1 {\n  added: int"),
  (t) => t.replace(/struct (\w+)/, "struct $1Renamed"),
  (t) => t.replace(/(enum \w+ \{ )(\w+)/, "$1$2, EXTRA"),
  (t) => t.replace(/event (\w+)\(/, "rpc $1("),
  (t) => t.replace(/version "[^"]*"/, 'version "9.9.9"'),
  (t) => t.replace("^1", "^3"),
  (t) => t.replace("import retail.common", "// import retail.common"),
  (t) => t.replace(/\?: /, ": "),
  (t) => `${t}\nstruct Late${t.length} { x: Wine }\n`,
  (t) => `${t}\nservice Loop${t.length} { depends Loop${t.length} "*" }\n`,
  (t) => t.slice(0, Math.floor(t.length / 2)),
  (t) => t,
];

describe("check cache", () => {
  it("gives the same result as a fresh check after any sequence of edits", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: idl.length - 1 }), fc.nat({ max: EDITS.length - 1 })), {
          minLength: 1,
          maxLength: 6,
        }),
        (steps) => {
          const cache = new ParseCache();
          let files = idl;
          checkSources(files, { cache });
          for (const [which, edit] of steps) {
            files = files.map((f, i) => (i === which ? { path: f.path, text: EDITS[edit]!(f.text) } : f));
            const cached = checkSources(files, { cache });
            const fresh = checkSources(files);
            expect(cached.diagnostics).toEqual(fresh.diagnostics);
            expect(cached.model).toEqual(fresh.model);
          }
        },
      ),
      { numRuns: 150, seed: 42 },
    );
  }, 120_000);

  it("reuses unchanged files' models when only a body changed, and re-checks the importers when an interface changed", () => {
    const cache = new ParseCache();
    const a = { path: "a.fan", text: src("package a", "struct A { x: int = 0 }") };
    const b = { path: "b.fan", text: src("package b", "import a", "struct B { a: a.A }") };
    const first = checkSources([a, b], { cache }).model!;
    const body = checkSources([{ ...a, text: a.text.replace("= 0", "= 5") }, b], { cache }).model!;
    expect(body.packages[1]!.decls[0]).toBe(first.packages[1]!.decls[0]);
    expect(body.packages[0]!.decls[0]).not.toBe(first.packages[0]!.decls[0]);
    const renamed = checkSources([{ ...a, text: a.text.replace("struct A", "struct A2") }, b], { cache });
    expect(renamed.diagnostics.map((d) => [d.code, d.span.file])).toEqual([["FAN0101", "b.fan"]]);
  });

  it("re-checks only the files that see a changed package, and every file a @shard path reaches through", () => {
    const cache = new ParseCache();
    const a = { path: "a.fan", text: src("package a", "struct Inner { id: string }") };
    const b = { path: "b.fan", text: src("package b", "import a", "struct Outer { inner: a.Inner }") };
    const c = { path: "c.fan", text: src("package c", "import b", "service S {", "  @shard(o.inner.id)", "  rpc m(o: b.Outer): int", "}") };
    const d = { path: "d.fan", text: src("package d", "import b", "service T {", "  rpc m(o: b.Outer): int", "}") };
    const e = { path: "e.fan", text: src("package e", "struct Alone { x: int }") };
    const files = [a, b, c, d, e];
    expect(checkSources(files, { cache }).diagnostics).toEqual([]);
    const edited = files.map((f) => (f === a ? { ...a, text: a.text.replace("id: string", "key: string") } : f));
    const cached = checkSources(edited, { cache });
    // b imports a; c reaches a through its @shard path; d (no @shard) and e see nothing of a.
    expect([...cache.checks.rechecked].sort()).toEqual(["a.fan", "b.fan", "c.fan"]);
    expect(cached.diagnostics.map((x) => [x.code, x.span.file])).toEqual([["FAN0317", "c.fan"]]);
    expect(cached.diagnostics).toEqual(checkSources(edited).diagnostics);
  });
});
