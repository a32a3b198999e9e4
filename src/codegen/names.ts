/**
 * Names in generated TypeScript: which IDL identifiers cannot be used as they are, how
 * property keys are written, and where each package's module lives.
 *
 * IDL identifiers are `[A-Za-z_][A-Za-z0-9_]*`, so they never contain `$`. Every name the
 * generator has to invent to dodge a collision therefore carries a `$`, and cannot collide
 * with any name that comes from the IDL.
 */
import { posix } from "node:path";

/**
 * Words that cannot name a top-level declaration of an ES module in TypeScript: reserved
 * words, strict-mode reserved words, `await` at module level, the names TypeScript refuses as
 * an interface name, and `arguments`/`eval`. `globalThis` is here because the generated code
 * uses it to reach globals that a declaration shadows.
 */
const RESERVED_BINDINGS: ReadonlySet<string> = new Set([
  // ECMAScript reserved words
  "break", "case", "catch", "class", "const", "continue", "debugger", "default", "delete", "do",
  "else", "enum", "export", "extends", "false", "finally", "for", "function", "if", "import", "in",
  "instanceof", "new", "null", "return", "super", "switch", "this", "throw", "true", "try", "typeof",
  "var", "void", "while", "with",
  // strict mode and module code
  "implements", "interface", "let", "package", "private", "protected", "public", "static", "yield",
  "await", "arguments", "eval",
  // TypeScript: not allowed as an interface or type alias name
  "any", "bigint", "boolean", "never", "number", "object", "string", "symbol", "undefined",
  "unknown",
  // used by the generated code itself
  "globalThis",
]);

/**
 * Words that are reserved somewhere in TypeScript or JavaScript. Valid as property names,
 * but the generated code quotes them as keys so that a reader sees they are plain names.
 */
const RESERVED_WORDS: ReadonlySet<string> = new Set([...RESERVED_BINDINGS, "constructor", "as", "type", "of"]);

/** True when `name` cannot be used as it is for a top-level declaration. */
export function isReservedBinding(name: string): boolean {
  return RESERVED_BINDINGS.has(name);
}

/**
 * The TypeScript identifier of a declaration's main symbol (the interface, type, class or
 * service definition): the IDL name, or the IDL name with `$` appended when it is reserved.
 * Derived names (`WineSchema`, `mockWine`) never need this: a suffix or prefix makes them safe.
 */
export function declIdent(name: string): string {
  return isReservedBinding(name) ? `${name}$` : name;
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * A property key in an object literal or interface. Reserved words are quoted; `__proto__`
 * is written as a computed key because `{ __proto__: x }` and `{ "__proto__": x }` in an
 * object literal set the prototype instead of defining a property.
 */
export function propKey(name: string, context: "literal" | "type" = "literal"): string {
  if (name === "__proto__") return context === "literal" ? `["__proto__"]` : `"__proto__"`;
  if (!IDENT.test(name) || RESERVED_WORDS.has(name)) return str(name);
  return name;
}

/** Members of `Object.prototype`: TypeScript types an object literal's property of such a name from `Object`. */
const OBJECT_MEMBERS: ReadonlySet<string> = new Set([
  "constructor", "toString", "toLocaleString", "valueOf", "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable",
]);

/**
 * A key of an object literal typed by an index signature (`Record<string, T>`). For names of
 * `Object.prototype` members TypeScript would take the contextual type from `Object` and widen
 * the value's literals, so those are written as a computed `string` key.
 */
export function recordKey(name: string): string {
  return OBJECT_MEMBERS.has(name) ? `[${JSON.stringify(name)} as string]` : propKey(name);
}

/** A string literal in TypeScript source: JSON escaping, plus the line and paragraph separators editors break on. */
export function str(value: string): string {
  return JSON.stringify(value).replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

/** Upper-cases the first character: `wineChanged` → `WineChanged`. */
export function capitalize(name: string): string {
  return name.length === 0 ? name : name[0]?.toUpperCase() + name.slice(1);
}

/** The output path of a package's module, relative to the output root: `retail/wines.ts`. */
export function modulePath(packageName: string): string {
  return `${packageName.split(".").join("/")}.ts`;
}

/** The specifier with which module `from` imports module `to` (both output-relative). */
export function importSpecifier(from: string, to: string): string {
  const rel = posix.relative(posix.dirname(from), to).replace(/\.ts$/, ".js");
  return rel.startsWith(".") ? rel : `./${rel}`;
}

/** The namespace name under which a package is imported and re-exported: `retail_wines`. */
export function packageAlias(packageName: string): string {
  const alias = packageName.split(".").join("_");
  return isReservedBinding(alias) ? `${alias}$` : alias;
}
