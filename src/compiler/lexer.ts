/**
 * The fan lexer: one ordered token list for Chevrotain, plus a post-pass that turns lexing
 * problems (stray characters, unterminated strings and comments, bad escapes) into diagnostics
 * and collects doc comments by the offset of what they document: `///` lines, or else `//` and
 * `/* *\/` comments on the lines directly above (see `collectDocs`). Every comment is kept, in
 * order, for the formatter.
 */
import type { IToken, TokenType } from "chevrotain";
import { createToken, Lexer } from "./chevrotain.js";
import type { Span } from "./ast.js";
import { type Diagnostic, diag } from "./diagnostics.js";

/** Category of every token that can be a name: identifiers and all (contextual) keywords. */
export const Name = createToken({ name: "Name", pattern: Lexer.NA, label: "a name" });
/** Category of the keywords that start a service member (used to end a `throws` list). */
export const MemberKeyword = createToken({ name: "MemberKeyword", pattern: Lexer.NA });

/** Identifiers: `[A-Za-z_][A-Za-z0-9_]*`. */
export const Identifier = createToken({
  name: "Identifier",
  pattern: /[A-Za-z_][A-Za-z0-9_]*/,
  categories: [Name],
  label: "a name",
});

function keyword(word: string, member = false): TokenType {
  return createToken({
    name: `Kw_${word}`,
    pattern: word,
    // `packages` or `rpcCount` are identifiers, not a keyword followed by more letters.
    longer_alt: Identifier,
    categories: member ? [Name, MemberKeyword] : [Name],
    label: `\`${word}\``,
  });
}

/** Keywords; each is also a `Name`, because keywords are contextual. */
export const Kw = {
  package: keyword("package"),
  import: keyword("import"),
  as: keyword("as"),
  version: keyword("version"),
  struct: keyword("struct"),
  enum: keyword("enum"),
  union: keyword("union"),
  error: keyword("error"),
  service: keyword("service"),
  throws: keyword("throws"),
  soft: keyword("soft"),
  depends: keyword("depends", true),
  config: keyword("config", true),
  rpc: keyword("rpc", true),
  push: keyword("push", true),
  event: keyword("event", true),
  state: keyword("state", true),
  on: keyword("on", true),
} as const;

/** Matches `/* ... *\/`, or an unterminated one up to the end of input (reported later). */
function matchBlockComment(text: string, offset: number): RegExpExecArray | null {
  if (text.charCodeAt(offset) !== 47 || text.charCodeAt(offset + 1) !== 42) return null;
  const close = text.indexOf("*/", offset + 2);
  const end = close < 0 ? text.length : close + 2;
  return [text.slice(offset, end)] as unknown as RegExpExecArray;
}

/** Whitespace, skipped (a BOM counts as whitespace). */
export const WhiteSpace = createToken({
  name: "WhiteSpace",
  pattern: /[ \t\r\n\f\v\uFEFF]+/,
  group: Lexer.SKIPPED,
  line_breaks: true,
});
/** `/// doc` — kept in the `comments` group and attached to the next node. */
export const DocComment = createToken({ name: "DocComment", pattern: /\/\/\/(?!\/)[^\n\r]*/, group: "comments" });
/** `// comment`, kept in the `comments` group (a doc when directly above a declaration; the formatter keeps it). */
export const LineComment = createToken({ name: "LineComment", pattern: /\/\/[^\n\r]*/, group: "comments" });
/** `/* comment *\/`, kept in the `comments` group so an unterminated one can be reported. */
export const BlockComment = createToken({
  name: "BlockComment",
  pattern: { exec: matchBlockComment },
  start_chars_hint: ["/"],
  line_breaks: true,
  group: "comments",
});
/** `"..."`; the closing quote is optional so an unterminated string is one token (reported later). */
export const StringLiteral = createToken({
  name: "StringLiteral",
  pattern: /"(?:[^"\\\r\n]|\\[^\r\n])*"?/,
  label: "a string",
});
/** `250ms`, `2s`, `5m`, `1h` (a sign is allowed so the checker can reject negative durations). */
export const DurationLiteral = createToken({
  name: "DurationLiteral",
  pattern: /-?\d+(?:ms|s|m|h)(?![A-Za-z0-9_])/,
  label: "a duration",
});
/** `1.5`, `-2.0e3`, `1e9`. */
export const FloatLiteral = createToken({
  name: "FloatLiteral",
  pattern: /-?\d+(?:\.\d+(?:[eE][+-]?\d+)?|[eE][+-]?\d+)/,
  label: "a number",
});
/** `42`, `-7`. */
export const IntLiteral = createToken({ name: "IntLiteral", pattern: /-?\d+/, label: "an integer" });

