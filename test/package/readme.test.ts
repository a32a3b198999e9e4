/**
 * What a user reads is real. Every code block of README.md that shows code (ts, fan, json,
 * sh under a marker) is preceded by `<!-- file: path -->` and equals that file, which
 * `package.test.ts` compiles, typechecks and runs in a fresh project; the `fan` examples of
 * docs/idl.md compile; nothing a user reads points outside the repository.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { checkSources } from "../../src/compiler/index.js";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const read = (path: string): string => readFileSync(join(repo, path), "utf8");

interface Block {
  readonly lang: string;
  readonly body: string;
  readonly file: string | undefined;
  readonly line: number;
}

/** The fenced code blocks of a Markdown text, each with the `<!-- file: x -->` marker just above it. */
function blocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i] ?? "");
    if (open === null) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== "```"; i++) body.push(lines[i] ?? "");
    const marker = /^<!-- file: (\S+) -->$/.exec(lines[start - 1] ?? "");
    out.push({ lang: open[1] ?? "", body: `${body.join("\n")}\n`, file: marker?.[1], line: start + 1 });
  }
  return out;
}

describe("README.md", () => {
  const readme = blocks(read("README.md"));

  it("quotes its code from files, verbatim", () => {
    const quoted = readme.filter((b) => b.file !== undefined);
    expect(quoted.length).toBeGreaterThanOrEqual(8);
    for (const b of quoted) expect(b.body, `README.md:${b.line} quotes ${b.file}`).toBe(read(b.file ?? ""));
  });

  it("has no ts, fan or json block that is not a quoted file", () => {
    const loose = readme.filter((b) => b.file === undefined && ["ts", "fan", "json"].includes(b.lang));
    expect(loose.map((b) => `README.md:${b.line}`)).toEqual([]);
  });

  it("quotes every file of the user project that the package test copies", () => {
    const dir = join(repo, "examples/user-project");
    const files = readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name).slice(repo.length));
    const quoted = new Set(readme.map((b) => b.file));
    const leftOut = files.filter((f) => !quoted.has(f) && !/src\/(service|client)\.ts$/.test(f));
    expect(leftOut).toEqual([]);
  });
});

describe("docs/idl.md", () => {
  it("has fan examples that compile together, one file per package line", () => {
    const files: { path: string; text: string }[] = [];
    for (const b of blocks(read("docs/idl.md")).filter((x) => x.lang === "fan")) {
      const pkg = /^package ([\w.]+)/m.exec(b.body)?.[1];
      const last = files.at(-1);
      if (pkg === undefined && last !== undefined) last.text += b.body;
      else files.push({ path: `${pkg ?? "nopackage"}.${files.length}.fan`, text: b.body });
    }
    expect(files.length).toBeGreaterThanOrEqual(3);
    const { diagnostics } = checkSources(files);
    expect(diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  });
});

describe("what users read", () => {
  it("points nowhere outside the repository", () => {
    const docs = readdirSync(join(repo, "docs")).filter((f) => f.endsWith(".md"));
    for (const f of ["README.md", ...docs.map((d) => `docs/${d}`)]) {
      expect(read(f), f).not.toMatch(/\.\.\/shared|\/work\/shared/);
    }
  });
});
