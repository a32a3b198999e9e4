/**
 * The did-you-mean quick fix on a route's verb (FAN0322): it replaces the verb and nothing else,
 * also when the route string has an escape, whose offsets differ from its value's.
 */
import type { Diagnostic } from "vscode-languageserver";
import { describe, expect, it } from "vitest";
import { checkSources } from "../../src/compiler/index.js";
import { quickFixes } from "../../src/lsp/code-actions.js";
import { Lines } from "../../src/lsp/positions.js";

/** The text after applying every quick fix offered for the compiler's diagnostics of `text`. */
function fixed(text: string): { titles: string[]; text: string } {
  const lines = new Lines(text);
  const ds: Diagnostic[] = checkSources([{ path: "main.fan", text }]).diagnostics.map((d) => ({
    range: lines.range(d.span),
    code: d.code,
    source: "fan",
    message: d.message,
  }));
  const actions = quickFixes("file:///main.fan", undefined, lines, ds);
  let out = text;
  for (const edit of actions.flatMap((a) => a.edit?.changes?.["file:///main.fan"] ?? []).reverse())
    out = out.slice(0, lines.offset(edit.range.start)) + edit.newText + out.slice(lines.offset(edit.range.end));
  return { titles: actions.map((a) => a.title), text: out };
}

describe("the quick fix of a route's verb", () => {
  it("replaces only the verb, with an escape later in the route or none", () => {
    for (const path of ["/items/{id}", "/it\\u0065ms/{id}", "/items/{id}\\/"]) {
      const text = `package p\nservice S { @idempotent @route("get ${path}") rpc a(id: string): int }`;
      expect(fixed(text), path).toEqual({ titles: ["Change to `GET`"], text: text.replace('"get ', '"GET ') });
    }
  });

  it("offers none when the verb itself has an escape (no span is just the verb)", () => {
    const text = 'package p\nservice S { @idempotent @route("g\\u0065t /items/{id}") rpc a(id: string): int }';
    expect(fixed(text)).toEqual({ titles: [], text });
  });
});
