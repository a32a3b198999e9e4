/**
 * The fan AST: what the parser produces from one `.fan` file.
 *
 * Nodes are plain readonly interfaces with a `kind` and a source span (character offsets into
 * the file's text). Line and column are computed only when a diagnostic is printed
 * (see `diagnostics.ts`). Chevrotain's CST never leaks past `parser.ts`.
 *
 * Keywords are contextual, so the AST keeps names as identifiers and leaves the meaning of
 * names like `list`, `int` or `void` to the checker.
 */

/** A half-open range `[start, end)` of character offsets in one file. */
export interface Span {
  /** The file's path as given to the compiler (relative to the compile root). */
  readonly file: string;
  readonly start: number;
  readonly end: number;
}

interface NodeBase {
  readonly span: Span;
}

/** A `///` doc comment attached to the next declaration, member, field or parameter. */
export interface Documented {
  /** The doc text with the `///` markers and one leading space per line removed. */
  readonly doc?: string;
}

export interface Ident extends NodeBase {
  readonly kind: "Ident";
  readonly name: string;
}

/** `a.b.C` — one or more identifiers joined by dots. */
export interface QualifiedName extends NodeBase {
  readonly kind: "QualifiedName";
  readonly parts: readonly Ident[];
}

// ---------------------------------------------------------------------------------------------
// Literals and decorator arguments

export interface StringLit extends NodeBase {
  readonly kind: "StringLit";
  /** The decoded value (JSON escapes applied). */
  readonly value: string;
}
export interface IntLit extends NodeBase {
  readonly kind: "IntLit";
  /** The literal's text, sign included (`-12`); kept as text so int64 values keep precision. */
  readonly text: string;
}
export interface FloatLit extends NodeBase {
  readonly kind: "FloatLit";
  readonly text: string;
}
export interface BoolLit extends NodeBase {
  readonly kind: "BoolLit";
  readonly value: boolean;
}
/** `250ms`, `2s`, `5m`, `1h` — stored as milliseconds. */
export interface DurationLit extends NodeBase {
  readonly kind: "DurationLit";
  readonly ms: number;
  readonly text: string;
}
export interface ListLit extends NodeBase {
  readonly kind: "ListLit";
  readonly items: readonly Expr[];
}
/** A bare (possibly dotted) name used as a value: `NOT_FOUND`, `http`, `wine.id`, `RED`. */
export interface NameExpr extends NodeBase {
  readonly kind: "NameExpr";
  readonly name: QualifiedName;
}
export type Expr = StringLit | IntLit | FloatLit | BoolLit | DurationLit | ListLit | NameExpr;

/** `@name` or `@name(args...)`. */
export interface Decorator extends NodeBase {
  readonly kind: "Decorator";
  readonly name: Ident;
  /** `undefined` when written without parentheses (`@idempotent`), `[]` for `@x()`. */
  readonly args: readonly Expr[] | undefined;
}

// ---------------------------------------------------------------------------------------------
// Types

/**
 * A type reference: `string`, `Wine`, `common.Money`, `list<T>`, `map<K, V>`, `void`.
 * Built-in names are resolved by the checker, so `args` is empty for everything except
 * generic built-ins.
 */
export interface TypeRef extends NodeBase {
  readonly kind: "TypeRef";
  readonly name: QualifiedName;
  readonly args: readonly TypeRef[];
}

// ---------------------------------------------------------------------------------------------
// Fields, parameters, members

/**
 * A struct field, error field, config entry or method/event parameter:
 * `/// doc`? `name` `?`? `:` `Type` (`=` default)? `@decorator(...)`*.
 */
export interface Field extends NodeBase, Documented {
  readonly kind: "Field";
  readonly name: Ident;
  readonly optional: boolean;
  readonly type: TypeRef;
  readonly default?: Expr;
  readonly decorators: readonly Decorator[];
}

export interface EnumMember extends NodeBase, Documented {
  readonly kind: "EnumMember";
  readonly name: Ident;
  readonly value?: IntLit;
  readonly decorators: readonly Decorator[];
}

/** A member of a tagged union: `name: Type`. */
export interface UnionMember extends NodeBase, Documented {
  readonly kind: "UnionMember";
  readonly name: Ident;
  readonly type: TypeRef;
  readonly decorators: readonly Decorator[];
}

