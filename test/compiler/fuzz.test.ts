/**
 * Property: for random text and for the idl/ files mutated by deletions, insertions of random
 * tokens and truncations, checkSources returns (never throws), reports no internal error, gives
 * spans inside the file, and finishes within a time bound.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkSources, diagnosticTable, formatDiagnostics, type SourceInput } from "../../src/compiler/index.js";

const root = fileURLToPath(new URL("../../idl", import.meta.url));
const idl: SourceInput[] = readdirSync(root, { recursive: true, encoding: "utf8" })
  .filter((p) => p.endsWith(".fan"))
  .sort()
  .map((p) => ({ path: p.split("\\").join("/"), text: readFileSync(join(root, p), "utf8") }));
const codes = new Set(diagnosticTable().map((d) => d.code));
const TIME_BOUND_MS = 2_000;

const TOKENS = [
  "package",
  "import",
  "as",
  "version",
  "struct",
  "enum",
  "union",
  "error",
  "service",
  "depends",
  "soft",
  "config",
  "rpc",
  "push",
  "event",
  "state",
  "on",
  "throws",
  "{",
  "}",
  "(",
  ")",
  "<",
  ">",
  "[",
  "]",
  ",",
  ";",
  ":",
  ".",
  "?",
  "=",
  "@",
  "@route",
  "@shard",
  "@timeout(",
  "2s",
  "-1ms",
  "0",
  "3.5",
  '"x"',
  '"',
  "/*",
  "*/",
  "///",
  "//",
  "list<",
  "map<",
  "void",
  "int",
  "string",
  "Wine",
  "retail.common.Money",
  "\n",
  " ",
  "\t",
  "\u0000",
  "\u0001",
  "\uFFFF",
  "é",
];

/** One edit of a text: delete a range, insert a token, or truncate. */
const edit = fc.oneof(
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), token: fc.constantFrom(...TOKENS) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
);
type Edit = typeof edit extends fc.Arbitrary<infer T> ? T : never;

function apply(text: string, e: Edit): string {
  const at = text.length === 0 ? 0 : e.at % (text.length + 1);
  switch (e.kind) {
    case "delete":
      return text.slice(0, at) + text.slice(at + e.length);
    case "insert":
      return `${text.slice(0, at)} ${e.token} ${text.slice(at)}`;
    case "truncate":
      return text.slice(0, at);
  }
}

function checkOnce(sources: SourceInput[]): void {
  const t0 = performance.now();
  const r = checkSources(sources);
  const ms = performance.now() - t0;
  const lengths = new Map(sources.map((s) => [s.path, s.text.length]));
  for (const d of r.diagnostics) {
    expect(codes.has(d.code), d.code).toBe(true);
    expect(d.code).not.toBe("FAN0999");
    const len = lengths.get(d.span.file);
    expect(len, `span in a known file: ${d.span.file}`).toBeDefined();
    expect(
      d.span.start >= 0 && d.span.start <= d.span.end && d.span.end <= len!,
      `${d.code} ${JSON.stringify(d.span)} of ${len}`,
    ).toBe(true);
  }
  expect(r.model === undefined).toBe(r.diagnostics.some((d) => d.severity === "error"));
  formatDiagnostics(r.diagnostics, sources);
  expect(ms).toBeLessThan(TIME_BOUND_MS);
}

describe("fuzz", () => {
  it("survives mutated idl/ files", () => {
    fc.assert(
      fc.property(fc.nat({ max: idl.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 8 }), (which, edits) => {
        const target = idl[which]!;
        const text = edits.reduce(apply, target.text);
        checkOnce(idl.map((s) => (s === target ? { path: s.path, text } : s)));
      }),
      { numRuns: 300, seed: 20_241_124 },
    );
  }, 120_000);

  it("survives random text", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 2_000 }), (text) => checkOnce([{ path: "r.fan", text }])),
      { numRuns: 200, seed: 7 },
    );
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 300 }), (tokens) =>
        checkOnce([{ path: "t.fan", text: tokens.join(" ") }]),
      ),
      { numRuns: 300, seed: 11 },
    );
  }, 120_000);
});
