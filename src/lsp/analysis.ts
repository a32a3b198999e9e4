/**
 * Navigation data over a checked program: declarations by full name, every reference (types,
 * `throws`, `depends`, `on`, imports) resolved the way the checker resolves it, and what sits
 * at an offset. Built from the ASTs with the compiler's own scope rules (`scope.ts`); each
 * file's references are resolved on first use.
 */
import type * as A from "../compiler/ast.js";
import { BUILTIN_TYPE_NAMES } from "../compiler/check-types.js";
import type { Diagnostic } from "../compiler/diagnostics.js";
import {
  type DeclEntry,
  type FileScope,
  type PackageInfo,
  buildFileScope,
  buildPackages,
  qnText,
  resolve,
} from "../compiler/scope.js";

/** A name that refers to a declaration (or, for `on`, to an event of one; for imports, a package). */
export interface Ref {
  readonly kind: "type" | "throws" | "depends" | "on" | "event" | "import";
  /** The whole written name. */
  readonly span: A.Span;
  /** The last identifier: what a rename replaces. */
  readonly nameSpan: A.Span;
  /** Full name of the declaration (a package name for imports). */
  readonly target: string;
  /** For `event` refs: the event's name in the target service. */
  readonly member?: string;
}

/** What is at an offset of a file. */
export type Hit =
  | { readonly kind: "decl"; readonly entry: DeclEntry }
  | { readonly kind: "ref"; readonly ref: Ref }
  | { readonly kind: "member"; readonly service: DeclEntry; readonly member: A.ServiceMember & { name: A.Ident } }
  | { readonly kind: "field"; readonly owner: string; readonly field: A.Field | A.EnumMember | A.UnionMember }
  | { readonly kind: "decorator"; readonly decorator: A.Decorator }
  | { readonly kind: "package"; readonly name: string; readonly span: A.Span };

/** Declarations and references of one program. */
export class Analysis {
  readonly packages: ReadonlyMap<string, PackageInfo>;
  readonly scopes: ReadonlyMap<string, FileScope>;
  readonly decls = new Map<string, DeclEntry>();
  readonly #refs = new Map<string, readonly Ref[]>();
  readonly #files: ReadonlyMap<string, A.SourceFile>;

  constructor(files: readonly A.SourceFile[]) {
    const ignored: Diagnostic[] = [];
    this.#files = new Map(files.map((f) => [f.path, f]));
    this.packages = buildPackages(files, ignored);
    const scopes = new Map<string, FileScope>();
    for (const pkg of this.packages.values()) {
      for (const f of pkg.files) scopes.set(f.path, buildFileScope(f, pkg, this.packages, ignored));
      for (const e of pkg.decls.values()) this.decls.set(e.fullName, e);
    }
    this.scopes = scopes;
  }

  /** The references written in one file. */
  refsIn(path: string): readonly Ref[] {
    let refs = this.#refs.get(path);
    if (refs === undefined) {
      const file = this.#files.get(path);
      const scope = this.scopes.get(path);
      refs = file === undefined || scope === undefined ? [] : collectRefs(file, scope, this.packages);
      this.#refs.set(path, refs);
    }
    return refs;
  }