// ---------------------------------------------------------------------------------------------
// Top-level declarations

export interface StructDecl extends NodeBase, Documented {
  readonly kind: "Struct";
  readonly name: Ident;
  readonly fields: readonly Field[];
  readonly decorators: readonly Decorator[];
}

export interface EnumDecl extends NodeBase, Documented {
  readonly kind: "Enum";
  readonly name: Ident;
  readonly members: readonly EnumMember[];
  readonly decorators: readonly Decorator[];
}

export interface UnionDecl extends NodeBase, Documented {
  readonly kind: "Union";
  readonly name: Ident;
  readonly members: readonly UnionMember[];
  readonly decorators: readonly Decorator[];
}

export interface ErrorDecl extends NodeBase, Documented {
  readonly kind: "Error";
  readonly name: Ident;
  readonly fields: readonly Field[];
  readonly decorators: readonly Decorator[];
}

export interface ServiceDecl extends NodeBase, Documented {
  readonly kind: "Service";
  readonly name: Ident;
  readonly members: readonly ServiceMember[];
  readonly decorators: readonly Decorator[];
}

export type Decl = StructDecl | EnumDecl | UnionDecl | ErrorDecl | ServiceDecl;

// ---------------------------------------------------------------------------------------------
// Service members

/** `depends [soft] Service "range"`. */
export interface DependsMember extends NodeBase, Documented {
  readonly kind: "Depends";
  readonly soft: boolean;
  readonly service: QualifiedName;
  readonly range: StringLit;
  readonly decorators: readonly Decorator[];
}

/** `config { field... }`. */
export interface ConfigMember extends NodeBase, Documented {
  readonly kind: "Config";
  readonly fields: readonly Field[];
  readonly decorators: readonly Decorator[];
}

/** `rpc name(params): Type throws E1, E2`. The return type `void` is a TypeRef named `void`. */
export interface RpcMember extends NodeBase, Documented {
  readonly kind: "Rpc";
  readonly name: Ident;
  readonly params: readonly Field[];
  readonly returns: TypeRef;
  readonly throws: readonly QualifiedName[];
  readonly decorators: readonly Decorator[];
}

/** `push name(params)`. */
export interface PushMember extends NodeBase, Documented {
  readonly kind: "Push";
  readonly name: Ident;
  readonly params: readonly Field[];
  readonly decorators: readonly Decorator[];
}

/** `event name(params)`. */
export interface EventMember extends NodeBase, Documented {
  readonly kind: "Event";
  readonly name: Ident;
  readonly params: readonly Field[];
  readonly decorators: readonly Decorator[];
}

/** `state name: Type @full|@delta` (decorators before or after the type). */
export interface StateMember extends NodeBase, Documented {
  readonly kind: "State";
  readonly name: Ident;
  readonly type: TypeRef;
  readonly decorators: readonly Decorator[];
}

/** `on Service.event` (the service name may be qualified: `on retail.wines.PublicWines.wineChanged`). */
export interface OnMember extends NodeBase, Documented {
  readonly kind: "On";
  /** The whole dotted path; the last part is the event name. */
  readonly target: QualifiedName;
  readonly decorators: readonly Decorator[];
}

export type ServiceMember =
  | DependsMember
  | ConfigMember
  | RpcMember
  | PushMember
  | EventMember
  | StateMember
  | OnMember;

// ---------------------------------------------------------------------------------------------
// File level

/** `package a.b.c`. */
export interface PackageDecl extends NodeBase, Documented {
  readonly kind: "Package";
  readonly name: QualifiedName;
}

/** `import a.b [as alias]`. */
export interface ImportDecl extends NodeBase {
  readonly kind: "Import";
  readonly name: QualifiedName;
  readonly alias?: Ident;
}

/** `version "x.y.z"` — the package's default service version. */
export interface VersionDecl extends NodeBase {
  readonly kind: "Version";
  readonly value: StringLit;
}

export interface SourceFile {
  readonly kind: "SourceFile";
  /** Path relative to the compile root, with `/` separators. */
  readonly path: string;
  readonly text: string;
  /** Missing only when the file is broken (a diagnostic says so). */
  readonly package?: PackageDecl;
  readonly imports: readonly ImportDecl[];
  readonly versions: readonly VersionDecl[];
  readonly decls: readonly Decl[];
  readonly span: Span;
}
