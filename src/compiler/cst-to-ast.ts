/**
 * Turns Chevrotain's CST into the AST of `ast.ts`. Partial nodes from error recovery are
 * tolerated: a node missing a part it cannot live without (a name, a type) is dropped, since
 * the parser already reported why.
 */
import type { CstElement, CstNode, IToken } from "chevrotain";
import type * as A from "./ast.js";
import { type Diagnostic, diag } from "./diagnostics.js";
import { durationLiteralMs } from "../util/duration.js";
import { decodeString } from "./lexer.js";

type Children = Record<string, CstElement[] | undefined>;

/** State shared while building one file. */
interface Ctx {
  readonly file: string;
  readonly docs: ReadonlyMap<number, string>;
  readonly diagnostics: Diagnostic[];
}

function isNode(e: CstElement | undefined): e is CstNode {
  return e !== undefined && "children" in e;
}

function tok(n: CstNode, key: string): IToken | undefined {
  const t = (n.children as Children)[key]?.[0];
  if (t === undefined || isNode(t) || t.isInsertedInRecovery === true || Number.isNaN(t.startOffset)) return undefined;
  return t;
}

function toks(n: CstNode, key: string): IToken[] {
  return ((n.children as Children)[key] ?? []).filter(
    (t): t is IToken => !isNode(t) && t.isInsertedInRecovery !== true && !Number.isNaN(t.startOffset),
  );
}

function kids(n: CstNode, key: string): CstNode[] {
  return ((n.children as Children)[key] ?? []).filter(isNode);
}

function kid(n: CstNode, key: string): CstNode | undefined {
  return kids(n, key)[0];
}

function nodeSpan(c: Ctx, n: CstNode): A.Span {
  const start = n.location?.startOffset ?? Number.NaN;
  const end = n.location?.endOffset ?? Number.NaN;
  if (Number.isNaN(start)) return { file: c.file, start: 0, end: 0 };
  return { file: c.file, start, end: Number.isNaN(end) ? start : end + 1 };
}

function tokSpan(c: Ctx, t: IToken): A.Span {
  return { file: c.file, start: t.startOffset, end: t.startOffset + t.image.length };
}

function withDoc<T extends object>(c: Ctx, start: number, node: T): T {
  const doc = c.docs.get(start);
  return doc === undefined ? node : { ...node, doc };
}

function ident(c: Ctx, t: IToken | undefined): A.Ident | undefined {
  return t === undefined ? undefined : { kind: "Ident", name: t.image, span: tokSpan(c, t) };
}

function qualifiedName(c: Ctx, n: CstNode | undefined): A.QualifiedName | undefined {
  if (n === undefined) return undefined;
  const parts = toks(n, "part").map((t) => ident(c, t)!);
  if (parts.length === 0) return undefined;
  return {
    kind: "QualifiedName",
    parts,
    span: { file: c.file, start: parts[0]!.span.start, end: parts[parts.length - 1]!.span.end },
  };
}

function expr(c: Ctx, n: CstNode | undefined): A.Expr | undefined {
  if (n === undefined) return undefined;
  const str = tok(n, "string");
  if (str !== undefined) return { kind: "StringLit", value: decodeString(str.image), span: tokSpan(c, str) };
  const dur = tok(n, "duration");
  if (dur !== undefined)
    return { kind: "DurationLit", ms: durationLiteralMs(dur.image)!, text: dur.image, span: tokSpan(c, dur) };
  const fl = tok(n, "float");
  if (fl !== undefined) return { kind: "FloatLit", text: fl.image, span: tokSpan(c, fl) };
  const int = tok(n, "int");
  if (int !== undefined) return { kind: "IntLit", text: int.image, span: tokSpan(c, int) };
  const list = kid(n, "listLit");
  if (list !== undefined) return { kind: "ListLit", items: exprs(c, kids(list, "expr")), span: nodeSpan(c, list) };
  const name = qualifiedName(c, kid(n, "qualifiedName"));
  if (name !== undefined) return { kind: "NameExpr", name, span: name.span };
  return undefined;
}

function exprs(c: Ctx, ns: readonly CstNode[]): A.Expr[] {
  return collect(ns, (n) => expr(c, n));
}

function decorator(c: Ctx, n: CstNode): A.Decorator | undefined {
  const name = ident(c, tok(n, "name"));
  if (name === undefined) return undefined;
  const args = tok(n, "open") === undefined ? undefined : exprs(c, kids(n, "expr"));
  return { kind: "Decorator", name, args, span: nodeSpan(c, n) };
}