const punct = (name: string, pattern: string): TokenType => createToken({ name, pattern, label: `\`${pattern}\`` });
/** Punctuation tokens. */
export const P = {
  LCurly: punct("LCurly", "{"),
  RCurly: punct("RCurly", "}"),
  LParen: punct("LParen", "("),
  RParen: punct("RParen", ")"),
  LAngle: punct("LAngle", "<"),
  RAngle: punct("RAngle", ">"),
  LSquare: punct("LSquare", "["),
  RSquare: punct("RSquare", "]"),
  Comma: punct("Comma", ","),
  Semi: punct("Semi", ";"),
  Colon: punct("Colon", ":"),
  Dot: punct("Dot", "."),
  Question: punct("Question", "?"),
  Equals: punct("Equals", "="),
  At: punct("At", "@"),
} as const;

/**
 * All tokens, in matching order. Chevrotain tries patterns in this order and takes the first
 * that matches (not the longest), so:
 * - doc comments come before line comments (`///` also matches `//`);
 * - durations come before floats, and floats before ints (`2s` and `1.5` start like an int);
 * - keywords come before `Identifier`, which would otherwise swallow them; `longer_alt` sends
 *   `packages` back to `Identifier`.
 */
export const allTokens: readonly TokenType[] = [
  WhiteSpace,
  DocComment,
  LineComment,
  BlockComment,
  StringLiteral,
  DurationLiteral,
  FloatLiteral,
  IntLiteral,
  ...Object.values(Kw),
  Identifier,
  ...Object.values(P),
  Name,
  MemberKeyword,
];

/**
 * Builds the lexer. `validate` runs Chevrotain's token checks (unreachable or conflicting
 * patterns): a test does; `fanc` skips them, as it does the parser's, for start-up time.
 */
export function createLexer(validate = false): Lexer {
  return new Lexer(allTokens as TokenType[], {
    positionTracking: "onlyOffset",
    ensureOptimizations: true,
    skipValidations: !validate,
  });
}

const lexer = createLexer();

/** What the lexer hands to the parser. */
export interface LexResult {
  readonly tokens: IToken[];
  /** Doc text keyed by the offset of the first character after the doc block. */
  readonly docs: Map<number, string>;
  /** Every comment (`///`, `//`, `/* *\/`) in text order. */
  readonly comments: readonly IToken[];
  readonly diagnostics: Diagnostic[];
}

const MAX_LEX_ERRORS = 100;

/** Tokenize one file. Never throws for any input text. */
export function lex(file: string, text: string): LexResult {
  const result = lexer.tokenize(text);
  const found: Diagnostic[] = [];
  for (const e of result.errors) {
    if (found.length > MAX_LEX_ERRORS) break;
    found.push(diag.unexpectedCharacter(span(file, e.offset, e.offset + 1), { char: showChar(text, e.offset) }));
  }
  for (const t of result.tokens) {
    // "onlyOffset" tracking (the fastest) leaves out endOffset, which CST node locations need.
    t.endOffset = t.startOffset + t.image.length - 1;
    if (t.tokenType === StringLiteral && found.length <= MAX_LEX_ERRORS) checkString(file, t, found);
  }
  const comments = result.groups.comments ?? [];
  const docs = collectDocs(file, text, comments, found);
  for (const c of comments) c.endOffset = c.startOffset + c.image.length - 1;
  return { tokens: result.tokens, docs, comments, diagnostics: capped(file, found) };
}

/** At most MAX_LEX_ERRORS diagnostics, in text order, then one "too many errors". */
function capped(file: string, found: Diagnostic[]): Diagnostic[] {
  if (found.length <= MAX_LEX_ERRORS) return found;
  const sorted = found.sort((a, b) => a.span.start - b.span.start).slice(0, MAX_LEX_ERRORS);
  const last = sorted[sorted.length - 1]!.span;
  return [...sorted, diag.tooManyErrors(span(file, last.start, last.end), { count: MAX_LEX_ERRORS })];
}

function span(file: string, start: number, end: number): Span {
  return { file, start, end };
}

function showChar(text: string, offset: number): string {
  const cp = text.codePointAt(offset) ?? 0;
  if (cp >= 0x21 && cp <= 0x7e) return `\`${String.fromCodePoint(cp)}\``;
  return `U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
}

function checkString(file: string, t: IToken, out: Diagnostic[]): void {
  const img = t.image;
  const end = t.startOffset + img.length;
  if (!isTerminated(img)) out.push(diag.unterminatedString(span(file, t.startOffset, end)));
  for (const bad of invalidEscapes(img)) {
    out.push(
      diag.invalidEscape(span(file, t.startOffset + bad.at, t.startOffset + bad.at + bad.text.length), {
        escape: `\`${bad.text}\``,
      }),
    );
  }
}

function isTerminated(img: string): boolean {
  if (img.length < 2 || !img.endsWith('"')) return false;
  let backslashes = 0;
  for (let i = img.length - 2; i > 0 && img.charCodeAt(i) === 92; i--) backslashes++;
  return backslashes % 2 === 0;
}

function invalidEscapes(img: string): { at: number; text: string }[] {
  const out: { at: number; text: string }[] = [];
  for (let i = 1; i < img.length; i++) {
    if (img.charCodeAt(i) !== 92) continue;
    const c = img[i + 1] ?? "";
    if (c === "u") {
      if (!/^[0-9a-fA-F]{4}$/.test(img.slice(i + 2, i + 6)))
        out.push({ at: i, text: img.slice(i, Math.min(i + 6, img.length)) });
      i += 5;
    } else {
      if (!'"\\/bfnrt'.includes(c) || c === "") out.push({ at: i, text: `\\${c}` });
      i++;
    }
  }
  return out;
}