  /** Every reference in the program. */
  allRefs(): readonly Ref[] {
    return [...this.#files.keys()].flatMap((p) => this.refsIn(p));
  }

  /** What is at `offset` in `path` (the innermost name), or undefined. */
  at(path: string, offset: number): Hit | undefined {
    const file = this.#files.get(path);
    if (file === undefined) return undefined;
    const ref = this.refsIn(path).find((r) => within(r.span, offset));
    if (ref !== undefined) {
      // `on Svc.ev`: the event part and the service part are two refs; take the narrowest.
      const narrow = this.refsIn(path).filter((r) => within(r.span, offset)).sort((a, b) => size(a.span) - size(b.span))[0];
      return { kind: "ref", ref: narrow ?? ref };
    }
    if (file.package !== undefined && within(file.package.name.span, offset))
      return { kind: "package", name: qnText(file.package.name), span: file.package.name.span };
    const pkgName = file.package === undefined ? undefined : qnText(file.package.name);
    for (const d of file.decls) {
      if (!within(d.span, offset) && !d.decorators.some((x) => within(x.span, offset))) continue;
      const entry = pkgName === undefined ? undefined : this.packages.get(pkgName)?.decls.get(d.name.name);
      const owner = entry?.decl === d ? entry : { decl: d, file, pkg: pkgName ?? "", fullName: `${pkgName}.${d.name.name}` };
      return hitInDecl(owner, offset);
    }
    return undefined;
  }

  /** The file of a path. */
  file(path: string): A.SourceFile | undefined {
    return this.#files.get(path);
  }
}

/** Build the analysis of a program's ASTs. */
export function analyse(files: readonly A.SourceFile[]): Analysis {
  return new Analysis(files);
}

/** True when `offset` is inside `span` or just after its end (a cursor after the last letter). */
export function within(span: A.Span, offset: number): boolean {
  return offset >= span.start && offset <= span.end;
}

function size(s: A.Span): number {
  return s.end - s.start;
}

function decoratorHit(decs: readonly A.Decorator[], offset: number): Hit | undefined {
  const d = decs.find((x) => within(x.span, offset));
  return d === undefined ? undefined : { kind: "decorator", decorator: d };
}

function hitInDecl(entry: DeclEntry, offset: number): Hit | undefined {
  const d = entry.decl;
  if (within(d.name.span, offset)) return { kind: "decl", entry };
  const dec = decoratorHit(d.decorators, offset);
  if (dec !== undefined) return dec;
  const fieldHit = (fs: readonly (A.Field | A.EnumMember | A.UnionMember)[], owner: string): Hit | undefined => {
    for (const f of fs) {
      if (within(f.name.span, offset)) return { kind: "field", owner, field: f };
      const fd = decoratorHit(f.decorators, offset);
      if (fd !== undefined) return fd;
    }
    return undefined;
  };
  switch (d.kind) {
    case "Struct":
    case "Error":
      return fieldHit(d.fields, entry.fullName);
    case "Enum":
      return fieldHit(d.members, entry.fullName);
    case "Union":
      return fieldHit(d.members, entry.fullName);
    case "Service":
      for (const m of d.members) {
        if (!within(m.span, offset) && !m.decorators.some((x) => within(x.span, offset))) continue;
        if ("name" in m && within(m.name.span, offset)) return { kind: "member", service: entry, member: m };
        const md = decoratorHit(m.decorators, offset);
        if (md !== undefined) return md;
        const params = m.kind === "Rpc" || m.kind === "Push" || m.kind === "Event" ? m.params : m.kind === "Config" ? m.fields : [];
        const name = "name" in m ? `${entry.fullName}.${m.name.name}` : `${entry.fullName}.config`;
        return fieldHit(params, name);
      }
      return undefined;
  }
}

function collectRefs(file: A.SourceFile, scope: FileScope, packages: ReadonlyMap<string, PackageInfo>): Ref[] {
  const out: Ref[] = [];
  const last = (q: A.QualifiedName): A.Span => q.parts[q.parts.length - 1]!.span;
  const add = (kind: Ref["kind"], q: A.QualifiedName): DeclEntry | undefined => {
    const r = resolve(scope, q, packages);
    if (!("ok" in r)) return undefined;
    out.push({ kind, span: q.span, nameSpan: last(q), target: r.ok.fullName });
    return r.ok;
  };
  const type = (t: A.TypeRef): void => {
    const simple = t.name.parts.length === 1 ? t.name.parts[0]!.name : undefined;
    if (simple === undefined || !BUILTIN_TYPE_NAMES.has(simple)) add("type", t.name);
    for (const a of t.args) type(a);
  };
  const fields = (fs: readonly A.Field[]): void => {
    for (const f of fs) type(f.type);
  };
  for (const imp of file.imports) {
    const target = qnText(imp.name);
    if (packages.has(target)) out.push({ kind: "import", span: imp.name.span, nameSpan: last(imp.name), target });
  }
  for (const d of file.decls) {
    switch (d.kind) {
      case "Struct":
      case "Error":
        fields(d.fields);
        break;
      case "Union":
        for (const m of d.members) type(m.type);
        break;
      case "Enum":
        break;
      case "Service":
        for (const m of d.members) {
          if (m.kind === "Rpc") {
            fields(m.params);
            type(m.returns);
            for (const t of m.throws) add("throws", t);
          } else if (m.kind === "Push" || m.kind === "Event") fields(m.params);
          else if (m.kind === "Config") fields(m.fields);
          else if (m.kind === "State") type(m.type);
          else if (m.kind === "Depends") add("depends", m.service);
          else if (m.kind === "On") onRef(m, add, out);
        }
        break;
    }
  }
  return out;
}

/** `on a.B.ev`: a ref to service `a.B` and one to its event `ev`. */
function onRef(m: A.OnMember, add: (kind: Ref["kind"], q: A.QualifiedName) => DeclEntry | undefined, out: Ref[]): void {
  const parts = m.target.parts;
  if (parts.length < 2) return;
  const svcParts = parts.slice(0, -1);
  const svc: A.QualifiedName = {
    kind: "QualifiedName",
    parts: svcParts,
    span: { file: m.target.span.file, start: svcParts[0]!.span.start, end: svcParts[svcParts.length - 1]!.span.end },
  };
  const entry = add("on", svc);
  const ev = parts[parts.length - 1]!;
  if (entry !== undefined) out.push({ kind: "event", span: ev.span, nameSpan: ev.span, target: entry.fullName, member: ev.name });
}
