/**
 * Parsing one file: lex, guard the nesting depth, run the Chevrotain grammar with error
 * recovery (resuming after junk at the next top-level keyword), and build the AST.
 * Never throws: any internal failure becomes an internal-error diagnostic.
 */
import { type CstNode, type IRecognitionException, type IToken, tokenMatcher } from "chevrotain";
import type { SourceFile, Span } from "./ast.js";
import { addFileCst, type FilePieces, topLevelStarts } from "./cst-to-ast.js";
import { type Diagnostic, diag } from "./diagnostics.js";
import { FanParser, TOP_LEVEL_STARTERS } from "./grammar.js";
import { lex } from "./lexer.js";
import { P } from "./lexer.js";

/** The AST of one file and the problems found while reading it. */
export interface ParseResult {
  readonly ast: SourceFile;
  readonly diagnostics: readonly Diagnostic[];
  /** Offset ranges skipped as too deeply nested; later errors touching them are consequences. */
  readonly skipped: readonly (readonly [number, number])[];
}

/** How deeply brackets (`<`, `[`, `(`, `{`) may nest before the rest is skipped. */
export const MAX_NESTING = 64;
const MAX_SYNTAX_ERRORS = 100;

let shared: FanParser | undefined;
function parserInstance(): FanParser {
  shared ??= new FanParser();
  return shared;
}

/** Parse one file into its AST; problems come back as diagnostics, never as exceptions. */
export function parseFile(path: string, text: string): ParseResult {
  const pieces: FilePieces = { imports: [], versions: [], decls: [] };
  const diagnostics: Diagnostic[] = [];
  let where = 0;
  let skipped: Guarded["quiet"] = [];
  try {
    const lexed = lex(path, text);
    diagnostics.push(...lexed.diagnostics);
    const guarded = guardNesting(path, lexed.tokens, diagnostics);
    skipped = guarded.quiet;
    const roots = parseTokens(path, text, guarded, diagnostics, (at) => (where = at));
    for (const root of roots) addFileCst(root, path, lexed.docs, pieces, diagnostics);
    checkPackageLine(path, roots, pieces, diagnostics);
  } catch (e) {
    diagnostics.push(diag.internalError({ file: path, start: where, end: where }, { detail: describeError(e) }));
  }
  return { ast: toSourceFile(path, text, pieces), diagnostics, skipped };
}

function toSourceFile(path: string, text: string, p: FilePieces): SourceFile {
  const base = { kind: "SourceFile" as const, path, text, imports: p.imports, versions: p.versions, decls: p.decls, span: { file: path, start: 0, end: text.length } };
  return p.package === undefined ? base : { ...base, package: p.package };
}

/** Describe an unexpected exception in one line (no stack trace). */
export function describeError(e: unknown): string {
  if (e instanceof RangeError) return `${e.message} (input too deeply nested or too large?)`;
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

const OPENERS = [P.LAngle, P.LSquare, P.LParen, P.LCurly];
const CLOSERS = [P.RAngle, P.RSquare, P.RParen, P.RCurly];

interface Guarded {
  readonly tokens: IToken[];
  /** Offset ranges `[start, end)` whose syntax errors are consequences of skipped input. */
  readonly quiet: readonly (readonly [number, number])[];
}

/**
 * Skip any bracketed region that would nest deeper than MAX_NESTING, before Chevrotain's
 * recursive descent (and ours) could overflow the stack on it.
 */
function guardNesting(file: string, tokens: IToken[], out: Diagnostic[]): Guarded {
  let depth = 0;
  let kept: IToken[] | undefined;
  const quiet: [number, number][] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (OPENERS.includes(t.tokenType)) depth++;
    else if (CLOSERS.includes(t.tokenType)) depth = Math.max(0, depth - 1);
    if (depth <= MAX_NESTING) {
      kept?.push(t);
      continue;
    }
    kept ??= tokens.slice(0, i);
    out.push(diag.nestingTooDeep({ file, start: t.startOffset, end: t.startOffset + t.image.length }, { limit: MAX_NESTING }));
    const j = skipRegion(tokens, i);
    const resume = tokens[j];
    quiet.push([t.startOffset, resume === undefined ? Number.MAX_SAFE_INTEGER : resume.startOffset + resume.image.length]);
    depth = MAX_NESTING;
    i = j - 1;
  }
  return { tokens: kept ?? tokens, quiet };
}

/** Index of the first token after the bracket opened at `i` is closed (or the end). */
function skipRegion(tokens: readonly IToken[], i: number): number {
  let d = 0;
  for (let j = i; j < tokens.length; j++) {
    const tt = tokens[j]!.tokenType;
    if (OPENERS.includes(tt)) d++;
    else if (CLOSERS.includes(tt) && --d === 0) return j + 1;
  }
  return tokens.length;
}

function parseTokens(file: string, text: string, g: Guarded, out: Diagnostic[], progress: (at: number) => void): CstNode[] {
  const parser = parserInstance();
  const roots: CstNode[] = [];
  const seen = new Set<number>();
  let count = 0;
  let from = 0;
  while (from < g.tokens.length || roots.length === 0) {
    progress(g.tokens[from]?.startOffset ?? 0);
    parser.text = text;
    parser.input = from === 0 ? g.tokens : g.tokens.slice(from);
    roots.push(parser.file());
    let resumeAt: number | undefined;
    for (const e of parser.errors) {
      const at = errorOffset(e, text);
      if (e.name === "NotAllInputParsedException") resumeAt = nextStart(g.tokens, e.token, from);
      if (seen.has(at) || g.quiet.some(([s, end]) => at >= s && at < end)) continue;
      seen.add(at);
      if (++count > MAX_SYNTAX_ERRORS) {
        out.push(diag.tooManyErrors(errorSpan(file, e, text), { count: MAX_SYNTAX_ERRORS }));
        return roots;
      }
      out.push(diag.syntaxError(errorSpan(file, e, text), { detail: e.message }));
    }
    if (resumeAt === undefined) break;
    from = resumeAt;
  }
  return roots;
}

function errorOffset(e: IRecognitionException, text: string): number {
  return Number.isNaN(e.token.startOffset) ? text.length : e.token.startOffset;
}

function errorSpan(file: string, e: IRecognitionException, text: string): Span {
  const start = errorOffset(e, text);
  const len = Number.isNaN(e.token.startOffset) ? 0 : e.token.image.length;
  return { file, start, end: start + len };
}

/** After junk at `bad`, the index of the next token that can start a top-level item. */
function nextStart(tokens: readonly IToken[], bad: IToken, from: number): number {
  let i = Number.isNaN(bad.startOffset) ? tokens.length : indexOfOffset(tokens, bad.startOffset, from);
  i = Math.max(i + 1, from + 1);
  while (i < tokens.length && !TOP_LEVEL_STARTERS.some((t) => tokenMatcher(tokens[i]!, t))) i++;
  return i;
}

function indexOfOffset(tokens: readonly IToken[], offset: number, from: number): number {
  let lo = from;
  let hi = tokens.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (tokens[mid]!.startOffset < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function checkPackageLine(file: string, roots: readonly CstNode[], p: FilePieces, out: Diagnostic[]): void {
  if (p.package === undefined) {
    out.push(diag.missingPackage({ file, start: 0, end: 0 }));
    return;
  }
  const first = p.package.span.start;
  const before = roots.some((r) => topLevelStarts(r).other.some((o) => o < first));
  if (before) out.push(diag.packageNotFirst(p.package.span));
}
