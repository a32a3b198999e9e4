/**
 * Parsing one file: lex, guard the nesting depth, cut the tokens into top-level items, run the
 * Chevrotain grammar on each with error recovery (resuming after junk at the next top-level
 * keyword), and build the AST item by item so each CST is short-lived.
 * Never throws: any internal failure becomes an internal-error diagnostic.
 */
import type { IRecognitionException, IToken, TokenType } from "chevrotain";
import { tokenMatcher } from "./chevrotain.js";
import type { SourceFile, Span } from "./ast.js";
import { addFileCst, type FilePieces } from "./cst-to-ast.js";
import { type Diagnostic, diag } from "./diagnostics.js";
import { FanParser, TOP_LEVEL_STARTERS, TooManyErrors } from "./grammar.js";
import { Kw, lex, Name, P } from "./lexer.js";

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
/** How many leading characters are searched for a NUL byte that marks a binary file. */
const BINARY_SNIFF = 8000;

let shared: FanParser | undefined;
function parserInstance(): FanParser {
  shared ??= new FanParser();
  return shared;
}

/** Everything the parse of one file accumulates. */
interface FileState {
  readonly file: string;
  readonly text: string;
  readonly docs: ReadonlyMap<number, string>;
  readonly guarded: Guarded;
  readonly pieces: FilePieces;
  readonly out: Diagnostic[];
  /** Offsets of reported syntax errors (one per token). */
  readonly seen: Set<number>;
  count: number;
  stopped: boolean;
  /** Offset of the item being parsed (for an internal error). */
  where: number;
}

/** Parse one file into its AST; problems come back as diagnostics, never as exceptions. */
export function parseFile(path: string, text: string): ParseResult {
  const pieces: FilePieces = { imports: [], versions: [], decls: [] };
  const out: Diagnostic[] = [];
  if (typeof text !== "string") {
    out.push(
      diag.internalError(
        { file: path, start: 0, end: 0 },
        { detail: `the text of ${path} is a ${typeof text}, not a string` },
      ),
    );
    return { ast: toSourceFile(path, "", pieces), diagnostics: out, skipped: [] };
  }
  const nul = text.indexOf("\0");
  if (nul >= 0 && nul < BINARY_SNIFF) {
    // Like git: a NUL byte near the start means binary; lexing it would print a screen of junk.
    out.push(diag.binaryFile({ file: path, start: nul, end: nul + 1 }, { offset: nul }));
    return { ast: toSourceFile(path, text, pieces), diagnostics: out, skipped: [] };
  }
  let state: FileState | undefined;
  try {
    const lexed = lex(path, text);
    out.push(...lexed.diagnostics);
    const guarded = guardNesting(path, lexed.tokens, out);
    state = {
      file: path,
      text,
      docs: lexed.docs,
      guarded,
      pieces,
      out,
      seen: new Set(),
      count: 0,
      stopped: false,
      where: 0,
    };
    const starts = itemStarts(guarded.tokens);
    for (let i = 0; i < starts.length && !state.stopped; i++)
      parseItem(state, starts[i]!, starts[i + 1] ?? guarded.tokens.length);
    checkPackageLine(path, pieces, out);
  } catch (e) {
    const at = state?.where ?? 0;
    out.push(diag.internalError({ file: path, start: at, end: at }, { detail: describeError(e) }));
  }
  return { ast: toSourceFile(path, text, pieces), diagnostics: out, skipped: state?.guarded.quiet ?? [] };
}

function toSourceFile(path: string, text: string, p: FilePieces): SourceFile {
  const base = {
    kind: "SourceFile" as const,
    path,
    text,
    imports: p.imports,
    versions: p.versions,
    decls: p.decls,
    span: { file: path, start: 0, end: text.length },
  };
  return p.package === undefined ? base : { ...base, package: p.package };
}

/** Describe an unexpected exception in one line (no stack trace). */
export function describeError(e: unknown): string {
  if (e instanceof RangeError) return `${e.message} (input too deeply nested or too large?)`;
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

const OPENERS: readonly TokenType[] = [P.LAngle, P.LSquare, P.LParen, P.LCurly];
const CLOSERS: readonly TokenType[] = [P.RAngle, P.RSquare, P.RParen, P.RCurly];

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
    out.push(
      diag.nestingTooDeep({ file, start: t.startOffset, end: t.startOffset + t.image.length }, { limit: MAX_NESTING }),
    );
    const j = skipRegion(tokens, i);
    const resume = tokens[j];
    quiet.push([
      t.startOffset,
      resume === undefined ? Number.MAX_SAFE_INTEGER : resume.startOffset + resume.image.length,
    ]);
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

const DECL_KEYWORDS: readonly TokenType[] = [Kw.struct, Kw.enum, Kw.union, Kw.error, Kw.service];
const LINE_KEYWORDS: readonly TokenType[] = [Kw.package, Kw.import, Kw.version];
/** After these a keyword is a name (`@version`, `struct service`, `import a.error`), not a starter. */
const NAME_BEFORE: readonly TokenType[] = [P.At, P.Dot, Kw.as, Kw.package, Kw.import, ...DECL_KEYWORDS];

/**
 * Where each top-level item starts: at bracket depth 0, a `package`/`import`/`version` line, a
 * declaration keyword, or a decorator after a closed declaration body (decorators before a
 * declaration, or after its name, belong to it). Unbalanced brackets only make an item longer;
 * the grammar still sees every token once.
 */
function itemStarts(tokens: readonly IToken[]): number[] {
  const starts = [0];
  let depth = 0;
  let inDecl = false;
  let closed = false;
  let junk = false;
  let afterAt = false;
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]!;
    const t = tok.tokenType;
    const asName = i > 0 && NAME_BEFORE.includes(tokens[i - 1]!.tokenType);
    const isDecl = DECL_KEYWORDS.includes(t) && !asName;
    if (depth === 0) {
      const split =
        (LINE_KEYWORDS.includes(t) && !asName) || (t === P.At && (closed || junk)) || (isDecl && (inDecl || junk));
      if (split && i > starts[starts.length - 1]!) {
        starts.push(i);
        inDecl = closed = junk = false;
      }
      if (isDecl) inDecl = true;
      else if (!inDecl && !(t === P.At || t === P.LParen || (afterAt && tokenMatcher(tok, Name)))) junk = true;
    }
    afterAt = t === P.At;
    if (OPENERS.includes(t)) depth++;
    else if (CLOSERS.includes(t)) {
      if (depth === 1 && t === P.RCurly && inDecl) closed = true;
      depth = Math.max(0, depth - 1);
    }
  }
  return starts;
}

