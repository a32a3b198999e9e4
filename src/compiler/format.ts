/**
 * The canonical layout of a `.fan` file (`fanc fmt`, the language server's format-document).
 *
 * Token based, so it keeps every comment and works on files with syntax errors: the tokens and
 * comments are written back in order with canonical spacing between them, two spaces of indent
 * per open bracket (one more for a `throws` line), no trailing whitespace, at most one blank line in a row (none just inside a
 * bracket), and one newline at the end. Line breaks are kept where the author put them, because
 * a newline separates members; so formatting never changes what the file means, and a check
 * after formatting (same tokens, same comments) makes sure of it.
 */
import type { IToken, TokenType } from "chevrotain";
import { tokenMatcher } from "./chevrotain.js";
import { lineColumn, lineStarts } from "./diagnostics.js";
import { BlockComment, DocComment, Kw, LineComment, lex, Name, P } from "./lexer.js";

/** The result of formatting one file. */
export type FormatResult =
  | { readonly ok: true; readonly text: string; readonly changed: boolean }
  | {
      readonly ok: false;
      readonly reason: string;
      /** Where the text stops the formatter (1-based, as diagnostics print), when it is one place. */
      readonly at?: { readonly line: number; readonly column: number };
    };

const INDENT = "  ";
const OPENERS: readonly TokenType[] = [P.LCurly, P.LParen, P.LSquare];
const CLOSERS: readonly TokenType[] = [P.RCurly, P.RParen, P.RSquare];
/** No space before these. */
const TIGHT_BEFORE: readonly TokenType[] = [P.RParen, P.RSquare, P.RAngle, P.Comma, P.Semi, P.Colon, P.Dot, P.Question];
/** No space after these. */
const TIGHT_AFTER: readonly TokenType[] = [P.LParen, P.LSquare, P.LAngle, P.Dot, P.At];

/** Format one file's text. Files the lexer cannot read (stray characters, unterminated strings) are left alone. */
export function formatSource(path: string, text: string): FormatResult {
  if (text.includes("\0")) return { ok: false, reason: "not a text file" };
  const lexed = lex(path, text);
  if (lexed.diagnostics.length > 0) {
    const d = lexed.diagnostics[0]!;
    return {
      ok: false,
      reason: `cannot be formatted until ${d.code} (${d.message}) is fixed`,
      at: lineColumn(lineStarts(text), d.span.start),
    };
  }
  const items = [...lexed.tokens, ...lexed.comments].sort((a, b) => a.startOffset - b.startOffset);
  const out = layout(text, items);
  const check = sameTokens(items, path, out);
  if (check !== undefined) return { ok: false, reason: `internal formatter error (${check}); the file was left alone` };
  return { ok: true, text: out, changed: out !== text };
}

function layout(text: string, items: readonly IToken[]): string {
  const lines: string[] = [];
  let line = "";
  let depth = 0;
  let prev: IToken | undefined;
  for (const t of items) {
    const breaks = prev === undefined ? 0 : lineBreaks(text, prev.startOffset + prev.image.length, t.startOffset);
    if (prev === undefined || breaks > 0) {
      if (prev !== undefined) {
        lines.push(line.trimEnd());
        const afterOpen = OPENERS.includes(prev.tokenType);
        const beforeClose = CLOSERS.includes(t.tokenType);
        if (breaks > 1 && !afterOpen && !beforeClose) lines.push("");
      }
      // A closer goes back one level; a `throws` line continues its rpc one level deeper.
      const shift = CLOSERS.includes(t.tokenType) ? -1 : t.tokenType === Kw.throws ? 1 : 0;
      line = INDENT.repeat(Math.max(0, depth + shift)) + image(t);
    } else {
      line += (space(prev, t) ? " " : "") + image(t);
    }
    if (OPENERS.includes(t.tokenType)) depth++;
    else if (CLOSERS.includes(t.tokenType)) depth = Math.max(0, depth - 1);
    prev = t;
  }
  if (prev !== undefined) lines.push(line.trimEnd());
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

/** Whether one space separates `a` and `b` written on the same line. */
function space(a: IToken, b: IToken): boolean {
  const at = a.tokenType;
  const bt = b.tokenType;
  if (isComment(b)) return true;
  // `GREEN /* c */,`: a block comment in a line takes the place of the token before it.
  if (isComment(a)) return at !== BlockComment || !TIGHT_BEFORE.includes(bt);
  if (TIGHT_AFTER.includes(at) || TIGHT_BEFORE.includes(bt)) return false;
  if (bt === P.LAngle || bt === P.LParen) return !(tokenMatcher(a, Name) || at === P.RAngle || at === P.RParen);
  if (at === P.LCurly) return bt !== P.RCurly;
  return true;
}

/** A token's text as written out: a line comment loses its trailing whitespace. */
function image(t: IToken): string {
  return t.tokenType === LineComment || t.tokenType === DocComment ? t.image.trimEnd() : t.image;
}

function isComment(t: IToken): boolean {
  return t.tokenType === LineComment || t.tokenType === DocComment || t.tokenType === BlockComment;
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

/** Undefined when `formatted` lexes to the same tokens and comments as `items`, else what differs. */
function sameTokens(items: readonly IToken[], path: string, formatted: string): string | undefined {
  const again = lex(path, formatted);
  if (again.diagnostics.length > 0) return `the output does not lex: ${again.diagnostics[0]!.message}`;
  const after = [...again.tokens, ...again.comments].sort((a, b) => a.startOffset - b.startOffset);
  if (after.length !== items.length) return `${items.length} tokens became ${after.length}`;
  for (let i = 0; i < items.length; i++) {
    const x = items[i]!;
    const y = after[i]!;
    if (x.tokenType !== y.tokenType || image(x) !== image(y)) return `token ${i} \`${x.image}\` became \`${y.image}\``;
  }
  return undefined;
}
