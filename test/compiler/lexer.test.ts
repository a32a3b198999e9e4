/** The lexer: token order (keywords, literals), comments, and its diagnostics. */
import { describe, expect, it } from "vitest";
import { decodeString, lex } from "../../src/compiler/lexer.js";

const kinds = (text: string): string[] => lex("t.fan", text).tokens.map((t) => `${t.tokenType.name}:${t.image}`);

describe("lexer", () => {
  it.each([
    ["packages package", ["Identifier:packages", "Kw_package:package"]],
    ["rpcCount rpc on onX", ["Identifier:rpcCount", "Kw_rpc:rpc", "Kw_on:on", "Identifier:onX"]],
    [
      "2s 250ms 5m 1h -3s",
      [
        "DurationLiteral:2s",
        "DurationLiteral:250ms",
        "DurationLiteral:5m",
        "DurationLiteral:1h",
        "DurationLiteral:-3s",
      ],
    ],
    ["5min 2sx", ["IntLiteral:5", "Identifier:min", "IntLiteral:2", "Identifier:sx"]],
    [
      "1.5 -3 10 1e9 -2.5e-3",
      ["FloatLiteral:1.5", "IntLiteral:-3", "IntLiteral:10", "FloatLiteral:1e9", "FloatLiteral:-2.5e-3"],
    ],
    ['"a\\"b" ""', ['StringLiteral:"a\\"b"', 'StringLiteral:""']],
    [
      "@x(a.b, [1]) {}<>?:=;",
      [
        "At:@",
        "Identifier:x",
        "LParen:(",
        "Identifier:a",
        "Dot:.",
        "Identifier:b",
        "Comma:,",
        "LSquare:[",
        "IntLiteral:1",
        "RSquare:]",
        "RParen:)",
        "LCurly:{",
        "RCurly:}",
        "LAngle:<",
        "RAngle:>",
        "Question:?",
        "Colon::",
        "Equals:=",
        "Semi:;",
      ],
    ],
    ["a // line\n/* block\n */ b /// doc\n c", ["Identifier:a", "Identifier:b", "Identifier:c"]],
    ["\uFEFFx\r\ny", ["Identifier:x", "Identifier:y"]],
  ])("tokenizes %j", (text, expected) => {
    expect(kinds(text)).toEqual(expected);
  });

  it("keeps `///` doc blocks by the offset of what follows, and ignores `////` rulers", () => {
    const text = "/// One.\n///   Two.\nstruct S {}\n//// ruler\nx\n/// Loose.\n// comment\ny";
    const { docs } = lex("t.fan", text);
    expect([...docs.entries()]).toEqual([
      [text.indexOf("struct"), "One.\n  Two."],
      [text.indexOf("y"), "Loose."],
    ]);
  });

  it("takes `//` and `/* */` comments directly above a node as its doc, not trailing or detached ones", () => {
    const text = [
      "// Line one.",
      "// Line two.",
      "struct A {}",
      "/**",
      " * Block doc.",
      " *   indented",
      " */",
      "struct B {",
      "  a: int // trailing, not a doc",
      "  b: int",
      "  // detached by a blank line",
      "",
      "  c: int",
      "  /* inline */ d: int",
      "}",
    ].join("\n");
    const { docs, comments } = lex("t.fan", text);
    expect([...docs.entries()]).toEqual([
      [text.indexOf("struct A"), "Line one.\nLine two."],
      [text.indexOf("struct B"), "Block doc.\n  indented"],
      [text.indexOf("d: int"), "inline"],
    ]);
    expect(comments.map((c) => c.image)).toContain("// trailing, not a doc");
  });

  it("decodes JSON escapes", () => {
    expect(decodeString('"a\\"b\\\\c\\/d\\n\\t\\u00e9"')).toBe('a"b\\c/d\n\té');
    expect(decodeString('"open')).toBe("open");
  });

  it("reports stray characters, unterminated strings and comments, and bad escapes, with offsets", () => {
    const r = lex("t.fan", 'a # "x\\q" "open\n/* never closed');
    expect(r.diagnostics.map((d) => [d.code, d.span.start, d.span.end])).toEqual([
      ["FAN0001", 2, 3],
      ["FAN0004", 6, 8],
      ["FAN0002", 10, 15],
      ["FAN0003", 16, 18],
    ]);
  });

  it("fills end offsets on tokens (the parser's node spans need them)", () => {
    expect(lex("t.fan", "ab cde").tokens.map((t) => [t.startOffset, t.endOffset])).toEqual([
      [0, 1],
      [3, 5],
    ]);
  });
});