function decorators(c: Ctx, n: CstNode): A.Decorator[] {
  return collect(kids(n, "decorator"), (d) => decorator(c, d));
}

function typeRef(c: Ctx, n: CstNode | undefined): A.TypeRef | undefined {
  if (n === undefined) return undefined;
  const name = qualifiedName(c, kid(n, "qualifiedName"));
  if (name === undefined) return undefined;
  const args = collect(kids(n, "typeRef"), (a) => typeRef(c, a));
  return { kind: "TypeRef", name, args, span: nodeSpan(c, n) };
}

function field(c: Ctx, n: CstNode): A.Field | undefined {
  const name = ident(c, tok(n, "name"));
  const type = typeRef(c, kid(n, "typeRef"));
  if (name === undefined || type === undefined) return undefined;
  const span = nodeSpan(c, n);
  const dflt = expr(c, kid(n, "expr"));
  const base = {
    kind: "Field" as const,
    name,
    optional: tok(n, "optional") !== undefined,
    type,
    decorators: decorators(c, n),
    span,
  };
  return withDoc(c, span.start, dflt === undefined ? base : { ...base, default: dflt });
}

function fields(c: Ctx, n: CstNode | undefined): A.Field[] {
  return n === undefined ? [] : collect(kids(n, "field"), (f) => field(c, f));
}

function enumMember(c: Ctx, n: CstNode): A.EnumMember | undefined {
  const name = ident(c, tok(n, "name"));
  if (name === undefined) return undefined;
  const span = nodeSpan(c, n);
  const v = tok(n, "value");
  const base = { kind: "EnumMember" as const, name, decorators: decorators(c, n), span };
  return withDoc(
    c,
    span.start,
    v === undefined ? base : { ...base, value: { kind: "IntLit" as const, text: v.image, span: tokSpan(c, v) } },
  );
}

function unionMember(c: Ctx, n: CstNode): A.UnionMember | undefined {
  const name = ident(c, tok(n, "name"));
  const type = typeRef(c, kid(n, "typeRef"));
  if (name === undefined || type === undefined) return undefined;
  const span = nodeSpan(c, n);
  const member: A.UnionMember = { kind: "UnionMember", name, type, decorators: decorators(c, n), span };
  return withDoc(c, span.start, member);
}

function collect<T>(ns: readonly CstNode[], f: (n: CstNode) => T | undefined): T[] {
  const out: T[] = [];
  for (const n of ns) {
    const v = f(n);
    if (v !== undefined) out.push(v);
  }
  return out;
}

function declaration(c: Ctx, n: CstNode): A.Decl | undefined {
  const lead = decorators(c, n);
  const span = nodeSpan(c, n);
  const inner =
    kid(n, "structDecl") ?? kid(n, "enumDecl") ?? kid(n, "unionDecl") ?? kid(n, "errorDecl") ?? kid(n, "serviceDecl");
  if (inner === undefined) return undefined;
  const name = ident(c, tok(inner, "name"));
  if (name === undefined) return undefined;
  const decs = [...lead, ...decorators(c, inner)];
  const head = { name, decorators: decs, span };
  let decl: A.Decl;
  switch (inner.name) {
    case "structDecl":
      decl = { kind: "Struct", ...head, fields: collect(kids(inner, "field"), (f) => field(c, f)) };
      break;
    case "errorDecl":
      decl = { kind: "Error", ...head, fields: collect(kids(inner, "field"), (f) => field(c, f)) };
      break;
    case "enumDecl":
      decl = { kind: "Enum", ...head, members: collect(kids(inner, "enumMember"), (m) => enumMember(c, m)) };
      break;
    case "unionDecl":
      decl = { kind: "Union", ...head, members: collect(kids(inner, "unionMember"), (m) => unionMember(c, m)) };
      break;
    default:
      decl = { kind: "Service", ...head, members: collect(kids(inner, "serviceMember"), (m) => serviceMember(c, m)) };
  }
  return withDoc(c, span.start, decl);
}

function serviceMember(c: Ctx, n: CstNode): A.ServiceMember | undefined {
  const lead = decorators(c, n);
  const span = nodeSpan(c, n);
  const m = memberBody(c, n, lead, span);
  return m === undefined ? undefined : withDoc(c, span.start, m);
}

