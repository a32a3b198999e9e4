/**
 * Human-readable type names for error messages: `list<string>`, `retail.wines.Wine`.
 */
import type { Schema } from "./schema.js";

/** The IDL spelling of a schema's type, without resolving refs. */
export function typeName(s: Schema): string {
  switch (s.kind) {
    case "list":
      return `list<${typeName(s.of)}>`;
    case "map":
      return `map<${typeName(s.key)}, ${typeName(s.of)}>`;
    case "struct":
    case "enum":
    case "union":
    case "ref":
      return s.name;
    default:
      return s.kind;
  }
}

/** `a, b, c` or `a, b, ... (12 in all)` for long lists. */
export function listNames(names: readonly string[]): string {
  if (names.length <= 8) return names.join(", ");
  return `${names.slice(0, 8).join(", ")}, ... (${names.length} in all)`;
}
