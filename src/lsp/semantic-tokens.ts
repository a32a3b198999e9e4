/**
 * Semantic tokens: what each name is (a struct, an enum member, a method, a parameter, a
 * decorator, a package), which a TextMate grammar cannot know. Type references are coloured by
 * the kind of declaration they resolve to.
 */
import type { SemanticTokens, SemanticTokensLegend } from "vscode-languageserver";
import type * as A from "../compiler/ast.js";
import type { Analysis } from "./analysis.js";
import type { Lines } from "./positions.js";

const TYPES = ["namespace", "type", "struct", "enum", "enumMember", "class", "interface", "method", "event", "property", "parameter", "decorator"] as const;
type TokenKind = (typeof TYPES)[number];
const MODIFIERS = ["declaration", "deprecated"] as const;

/** The legend the server announces. */
export const LEGEND: SemanticTokensLegend = { tokenTypes: [...TYPES], tokenModifiers: [...MODIFIERS] };

const DECL_TOKEN: Readonly<Record<A.Decl["kind"], TokenKind>> = {
  Struct: "struct",
  Enum: "enum",
  Union: "type",
  Error: "class",
  Service: "interface",
};

interface Tok {
  readonly start: number;
  readonly end: number;
  readonly type: TokenKind;
  readonly mods: number;
}

/** The semantic tokens of one file. */
export function semanticTokens(a: Analysis, path: string, lines: Lines): SemanticTokens {
  const file = a.file(path);
  if (file === undefined) return { data: [] };
  const toks: Tok[] = [];
  const add = (s: A.Span, type: TokenKind, decl = false, deprecated = false): void => {
    toks.push({ start: s.start, end: s.end, type, mods: (decl ? 1 : 0) | (deprecated ? 2 : 0) });
  };
  const decorators = (ds: readonly A.Decorator[]): boolean => {
    for (const d of ds) add({ file: path, start: d.span.start, end: d.name.span.end }, "decorator");
    return ds.some((d) => d.name.name === "deprecated");
  };
  if (file.package !== undefined) add(file.package.name.span, "namespace", true);
  for (const d of file.decls) {
    const dep = decorators(d.decorators);
    add(d.name.span, DECL_TOKEN[d.kind], true, dep);
    const fields = (fs: readonly (A.Field | A.UnionMember)[], kind: TokenKind): void => {
      for (const f of fs) add(f.name.span, kind, true, decorators(f.decorators));
    };
    if (d.kind === "Struct" || d.kind === "Error") fields(d.fields, "property");
    else if (d.kind === "Union") fields(d.members, "property");
    else if (d.kind === "Enum") for (const m of d.members) add(m.name.span, "enumMember", true, decorators(m.decorators));
    else
      for (const m of d.members) {
        const mdep = decorators(m.decorators);
        if (m.kind === "Rpc" || m.kind === "Push") {
          add(m.name.span, "method", true, mdep);
          fields(m.params, "parameter");
        } else if (m.kind === "Event") {
          add(m.name.span, "event", true, mdep);
          fields(m.params, "parameter");
        } else if (m.kind === "State") add(m.name.span, "property", true, mdep);
        else if (m.kind === "Config") fields(m.fields, "property");
      }
  }
  for (const r of a.refsIn(path)) {
    if (r.kind === "import") {
      add(r.span, "namespace");
      continue;
    }
    if (r.kind === "event") {
      add(r.nameSpan, "event");
      continue;
    }
    const target = a.decls.get(r.target);
    if (target === undefined) continue;
    // The qualifier (`common.` in `common.Money`) is a namespace.
    if (r.span.start < r.nameSpan.start) add({ file: path, start: r.span.start, end: r.nameSpan.start - 1 }, "namespace");
    add(r.nameSpan, DECL_TOKEN[target.decl.kind], false, target.decl.decorators.some((x) => x.name.name === "deprecated"));
  }
  return { data: encode(toks, lines) };
}

function encode(toks: Tok[], lines: Lines): number[] {
  toks.sort((x, y) => x.start - y.start);
  const data: number[] = [];
  let prevLine = 0;
  let prevChar = 0;
  let lastEnd = -1;
  for (const t of toks) {
    if (t.start < lastEnd || t.end <= t.start) continue;
    const s = lines.position(t.start);
    const e = lines.position(t.end);
    if (e.line !== s.line) continue;
    data.push(s.line - prevLine, s.line === prevLine ? s.character - prevChar : s.character, e.character - s.character, TYPES.indexOf(t.type), t.mods);
    prevLine = s.line;
    prevChar = s.character;
    lastEnd = t.end;
  }
  return data;
}