/** Parse tokens `[from, to)` (one top-level item, or junk), resuming after junk. */
function parseItem(s: FileState, from: number, to: number): void {
  const parser = parserInstance();
  const tokens = s.guarded.tokens;
  let at = from;
  while (at < to && !s.stopped) {
    s.where = tokens[at]!.startOffset;
    parser.text = s.text;
    parser.input = at === 0 && to === tokens.length ? tokens : tokens.slice(at, to);
    parser.errorCount = 0;
    // Some errors are duplicates or consequences of skipped input, so allow a little slack.
    parser.errorLimit = MAX_SYNTAX_ERRORS - s.count + 20;
    let aborted = false;
    try {
      addFileCst(parser.file(), s.file, s.docs, s.pieces, s.out);
    } catch (e) {
      if (!(e instanceof TooManyErrors)) throw e;
      aborted = true;
    }
    const resume = reportErrors(s, parser.errors, at, to);
    if (aborted && !s.stopped) stop(s, parser.errors[parser.errors.length - 1]);
    if (resume === undefined) return;
    at = resume;
  }
}

/** Report a parse's errors; returns where to resume when the parse stopped at junk. */
function reportErrors(
  s: FileState,
  errors: readonly IRecognitionException[],
  from: number,
  to: number,
): number | undefined {
  let resume: number | undefined;
  for (const e of errors) {
    const at = errorOffset(e, s.text);
    if (e.name === "NotAllInputParsedException") resume = nextStart(s.guarded.tokens, e.token, from, to);
    if (s.seen.has(at) || s.guarded.quiet.some(([start, end]) => at >= start && at < end)) continue;
    s.seen.add(at);
    if (++s.count > MAX_SYNTAX_ERRORS) {
      stop(s, e);
      return undefined;
    }
    const open = Number.isNaN(e.token.startOffset) ? unclosed(s.guarded.tokens) : undefined;
    if (open === undefined) s.out.push(diag.syntaxError(errorSpan(s.file, e, s.text), { detail: e.message }));
    else {
      // The end of the file is where the parse noticed; the bracket left open is what to fix.
      s.out.push(
        diag.syntaxError(
          { file: s.file, start: open.startOffset, end: open.startOffset + open.image.length },
          { detail: `${e.message}: this \`${open.image}\` is never closed` },
        ),
      );
    }
  }
  return resume;
}

/** The innermost `{`, `(` or `[` still open at the end of the tokens. */
function unclosed(tokens: readonly IToken[]): IToken | undefined {
  const stack: IToken[] = [];
  for (const t of tokens) {
    if (t.tokenType === P.LCurly || t.tokenType === P.LParen || t.tokenType === P.LSquare) stack.push(t);
    else if (t.tokenType === P.RCurly || t.tokenType === P.RParen || t.tokenType === P.RSquare) stack.pop();
  }
  return stack.at(-1);
}

function stop(s: FileState, e: IRecognitionException | undefined): void {
  s.stopped = true;
  const span = e === undefined ? { file: s.file, start: s.where, end: s.where } : errorSpan(s.file, e, s.text);
  s.out.push(diag.tooManyErrors(span, { count: MAX_SYNTAX_ERRORS }));
}

function errorOffset(e: IRecognitionException, text: string): number {
  return Number.isNaN(e.token.startOffset) ? text.length : e.token.startOffset;
}

function errorSpan(file: string, e: IRecognitionException, text: string): Span {
  const start = errorOffset(e, text);
  const len = Number.isNaN(e.token.startOffset) ? 0 : e.token.image.length;
  return { file, start, end: start + len };
}

/** After junk at `bad`, the index of the next token in `[from, to)` that can start a top-level item. */
function nextStart(tokens: readonly IToken[], bad: IToken, from: number, to: number): number {
  let i = Number.isNaN(bad.startOffset) ? to : indexOfOffset(tokens, bad.startOffset, from, to);
  i = Math.max(i + 1, from + 1);
  while (i < to && !TOP_LEVEL_STARTERS.some((t) => tokenMatcher(tokens[i]!, t))) i++;
  return i;
}

function indexOfOffset(tokens: readonly IToken[], offset: number, from: number, to: number): number {
  let lo = from;
  let hi = to - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (tokens[mid]!.startOffset < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function checkPackageLine(file: string, p: FilePieces, out: Diagnostic[]): void {
  if (p.package === undefined) {
    out.push(diag.missingPackage({ file, start: 0, end: 0 }));
    return;
  }
  const first = p.package.span.start;
  const before = [...p.imports, ...p.versions, ...p.decls].some((x) => x.span.start < first);
  if (before) out.push(diag.packageNotFirst(p.package.span));
}
