/**
 * The VS Code extension's TextMate grammar (editors/vscode/syntaxes/fan.tmLanguage.json),
 * loaded with vscode-textmate and the Oniguruma engine VS Code uses, tokenises the example IDL:
 * every line, and the scopes of the things a reader looks for.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import * as oniguruma from "vscode-oniguruma";
import * as textmate from "vscode-textmate";
import { beforeAll, describe, expect, it } from "vitest";
import { repo } from "./client.js";

let grammar: textmate.IGrammar;

beforeAll(async () => {
  const require = createRequire(import.meta.url);
  const wasm = readFileSync(join(require.resolve("vscode-oniguruma"), "../onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (sources: string[]) => new oniguruma.OnigScanner(sources),
      createOnigString: (s: string) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async () =>
      textmate.parseRawGrammar(
        readFileSync(join(repo, "editors/vscode/syntaxes/fan.tmLanguage.json"), "utf8"),
        "fan.tmLanguage.json",
      ),
  });
  const g = await registry.loadGrammar("source.fan");
  if (g === null) throw new Error("grammar did not load");
  grammar = g;
});

/** Every token of a text as [text, innermost scope]. */
function tokens(text: string): [string, string][] {
  const out: [string, string][] = [];
  let state = textmate.INITIAL;
  for (const line of text.split("\n")) {
    const r = grammar.tokenizeLine(line, state);
    for (const t of r.tokens) out.push([line.slice(t.startIndex, t.endIndex), t.scopes[t.scopes.length - 1]!]);
    state = r.ruleStack;
  }
  return out;
}

function scopeOf(toks: [string, string][], text: string): string[] {
  return toks.filter(([t]) => t.trim() === text).map(([, s]) => s);
}

describe("the TextMate grammar", () => {
  it("tokenises every example IDL file, giving each word a scope", () => {
    for (const f of [
      "idl/retail/wines.fan",
      "idl/retail/common.fan",
      "idl/integration/api.fan",
      "idl/trading/exchange.fan",
    ]) {
      const toks = tokens(readFileSync(join(repo, f), "utf8"));
      const bare = toks.filter(([t, s]) => /[A-Za-z0-9]/.test(t) && s === "source.fan");
      expect(bare, f).toEqual([]);
    }
  });

  it("scopes keywords, names, decorators, literals and comments", () => {
    const toks = tokens(readFileSync(join(repo, "idl/retail/wines.fan"), "utf8"));
    expect(scopeOf(toks, "service")).toContain("storage.type.service.fan");
    expect(scopeOf(toks, "PublicWines")).toContain("entity.name.type.fan");
    expect(scopeOf(toks, "rpc")).toContain("storage.type.member.fan");
    expect(scopeOf(toks, "get")).toContain("entity.name.function.fan");
    expect(scopeOf(toks, "route")).toContain("entity.name.function.decorator.fan");
    expect(scopeOf(toks, "string")).toContain("support.type.primitive.fan");
    expect(toks.some(([t, s]) => /^\d+(ms|s|m|h)$/.test(t) && s === "constant.numeric.duration.fan")).toBe(true);
    expect(toks.some(([t, s]) => t.startsWith("///") && s === "comment.line.documentation.fan")).toBe(true);
    expect(toks.some(([, s]) => s === "variable.parameter.route.fan")).toBe(true);
    // A route's verb, only at the start of the string and before its path.
    const route = tokens('service S { @route("DELETE /items/{id}") rpc a(id: string)  @route("/GET /x") rpc b() }');
    expect(route.filter(([, s]) => s === "keyword.other.http-verb.fan").map(([t]) => t)).toEqual(["DELETE"]);
    // Spaces only before the path, as the compiler reads a verb (a tab there is FAN0316).
    const tab = tokens('service S { @route("GET\t/x") rpc a()  @route("GET  /y") rpc b() }');
    expect(tab.filter(([, s]) => s === "keyword.other.http-verb.fan").map(([t]) => t)).toEqual(["GET"]);
    const block = tokens("/* a\n struct X */\nstruct Y {}");
    expect(block.filter(([t]) => t.includes("struct X")).map(([, s]) => s)).toEqual(["comment.block.fan"]);
    expect(scopeOf(block, "Y")).toEqual(["entity.name.type.fan"]);
  });
});
