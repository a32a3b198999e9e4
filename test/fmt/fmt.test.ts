/**
 * `fanc fmt`: idempotent over every `.fan` file in the repository, never changes the compiled
 * model (also under random re-spacing, by fast-check), and `--check` reports what would change.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatSource } from "../../src/compiler/format.js";
import { checkSources, type SourceInput } from "../../src/compiler/index.js";
import { lex } from "../../src/compiler/lexer.js";
import { syntheticCorpus } from "../compiler/corpus.js";
import { repo } from "../lsp/client.js";

const files = execFileSync("git", ["ls-files", "*.fan"], { cwd: repo, encoding: "utf8" }).trim().split("\n");

function fmt(path: string, text: string): string {
  const r = formatSource(path, text);
  if (!r.ok) throw new Error(`${path}: ${r.reason}`);
  return r.text;
}

/** The compiled model and the diagnostic codes of a program (spans move when layout changes). */
function compiled(sources: readonly SourceInput[]): string {
  const r = checkSources(sources);
  return JSON.stringify({ model: r.model ?? null, codes: r.diagnostics.map((d) => `${d.code} ${d.message}`) });
}

/** Programs by folder: each folder of .fan files checked as one program. */
function programs(): Map<string, SourceInput[]> {
  const out = new Map<string, SourceInput[]>();
  for (const f of files) {
    const root = f.startsWith("idl/")
      ? "idl"
      : f.includes("/idl/")
        ? f.slice(0, f.indexOf("/idl/") + 4)
        : f.includes("/input/")
          ? f.slice(0, f.indexOf("/input/") + 6)
          : dirname(f);
    const list = out.get(root) ?? [];
    list.push({ path: f.slice(root.length + 1), text: readFileSync(join(repo, f), "utf8") });
    out.set(root, list);
  }
  return out;
}

describe("fanc fmt", () => {
  it(`is idempotent over every .fan file in the repository (${files.length} files)`, () => {
    expect(files.length).toBeGreaterThan(20);
    for (const f of files) {
      const once = fmt(f, readFileSync(join(repo, f), "utf8"));
      expect(fmt(f, once), f).toBe(once);
    }
  });

  it("finds every .fan file of the repository in canonical layout (the README's quoted IDL among them)", () => {
    const off = files.filter((f) => {
      const text = readFileSync(join(repo, f), "utf8");
      return fmt(f, text) !== text;
    });
    expect(off).toEqual([]);
  });

  it("puts no space before a `,` (or other tight token) that follows a block comment", () => {
    expect(fmt("c.fan", "package p\nenum E { RED /* c */ , GREEN /* d */ }\n")).toBe(
      "package p\nenum E { RED /* c */, GREEN /* d */ }\n",
    );
    expect(fmt("c.fan", "package p\nstruct S { a /* c */ : int }\n")).toBe("package p\nstruct S { a /* c */: int }\n");
  });

  it("never changes the compiled model of the repository's programs or the synthetic corpus", () => {
    const all = [...programs().entries(), ["synthetic", syntheticCorpus(50, 5, 100)] as const];
    for (const [root, sources] of all) {
      const formatted = sources.map((s) => ({ path: s.path, text: fmt(s.path, s.text) }));
      expect(compiled(formatted), root).toBe(compiled(sources));
    }
  });

  it("lays out any re-spacing of a file the same way, keeping its model (fast-check)", () => {
    const sources = [...programs().values()].filter((p) => p.length === 1).map((p) => p[0]!);
    const gaps = fc.array(fc.constantFrom("", " ", "  ", "\t", " \t "), { minLength: 1, maxLength: 400 });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: sources.length - 1 }),
        gaps,
        fc.array(fc.integer({ min: 2, max: 4 }), { minLength: 1, maxLength: 50 }),
        (i, spaces, blanks) => {
          const src = sources[i]!;
          const respaced = respace(src.text, spaces, blanks);
          const expected = fmt(src.path, src.text);
          expect(fmt(src.path, respaced)).toBe(expected);
          expect(compiled([{ path: src.path, text: respaced }])).toBe(compiled([src]));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("--check lists files that would change and exits 1; fmt rewrites them; then --check passes", () => {
    const dir = mkdtempSync(join(tmpdir(), "fan-fmt-"));
    cpSync(join(repo, "test/lsp/fixtures/idl"), dir, { recursive: true });
    const messy = join(dir, "shop/orders.fan");
    writeFileSync(
      messy,
      readFileSync(messy, "utf8").replace("struct Order {\n  id: string", "struct Order{\n\tid :string  "),
    );
    const fanc = (...args: string[]) =>
      spawnSync(process.execPath, [join(repo, "bin/fanc.mjs"), "fmt", ...args], { encoding: "utf8" });
    const check = fanc("--check", dir);
    expect(check.status).toBe(1);
    expect(check.stdout.trim()).toBe(messy);
    expect(check.stderr).toContain("would reformat 1 of 3 .fan files");
    expect(fanc(dir).status).toBe(0);
    expect(readFileSync(messy, "utf8")).toBe(readFileSync(join(repo, "test/lsp/fixtures/idl/shop/orders.fan"), "utf8"));
    expect(fanc("--check", dir).status).toBe(0);
    writeFileSync(join(dir, "bad.fan"), 'package x\nstruct A { a: string = "open\n}\n');
    const bad = fanc("--check", dir);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("bad.fan:2:24: cannot be formatted until FAN0002");
  });
});

/**
 * The same tokens with different horizontal whitespace (indentation, gaps, trailing spaces) and
 * runs of blank lines of other lengths; line breaks stay where they were.
 */
function respace(text: string, spaces: readonly string[], blanks: readonly number[]): string {
  const lexed = lex("x.fan", text);
  const items = [...lexed.tokens, ...lexed.comments].sort((a, b) => a.startOffset - b.startOffset);
  let out = "";
  let end = 0;
  items.forEach((t, k) => {
    const gap = text.slice(end, t.startOffset);
    const breaks = (gap.match(/\n/g) ?? []).length;
    const pad = spaces[k % spaces.length]!;
    if (breaks === 0) out += k === 0 || gap.length === 0 ? "" : pad || " ";
    else out += `${pad}${"\n".repeat(breaks >= 2 ? blanks[k % blanks.length]! : 1)}${pad}`;
    out += t.image;
    end = t.startOffset + t.image.length;
  });
  return `${out}\n`;
}
