/** Document symbols (the outline): declarations with their members, fields and enum members. */
import { type DocumentSymbol, SymbolKind } from "vscode-languageserver";
import type * as A from "../compiler/ast.js";
import type { Lines } from "./positions.js";

const DECL_KIND: Readonly<Record<A.Decl["kind"], SymbolKind>> = {
  Struct: SymbolKind.Struct,
  Enum: SymbolKind.Enum,
  Union: SymbolKind.Class,
  Error: SymbolKind.Class,
  Service: SymbolKind.Interface,
};

const MEMBER_KIND: Readonly<Record<A.ServiceMember["kind"], SymbolKind>> = {
  Rpc: SymbolKind.Method,
  Push: SymbolKind.Method,
  Event: SymbolKind.Event,
  State: SymbolKind.Property,
  Depends: SymbolKind.Module,
  Config: SymbolKind.Object,
  On: SymbolKind.Function,
};

/** The outline of one file. */
export function documentSymbols(file: A.SourceFile, lines: Lines): DocumentSymbol[] {
  const sym = (name: string, detail: string, kind: SymbolKind, node: A.Span, sel: A.Span, children: DocumentSymbol[] = []): DocumentSymbol => ({
    name: name === "" ? "?" : name,
    detail,
    kind,
    range: lines.range(node),
    selectionRange: lines.range(sel),
    ...(children.length > 0 ? { children } : {}),
  });
  const field = (f: A.Field | A.EnumMember | A.UnionMember, kind: SymbolKind): DocumentSymbol =>
    sym(f.name.name, "type" in f ? typeText(f.type) : "", kind, f.span, f.name.span);
  const out: DocumentSymbol[] = [];
  if (file.package !== undefined)
    out.push(sym(file.package.name.parts.map((p) => p.name).join("."), "package", SymbolKind.Package, file.package.span, file.package.name.span));
  for (const d of file.decls) {
    let children: DocumentSymbol[] = [];
    if (d.kind === "Struct" || d.kind === "Error") children = d.fields.map((f) => field(f, SymbolKind.Field));
    else if (d.kind === "Enum") children = d.members.map((m) => field(m, SymbolKind.EnumMember));
    else if (d.kind === "Union") children = d.members.map((m) => field(m, SymbolKind.Field));
    else children = d.members.map((m) => memberSymbol(m, sym, field));
    out.push(sym(d.name.name, d.kind.toLowerCase(), DECL_KIND[d.kind], d.span, d.name.span, children));
  }
  return out;
}

type Sym = (name: string, detail: string, kind: SymbolKind, node: A.Span, sel: A.Span, children?: DocumentSymbol[]) => DocumentSymbol;

function memberSymbol(m: A.ServiceMember, sym: Sym, field: (f: A.Field, k: SymbolKind) => DocumentSymbol): DocumentSymbol {
  const kind = MEMBER_KIND[m.kind];
  switch (m.kind) {
    case "Config":
      return sym("config", "", kind, m.span, m.span, m.fields.map((f) => field(f, SymbolKind.Field)));
    case "Depends":
      return sym(m.service.parts.map((p) => p.name).join("."), `depends${m.soft ? " soft" : ""} ${m.range.value}`, kind, m.span, m.service.span);
    case "On":
      return sym(`on ${m.target.parts.map((p) => p.name).join(".")}`, "subscription", kind, m.span, m.target.span);
    case "State":
      return sym(m.name.name, `state ${typeText(m.type)}`, kind, m.span, m.name.span);
    default:
      return sym(m.name.name, m.kind.toLowerCase(), kind, m.span, m.name.span, m.params.map((p) => field(p, SymbolKind.Variable)));
  }
}

function typeText(t: A.TypeRef): string {
  const name = t.name.parts.map((p) => p.name).join(".");
  return t.args.length === 0 ? name : `${name}<${t.args.map(typeText).join(", ")}>`;
}
