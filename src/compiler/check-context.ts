/**
 * State shared by the checker's passes: the packages, every declaration by full name, the
 * models built so far, and where the checker is (so an internal error can name a position).
 */
import type { Span } from "./ast.js";
import type { Diagnostic } from "./diagnostics.js";
import type { DeclModel } from "./model.js";
import type { DeclEntry, FileScope, PackageInfo } from "./scope.js";

/** The checker's working state for one program. */
export interface Checker {
  readonly out: Diagnostic[];
  readonly packages: ReadonlyMap<string, PackageInfo>;
  /** Every declaration by fully qualified name. */
  readonly byFullName: ReadonlyMap<string, DeclEntry>;
  /** Models of checked declarations by fully qualified name (types first, then services). */
  readonly models: Map<string, DeclModel>;
  /** The file scope of each file path. */
  readonly scopes: ReadonlyMap<string, FileScope>;
  /** The last position the checker looked at; an internal error is reported here. */
  at: Span;
}

/** Remember `span` as the current position and return it. */
export function here(c: Checker, span: Span): Span {
  c.at = span;
  return span;
}