const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};

/** Decode a string token's image (JSON escapes); invalid escapes were reported by the lexer. */
export function decodeString(img: string): string {
  const body = isTerminated(img) ? img.slice(1, -1) : img.slice(1);
  if (!body.includes("\\")) return body;
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (ch !== "\\") {
      out += ch;
      continue;
    }
    const c = body[i + 1] ?? "";
    const hex = body.slice(i + 2, i + 6);
    if (c === "u" && /^[0-9a-fA-F]{4}$/.test(hex)) {
      out += String.fromCharCode(Number.parseInt(hex, 16));
      i += 5;
    } else {
      out += ESCAPES[c] ?? c;
      i++;
    }
  }
  return out;
}

/**
 * Doc text by the offset of what it documents. A run of comments separated only by whitespace
 * documents the next token: its `///` lines when it has any (blank lines allowed, other comments
 * in the run ignored);
 * otherwise, when the run starts its own line and no blank line separates it from the token or
 * its comments from each other, the text of its `//` and `/* *\/` comments (markers, a
 * leading ` * ` and one leading space removed; ruler lines dropped). A comment at the end of a code line starts no doc.
 */
function collectDocs(file: string, text: string, comments: readonly IToken[], out: Diagnostic[]): Map<number, string> {
  const docs = new Map<number, string>();
  let run: IToken[] = [];
  for (let i = 0; i < comments.length; i++) {
    const c = comments[i]!;
    const end = c.startOffset + c.image.length;
    if (c.tokenType === BlockComment && (c.image.length < 4 || !c.image.endsWith("*/")))
      out.push(diag.unterminatedComment(span(file, c.startOffset, c.startOffset + 2)));
    run.push(c);
    const next = skipSpace(text, end);
    if (comments[i + 1]?.startOffset === next) continue;
    const doc = docOf(text, run, next);
    if (doc !== undefined && next < text.length) docs.set(next, doc);
    run = [];
  }
  return docs;
}

function docOf(text: string, run: readonly IToken[], next: number): string | undefined {
  const triple = run.filter((c) => c.tokenType === DocComment);
  if (triple.length > 0) return triple.map((c) => c.image.slice(3).replace(/^ /, "").trimEnd()).join("\n");
  const first = run[0]!;
  if (!startsLine(text, first.startOffset)) return undefined;
  for (let i = 0; i < run.length; i++) {
    const c = run[i]!;
    const to = i + 1 < run.length ? run[i + 1]!.startOffset : next;
    if (lineBreaks(text, c.startOffset + c.image.length, to) > 1) return undefined;
  }
  const lines: string[] = [];
  for (const c of run) {
    if (c.tokenType !== LineComment) lines.push(...blockLines(c.image));
    else if (!RULER.test(c.image)) lines.push(c.image.slice(2).replace(/^ /, "").trimEnd());
  }
  while (lines.length > 0 && lines[0] === "") lines.shift();
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines.length === 0 ? undefined : lines.join("\n");
}

/** A line comment that is only a ruler (`////`, `// ----`, `// ====`): no doc text. */
const RULER = /^\/\/\/\/|^\/\/[\s/*=#~-]*$/;

/** The lines of a `/* *\/` comment without its markers and each line's leading ` * `. */
function blockLines(img: string): string[] {
  const body = img.endsWith("*/") && img.length >= 4 ? img.slice(2, -2) : img.slice(2);
  const raw = body.replace(/^\*+/, "").split(/\r\n|\r|\n/);
  const starred = raw.slice(1).every((l) => l.trim() === "" || /^\s*\*/.test(l));
  if (starred) return raw.map((l, i) => (i === 0 ? l.trim() : l.replace(/^\s*\* ?/, "").trimEnd()));
  // No ` * ` prefixes: drop the continuation lines' common indentation.
  const indents = raw
    .slice(1)
    .filter((l) => l.trim() !== "")
    .map((l) => l.length - l.trimStart().length);
  const cut = indents.length === 0 ? 0 : Math.min(...indents);
  return raw.map((l, i) => (i === 0 ? l.trim() : l.slice(cut).trimEnd()));
}

/** True when only spaces or tabs come before `offset` on its line. */
function startsLine(text: string, offset: number): boolean {
  for (let i = offset - 1; i >= 0; i--) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13) return true;
    if (c !== 32 && c !== 9 && c !== 0xfeff) return false;
  }
  return true;
}

/** How many line breaks lie in `text[from, to)` (`\r\n` counts once). */
function lineBreaks(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) n++;
    else if (c === 13 && text.charCodeAt(i + 1) !== 10) n++;
  }
  return n;
}

function skipSpace(text: string, from: number): number {
  let i = from;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10 || c === 13 || c === 12 || c === 11) i++;
    else break;
  }
  return i;
}