function memberBody(c: Ctx, n: CstNode, decs: A.Decorator[], span: A.Span): A.ServiceMember | undefined {
  const dep = kid(n, "dependsMember");
  if (dep !== undefined) {
    const service = qualifiedName(c, kid(dep, "qualifiedName"));
    const range = tok(dep, "range");
    if (service === undefined || range === undefined) return undefined;
    const rangeLit: A.StringLit = { kind: "StringLit", value: decodeString(range.image), span: tokSpan(c, range) };
    return { kind: "Depends", soft: tok(dep, "soft") !== undefined, service, range: rangeLit, decorators: decs, span };
  }
  const cfg = kid(n, "configMember");
  if (cfg !== undefined) return { kind: "Config", fields: fields(c, cfg), decorators: decs, span };
  const on = kid(n, "onMember");
  if (on !== undefined) {
    const target = qualifiedName(c, kid(on, "qualifiedName"));
    return target === undefined ? undefined : { kind: "On", target, decorators: decs, span };
  }
  const state = kid(n, "stateMember");
  if (state !== undefined) {
    const name = ident(c, tok(state, "name"));
    const type = typeRef(c, kid(state, "typeRef"));
    if (name === undefined || type === undefined) return undefined;
    return { kind: "State", name, type, decorators: [...decs, ...decorators(c, state)], span };
  }
  return methodLike(c, n, decs, span);
}

function methodLike(c: Ctx, n: CstNode, decs: A.Decorator[], span: A.Span): A.ServiceMember | undefined {
  const rpc = kid(n, "rpcMember");
  const push = kid(n, "pushMember");
  const ev = kid(n, "eventMember");
  const inner = rpc ?? push ?? ev;
  if (inner === undefined) return undefined;
  const name = ident(c, tok(inner, "name"));
  const paramsNode = kid(inner, "params");
  if (name === undefined || paramsNode === undefined) return undefined;
  const params = fields(c, paramsNode);
  if (push !== undefined) return { kind: "Push", name, params, decorators: decs, span };
  if (ev !== undefined) return { kind: "Event", name, params, decorators: decs, span };
  const returns = typeRef(c, kid(inner, "typeRef")) ?? voidType(c, paramsNode);
  const throws = collect(kids(inner, "qualifiedName"), (q) => qualifiedName(c, q));
  return { kind: "Rpc", name, params, returns, throws, decorators: decs, span };
}

/** `rpc ping()` without a return type returns `void`; the synthetic type sits after the `)`. */
function voidType(c: Ctx, params: CstNode): A.TypeRef {
  const at = nodeSpan(c, params).end;
  const span = { file: c.file, start: at, end: at };
  return {
    kind: "TypeRef",
    name: { kind: "QualifiedName", parts: [{ kind: "Ident", name: "void", span }], span },
    args: [],
    span,
  };
}

/** The pieces of a file found in one CST (a file may be parsed in several pieces after junk). */
export interface FilePieces {
  package?: A.PackageDecl;
  readonly imports: A.ImportDecl[];
  readonly versions: A.VersionDecl[];
  readonly decls: A.Decl[];
}

/** Add one CST root's items to `into`, reporting package-line problems. */
export function addFileCst(
  root: CstNode,
  file: string,
  docs: ReadonlyMap<number, string>,
  into: FilePieces,
  diagnostics: Diagnostic[],
): void {
  const c: Ctx = { file, docs, diagnostics };
  for (const n of kids(root, "packageDecl")) addPackage(c, n, into);
  for (const n of kids(root, "importDecl")) {
    const name = qualifiedName(c, kid(n, "qualifiedName"));
    if (name === undefined) continue;
    const alias = ident(c, tok(n, "alias"));
    into.imports.push(
      alias === undefined
        ? { kind: "Import", name, span: nodeSpan(c, n) }
        : { kind: "Import", name, alias, span: nodeSpan(c, n) },
    );
  }
  for (const n of kids(root, "versionDecl")) {
    const v = tok(n, "value");
    if (v === undefined) continue;
    into.versions.push({
      kind: "Version",
      value: { kind: "StringLit", value: decodeString(v.image), span: tokSpan(c, v) },
      span: nodeSpan(c, n),
    });
  }
  for (const n of kids(root, "declaration")) {
    const d = declaration(c, n);
    if (d !== undefined) into.decls.push(d);
  }
}

function addPackage(c: Ctx, n: CstNode, into: FilePieces): void {
  const name = qualifiedName(c, kid(n, "qualifiedName"));
  if (name === undefined) return;
  const span = nodeSpan(c, n);
  if (into.package !== undefined) {
    c.diagnostics.push(
      diag.duplicatePackageLine(span, { first: into.package.name.parts.map((p) => p.name).join(".") }),
    );
    return;
  }
  into.package = withDoc(c, span.start, { kind: "Package", name, span });
}
