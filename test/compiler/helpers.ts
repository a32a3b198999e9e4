/**
 * Helpers for compiler tests: check inline sources and read diagnostics as
 * `[code, line, column]` triples (1-based, as printed).
 */
import { expect } from "vitest";
import { type CheckResult, checkSources, type Diagnostic, type SourceInput } from "../../src/compiler/index.js";
import { lineColumn, lineStarts } from "../../src/compiler/diagnostics.js";

/** Join lines into one source text (line numbers in tests are then easy to read). */
export function src(...lines: string[]): string {
  return lines.join("\n");
}

/** Check one file (`main.fan`) or several (`{ path: text }`). */
export function check(source: string | Record<string, string>, strict = false): CheckResult {
  return checkSources(inputs(source), { strict });
}

/** The sources of a test as SourceInput[]. */
export function inputs(source: string | Record<string, string>): SourceInput[] {
  return typeof source === "string"
    ? [{ path: "main.fan", text: source }]
    : Object.entries(source).map(([path, text]) => ({ path, text }));
}

/** A diagnostic as the user sees its position: `[code, line, column]`, plus the file when several. */
export type At =
  | readonly [code: string, line: number, column: number]
  | readonly [code: string, line: number, column: number, file: string];

/** Every diagnostic of a check as `[code, line, column(, file)]`. */
export function positions(source: string | Record<string, string>, ds: readonly Diagnostic[]): At[] {
  const texts = new Map(inputs(source).map((s) => [s.path, s.text]));
  const multi = typeof source !== "string";
  return ds.map((d) => {
    const { line, column } = lineColumn(lineStarts(texts.get(d.span.file) ?? ""), d.span.start);
    return multi ? ([d.code, line, column, d.span.file] as const) : ([d.code, line, column] as const);
  });
}

/** Assert that checking `source` reports exactly `expected` (order as sorted by the compiler). */
export function expectDiagnostics(source: string | Record<string, string>, expected: readonly At[]): CheckResult {
  const r = check(source);
  expect(positions(source, r.diagnostics), messages(r.diagnostics)).toEqual(expected);
  return r;
}

/** Assert a clean check and return the model. */
export function expectClean(source: string | Record<string, string>): NonNullable<CheckResult["model"]> {
  const r = check(source);
  expect(r.diagnostics, messages(r.diagnostics)).toEqual([]);
  expect(r.model).toBeDefined();
  return r.model!;
}

function messages(ds: readonly Diagnostic[]): string {
  return ds.map((d) => `${d.code} ${d.message}`).join("\n");
}

/** The message of the only diagnostic with `code`. */
export function messageOf(r: CheckResult, code: string): string {
  const hits = r.diagnostics.filter((d) => d.code === code);
  expect(hits).toHaveLength(1);
  return hits[0]!.message;
}
