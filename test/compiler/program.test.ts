/** The driver: reading a folder, the parse cache for watch mode, strict mode, input hygiene. */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkSources, ParseCache, readSources } from "../../src/compiler/index.js";
import { parseFile } from "../../src/compiler/parser.js";
import { syntheticCorpus } from "./corpus.js";
import { src } from "./helpers.js";

describe("readSources", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "fanc-read-"));
    const files: Record<string, string> = {
      "b/z.fan": "package b",
      "b/a.fan": "package b",
      "a.fan": "package a",
      "deep/er/x.fan": "package x",
      "notes.txt": "not idl",
      "x.fan.bak": "not idl",
      ".hidden/h.fan": "package hidden",
      "node_modules/m/m.fan": "package m",
    };
    for (const [p, text] of Object.entries(files)) {
      await mkdir(join(dir, p, ".."), { recursive: true });
      await writeFile(join(dir, p), text);
    }
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("reads every .fan file below the root, sorted, with / separators, skipping dot-folders and node_modules", async () => {
    const sources = await readSources(dir);
    expect(sources.map((s) => s.path)).toEqual(["a.fan", "b/a.fan", "b/z.fan", "deep/er/x.fan"]);
    expect(sources[0]!.text).toBe("package a");
  });

  it("rejects a root that does not exist", async () => {
    await expect(readSources(join(dir, "missing"))).rejects.toThrow(/ENOENT/);
  });
});

describe("ParseCache", () => {
  it("re-parses only files whose text changed and forgets removed files", () => {
    const cache = new ParseCache();
    const a = { path: "a.fan", text: src("package a", "struct A {}") };
    const b = { path: "b.fan", text: src("package b", "struct B {}") };
    const first = cache.parse(a.path, a.text);
    checkSources([a, b], { cache });
    expect(cache.size).toBe(2);
    expect(cache.parse(a.path, a.text)).toBe(first);
    const changed = { ...a, text: src("package a", "struct A2 {}") };
    const r = checkSources([changed], { cache });
    expect(cache.size).toBe(1);
    expect(cache.parse(a.path, changed.text)).not.toBe(first);
    expect(r.model!.packages.map((p) => p.decls.map((d) => d.name))).toEqual([["A2"]]);
  });

  it("gives the same diagnostics and model as an uncached check", () => {
    const corpus = syntheticCorpus(20, 3, 100);
    const cache = new ParseCache();
    checkSources(corpus, { cache });
    const edited = corpus.map((s, i) => (i === 1 ? { ...s, text: `${s.text}\nstruct Broken { a: Nope }\n` } : s));
    const cached = checkSources(edited, { cache });
    const fresh = checkSources(edited);
    expect(cached.diagnostics).toEqual(fresh.diagnostics);
    expect(cached.diagnostics.map((d) => d.code)).toEqual(["FAN0101"]);
  });
});

describe("checkSources", () => {
  it("checks the synthetic benchmark corpus clean", () => {
    const r = checkSources(syntheticCorpus(50, 10, 200));
    expect(r.diagnostics).toEqual([]);
    const services = r.model!.packages.flatMap((p) => p.decls.filter((d) => d.kind === "service"));
    expect(services).toHaveLength(50);
    expect(services.every((s) => s.kind === "service" && s.methods.length === 10)).toBe(true);
  });

  it("keeps the first of two sources with the same path", () => {
    const r = checkSources([
      { path: "a.fan", text: "package a\nstruct A {}" },
      { path: "a.fan", text: "package a\nstruct A { x: Nope }" },
    ]);
    expect(r.diagnostics).toEqual([]);
  });

  it("withholds the model on errors, and on warnings only when strict", () => {
    const warn = [{ path: "w.fan", text: "package p\nstruct bad {}" }];
    expect(checkSources(warn).model).toBeDefined();
    const strict = checkSources(warn, { strict: true });
    expect(strict.model).toBeUndefined();
    expect(strict.diagnostics.map((d) => [d.code, d.severity])).toEqual([["FAN0501", "warning"]]);
    expect(checkSources([{ path: "e.fan", text: "package p\nstruct S { a: X }" }]).model).toBeUndefined();
  });

  it("returns an empty program for no sources", () => {
    expect(checkSources([])).toEqual({ model: { packages: [] }, diagnostics: [] });
  });

  it("never lets Chevrotain types leak into the AST", () => {
    const ast = parseFile("a.fan", src("package a", "struct A { x: list<int> = [1] @maxItems(2) }")).ast;
    const seen = new Set<string>();
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v !== null && typeof v === "object") {
        expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
        for (const [k, x] of Object.entries(v)) {
          seen.add(k);
          walk(x);
        }
      }
    };
    walk(ast);
    for (const chevrotainKey of ["tokenType", "image", "children", "recoveredNode", "location"])
      expect(seen.has(chevrotainKey), chevrotainKey).toBe(false);
  });
});
