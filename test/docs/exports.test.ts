/**
 * The public API exports what the docs use: every name a code block in README.md or docs/*.md
 * imports from `fan/runtime`, `fan/testing`, `fan/compiler` or `fan/browser` is exported by that entry point
 * (types by its declarations, values also at run time). ENTRIES maps each specifier to what
 * is checked; point it at the built package to check what users get.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Each public specifier and the module that implements it. */
const ENTRIES: Readonly<Record<string, string>> = {
  "fan/runtime": "src/runtime/index.ts",
  "fan/testing": "src/testing/index.ts",
  "fan/compiler": "src/compiler/index.ts",
  "fan/browser": "src/browser/index.ts",
};

interface DocImport {
  readonly file: string;
  readonly from: string;
  readonly name: string;
  /** True when only the type is imported (`import type {…}` or `type X`). */
  readonly typeOnly: boolean;
}

/** The fenced code blocks of a markdown text. */
function codeBlocks(md: string): string[] {
  return [...md.matchAll(/^```[^\n]*\n([\s\S]*?)^```/gm)].map((m) => m[1] ?? "");
}

/** Every `import { … } from "fan/…"` of a piece of code, one entry per name (`a as b` counts `a`). */
function fanImports(code: string, file: string): DocImport[] {
  const out: DocImport[] = [];
  for (const m of code.matchAll(/import\s+(type\s+)?\{([^}]*)\}\s*from\s*["'](fan\/[a-z]+)["']/g)) {
    for (const raw of (m[2] ?? "").split(",")) {
      const part = raw.trim();
      if (part === "") continue;
      const typeOnly = m[1] !== undefined || part.startsWith("type ");
      const name = part.replace(/^type\s+/, "").split(/\s+as\s+/)[0]?.trim() ?? "";
      out.push({ file, from: m[3] ?? "", name, typeOnly });
    }
  }
  return out;
}

function docImports(): DocImport[] {
  const files = ["README.md", ...readdirSync(join(repo, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
  return files.flatMap((file) => codeBlocks(readFileSync(join(repo, file), "utf8")).flatMap((c) => fanImports(c, file)));
}

/** The names (types and values) a module exports, as the TypeScript checker sees them. */
function declaredExports(): Map<string, Set<string>> {
  const roots = Object.values(ENTRIES).map((p) => join(repo, p));
  const program = ts.createProgram(roots, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    allowImportingTsExtensions: true,
    noEmit: true,
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  const out = new Map<string, Set<string>>();
  for (const [spec, path] of Object.entries(ENTRIES)) {
    const sf = program.getSourceFile(join(repo, path));
    const sym = sf === undefined ? undefined : checker.getSymbolAtLocation(sf);
    out.set(spec, new Set(sym === undefined ? [] : checker.getExportsOfModule(sym).map((s) => s.name)));
  }
  return out;
}

describe("the docs' imports", () => {
  const imports = docImports();
  const declared = declaredExports();

  it("finds the imports of the docs' code blocks", () => {
    expect(fanImports('import { a, type B, c as d } from "fan/runtime";\nimport type { E } from "fan/testing";', "x")).toEqual([
      { file: "x", from: "fan/runtime", name: "a", typeOnly: false },
      { file: "x", from: "fan/runtime", name: "B", typeOnly: true },
      { file: "x", from: "fan/runtime", name: "c", typeOnly: false },
      { file: "x", from: "fan/testing", name: "E", typeOnly: true },
    ]);
    const names = imports.map((i) => `${i.from}:${i.name}`);
    for (const n of ["fan/runtime:createApp", "fan/runtime:createDiscovery", "fan/runtime:startEventHub", "fan/testing:createTestApp"])
      expect(names).toContain(n);
  });

  it("every imported name is exported by its entry point", () => {
    expect(declared.get("fan/runtime")?.size ?? 0).toBeGreaterThan(50);
    const missing = imports
      .filter((i) => !(declared.get(i.from)?.has(i.name) ?? false))
      .map((i) => `${i.file}: ${i.name} from ${i.from}`);
    expect(missing).toEqual([]);
  });

  it("every imported value exists at run time", async () => {
    const missing: string[] = [];
    for (const i of imports.filter((x) => !x.typeOnly)) {
      const entry = ENTRIES[i.from];
      if (entry === undefined) {
        missing.push(`${i.file}: unknown entry point ${i.from}`);
        continue;
      }
      const mod = (await import(join(repo, entry))) as Record<string, unknown>;
      if (mod[i.name] === undefined) missing.push(`${i.file}: ${i.name} from ${i.from}`);
    }
    expect(missing).toEqual([]);
  });

  it("fan/runtime exports discovery, the registries, the event hub and the id helpers", async () => {
    const rt = (await import(join(repo, ENTRIES["fan/runtime"] as string))) as Record<string, unknown>;
    for (const name of [
      "createDiscovery",
      "memoryRegistry",
      "MemoryRegistry",
      "EtcdRegistry",
      "RegistryDirectory",
      "YamlConfigSource",
      "RegistryConfigSource",
      "ObjectConfigSource",
      "liveConfig",
      "campaign",
      "nextId",
      "startEventHub",
      "newTraceId",
      "newSpanId",
      "shortId",
      "instanceIdFor",
      "formatTraceparent",
      "parseTraceparent",
    ])
      expect(typeof rt[name], name).toBe("function");
  });
});
