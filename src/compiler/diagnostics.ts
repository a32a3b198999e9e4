/**
 * Every diagnostic the compiler can report, in one table: code, severity, message template and
 * a one-line help text. The table gives typed constructors (`diag.unknownType(span, { name })`)
 * and is documented code by code in `docs/diagnostics.md` (a test keeps the two in step).
 *
 * User errors are values, never exceptions: phases collect `Diagnostic`s and carry on.
 */
import type { Span } from "./ast.js";
import { TRANSPORT_NAMES } from "./model.js";

/** `a, b or c`: a list in a message. */
export function orList(words: readonly string[]): string {
  return words.length < 2 ? words.join("") : `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`;
}

/** How bad a diagnostic is: errors stop the compile, warnings only under `strict`. */
export type Severity = "error" | "warning";

/** One message about a place in a source file. */
export interface Diagnostic {
  readonly code: string;
  readonly severity: Severity;
  readonly message: string;
  readonly span: Span;
}

interface DiagnosticDef {
  readonly code: string;
  readonly severity: Severity;
  /** Template with `{param}` placeholders. */
  readonly message: string;
  /** One sentence for the documentation: why this is reported and what to do. */
  readonly help: string;
}

const E = "error" as const;
const W = "warning" as const;

/** The table of all diagnostics, keyed by a stable camelCase name. */
export const DIAGNOSTICS = {
  // -- 00xx: lexing and parsing ---------------------------------------------------------------
  unexpectedCharacter: {
    code: "FAN0001",
    severity: E,
    message: "unexpected character {char}",
    help: "The text contains a character that starts no token of the language.",
  },
  unterminatedString: {
    code: "FAN0002",
    severity: E,
    message: "unterminated string literal",
    help: 'A string opened with `"` has no closing quote on the same line.',
  },
  unterminatedComment: {
    code: "FAN0003",
    severity: E,
    message: "unterminated block comment",
    help: "A `/*` comment has no closing `*/` before the end of the file.",
  },
  invalidEscape: {
    code: "FAN0004",
    severity: E,
    message: "invalid escape {escape} in string literal",
    help: 'Strings use JSON escapes only: `\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX`.',
  },
  syntaxError: {
    code: "FAN0005",
    severity: E,
    message: "{detail}",
    help: "The tokens do not form a valid declaration; the message says what was expected.",
  },
  nestingTooDeep: {
    code: "FAN0006",
    severity: E,
    message: "nesting too deep (more than {limit} levels of brackets)",
    help: "Types, lists and blocks may nest at most 64 levels; deeper input is skipped.",
  },
  missingPackage: {
    code: "FAN0007",
    severity: E,
    message: "missing `package` line; every file starts with `package name`",
    help: "Each file must declare its package in its first line.",
  },
  duplicatePackageLine: {
    code: "FAN0008",
    severity: E,
    message: "second `package` line in one file (first: `{first}`)",
    help: "A file belongs to exactly one package.",
  },
  packageNotFirst: {
    code: "FAN0009",
    severity: E,
    message: "the `package` line must come before everything else",
    help: "Write `package` first, then imports, then declarations.",
  },
  tooManyErrors: {
    code: "FAN0010",
    severity: E,
    message: "too many syntax errors in this file; stopped after {count}",
    help: "Fix the first errors; the rest are often consequences of them.",
  },
  invalidNumber: {
    code: "FAN0011",
    severity: E,
    message: "number {text} is out of range",
    help: "An integer literal does not fit a 64-bit integer or a float is not finite.",
  },
  binaryFile: {
    code: "FAN0012",
    severity: E,
    message: "not a text file (NUL byte at offset {offset}); .fan files are UTF-8 text",
    help: "A file with a NUL byte in its first 8,000 characters is binary, so it is reported once and not parsed.",
  },

  // -- 01xx: names, packages and imports ------------------------------------------------------
  unknownType: {
    code: "FAN0101",
    severity: E,
    message: "unknown type `{name}`{hint}",
    help: "No built-in type or declaration of this name is visible here.",
  },
  duplicateDeclaration: {
    code: "FAN0102",
    severity: E,
    message: "`{name}` is already declared in package `{pkg}`",
    help: "Names in a package (including all its files) must be unique.",
  },
  duplicateMember: {
    code: "FAN0103",
    severity: E,
    message: "duplicate {what} `{name}`",
    help: "Fields, parameters, enum and union members, methods, events and states must be unique in their scope.",
  },
  packageNotImported: {
    code: "FAN0104",
    severity: E,
    message: "package `{pkg}` is not imported; add `import {pkg}`",
    help: "A name from another package needs an `import` of that package in the same file.",
  },
  unknownPackage: {
    code: "FAN0105",
    severity: E,
    message: "no package `{pkg}` under the compile root",
    help: "An `import` names a package that no `.fan` file declares.",
  },
  duplicateImportName: {
    code: "FAN0106",
    severity: E,
    message: "import name `{alias}` already refers to package `{other}`",
    help: "Two imports in a file give the same alias; rename one with `as`.",
  },
  ambiguousQualifier: {
    code: "FAN0107",
    severity: E,
    message: "`{qualifier}` could mean package `{a}` or `{b}`; import one with an alias",
    help: "Two imports end in the same name; give one an alias and use it.",
  },
  reservedTypeName: {
    code: "FAN0108",
    severity: E,
    message: "`{name}` is a built-in type name and cannot be declared",
    help: "Built-in type names (`string`, `list`, `void`, ...) cannot name declarations.",
  },
  notAType: {
    code: "FAN0109",
    severity: E,
    message: "`{name}` is a {kind}, not a type",
    help: "Only structs, enums, unions and errors (and built-ins) can be used as types.",
  },
  unknownService: {
    code: "FAN0110",
    severity: E,
    message: "unknown service `{name}`",
    help: "`depends` and `on` must name a service declared under the compile root.",
  },
  notAService: {
    code: "FAN0111",
    severity: E,
    message: "`{name}` is a {kind}, not a service",
    help: "`depends` and `on` must name a service.",
  },
  notAnEvent: {
    code: "FAN0112",
    severity: E,
    message: "`{name}` is not an event of service `{service}`{detail}",
    help: "`on Service.name` must name an `event` of that service.",
  },
  notAnError: {
    code: "FAN0113",
    severity: E,
    message: "`{name}` is a {kind}, not an error",
    help: "`throws` lists only `error` declarations.",
  },
  reservedMemberName: {
    code: "FAN0114",
    severity: E,
    message: "`{name}` cannot name a {what}: {reason}",
    help: "Some names collide with generated members (client `events`/`states`, lifecycle hooks, error class properties) or are keys the runtime rejects (`__proto__`, `constructor`, `prototype`).",
  },
  handlerCollision: {
    code: "FAN0115",
    severity: E,
    message: "subscription handler `{handler}` collides with {other}",
    help: "`on X.ev` generates a handler method `onEv`; it must not clash with another method or subscription.",
  },

  // -- 02xx: types, values and constraints ----------------------------------------------------
  invalidMapKey: {
    code: "FAN0201",
    severity: E,
    message: "map key must be string, int or an enum, not {type}",
    help: "Map keys become JSON object keys, so only string, int or enum keys are allowed.",
  },
  wrongTypeArguments: {
    code: "FAN0202",
    severity: E,
    message: "`{name}` takes {expected}, got {actual}",
    help: "`list` takes one type argument, `map` two, other types none.",
  },
  defaultMismatch: {
    code: "FAN0203",
    severity: E,
    message: "default does not fit type {type}: {reason}",
    help: "A default value must be a literal of the field's type (enum defaults name a member).",
  },
  constraintNotApplicable: {
    code: "FAN0204",
    severity: E,
    message: "@{name} does not apply to {type}",
    help: "`@min/@max` apply to numbers, decimals and durations, `@minLength/@maxLength` to string and bytes, `@maxItems` to list and map, `@pattern` to string.",
  },
  voidNotAllowed: {
    code: "FAN0205",
    severity: E,
    message: "`void` is only allowed as the return type of an rpc",
    help: "Fields, parameters and states need a data type.",
  },
  invalidUnionMember: {
    code: "FAN0206",
    severity: E,
    message: "union member `{name}` must have a data type, not {type}",
    help: "Each union member carries a value, so its type cannot be `void`.",
  },
  emptyEnum: {
    code: "FAN0207",
    severity: E,
    message: "enum `{name}` has no members",
    help: "An enum needs at least one member.",
  },
  duplicateEnumValue: {
    code: "FAN0208",
    severity: E,
    message: "enum value {value} of `{name}` is already used by `{other}`",
    help: "Each enum member needs a distinct numeric value (explicit or implicit).",
  },
  invalidEnumValue: {
    code: "FAN0209",
    severity: E,
    message: "enum value {value} is not a safe integer",
    help: "Enum values must be integers between -(2^53-1) and 2^53-1.",
  },
  constraintRange: {
    code: "FAN0210",
    severity: E,
    message: "@{low} {min} is greater than @{high} {max}",
    help: "A lower bound above its upper bound admits no value.",
  },
  invalidPattern: {
    code: "FAN0211",
    severity: E,
    message: "@pattern is not a valid regular expression: {reason}",
    help: "`@pattern` takes a JavaScript regular expression.",
  },
  emptyUnion: {
    code: "FAN0212",
    severity: E,
    message: "union `{name}` has no members",
    help: "A union needs at least one member.",
  },
  defaultViolatesConstraint: {
    code: "FAN0213",
    severity: E,
    message: "default {value} violates @{constraint}",
    help: "A default must satisfy the field's own constraints.",
  },

  // -- 03xx: decorators -----------------------------------------------------------------------
  unknownDecorator: {
    code: "FAN0301",
    severity: E,
    message: "unknown decorator @{name}{hint}",
    help: "The decorator is not part of the language; see docs/idl.md for the list.",
  },
  decoratorMisplaced: {
    code: "FAN0302",
    severity: E,
    message: "@{name} is not allowed on {target}",
    help: "Each decorator applies to certain kinds of declaration or member only.",
  },
  decoratorArguments: {
    code: "FAN0303",
    severity: E,
    message: "@{name} expects {expected}",
    help: "The decorator was given the wrong number or kind of arguments.",
  },
  duplicateDecorator: {
    code: "FAN0304",
    severity: E,
    message: "@{name} is given twice",
    help: "Each decorator may appear once per target.",
  },
  invalidStatusCode: {
    code: "FAN0305",
    severity: E,
    message: "`{name}` is not a status code; use one of {codes}",
    help: "`@code` takes one of the runtime's status codes.",
  },
  durationNotPositive: {
    code: "FAN0306",
    severity: E,
    message: "@{name} needs a positive duration, got {text}",
    help: "Timeouts and TTLs must be longer than zero.",
  },
  invalidShards: {
    code: "FAN0307",
    severity: E,
    message: "@shards needs a positive integer, got {text}",
    help: "The shard count must be at least 1.",
  },
  retryWithoutIdempotent: {
    code: "FAN0308",
    severity: E,
    message: "@retry on `{name}` needs @idempotent",
    help: "Only methods that are safe to repeat may be retried.",
  },
  unknownTransport: {
    code: "FAN0309",
    severity: E,
    // The list is spelled out from TRANSPORT_NAMES; the type keeps `{name}` a placeholder.
    message:
      `unknown transport \`{name}\`; use ${orList(TRANSPORT_NAMES)}` as `unknown transport \`{name}\`; use ${string}`,
    help: "`@transports` lists transports the runtime knows.",
  },
  stateMode: {
    code: "FAN0310",
    severity: E,
    message: "state `{name}` needs exactly one of @full or @delta",
    help: "A state is replicated either in full or as merge-patch deltas.",
  },
  invalidSemver: {
    code: "FAN0311",
    severity: E,
    message: "`{text}` is not a valid semantic version (x.y.z)",
    help: "Versions (`version`, `@version`, `@since`) are semver `major.minor.patch`.",
  },
  invalidRange: {
    code: "FAN0312",
    severity: E,
    message: "`{text}` is not a valid semver range",
    help: "`depends` takes an npm-style range such as `^1.2` or `>=2 <3`.",
  },
  sinceAfterVersion: {
    code: "FAN0313",
    severity: E,
    message: '@since("{since}") is later than the service version {version}',
    help: "A member cannot be introduced in a version newer than its service.",
  },
  routeUnknownParam: {
    code: "FAN0314",
    severity: E,
    message: "route parameter `{param}` is not a parameter of `{method}`",
    help: "Each `{param}` in a route must name a parameter of the method.",
  },
  routeMissingParam: {
    code: "FAN0315",
    severity: E,
    message: "parameter `{param}` of `{method}` is not bound by its {verb} route, which has no body: {fix}",
    help: 'A GET or DELETE has no body (and `@route("/path")` on an @idempotent rpc is a GET): every required parameter without a default must appear in the path; optional and defaulted ones may travel in the query string. The message says how: make the parameter optional or give it a default (`?q=...` then carries it), or bind it in the path; one the query string cannot carry (a struct, union, map or `json`) needs a POST, PUT or PATCH route, which takes it from the JSON body.',
  },
  invalidRoute: {
    code: "FAN0316",
    severity: E,
    message: "invalid route `{path}`: {reason}",
    help: "A route is `/path` or `VERB /path`; each `{param}` is a whole path segment naming a required scalar parameter, once.",
  },
  shardPathUnresolved: {
    code: "FAN0317",
    severity: E,
    message: "@shard path `{path}` does not resolve: {reason}",
    help: "Each @shard argument is a parameter name, optionally followed by struct field names.",
  },
  shardPathOptional: {
    code: "FAN0318",
    severity: E,
    message: "@shard path `{path}` goes through optional `{name}`",
    help: "Shard keys must always be present, so no part of the path may be optional.",
  },
  duplicateVersionLine: {
    code: "FAN0319",
    severity: E,
    message: "package `{pkg}` has more than one `version` line",
    help: "A package's default service version is given once, in one of its files.",
  },
  fallbackWithoutShard: {
    code: "FAN0320",
    severity: E,
    message: "@fallback on `{name}` needs @shard",
    help: "@fallback lets a sharded call go to another instance when its shard's owner is unavailable; a method without @shard has no owner.",
  },
  stateShardArgs: {
    code: "FAN0321",
    severity: E,
    message: "@shard on state `{name}` takes no arguments",
    help: "A sharded state has one value per shard of its service (`@shards(n)`, 16 by default); the owner picks the shard (`shard(n)`, `forKey(key)`), not a path.",
  },
  unknownRouteVerb: {
    code: "FAN0322",
    severity: E,
    message: "`{verb}` is not a verb a route can bind; use GET, POST, PUT, PATCH or DELETE{hint}",
    help: 'A route names its verb in capitals before the path (`@route("DELETE /items/{id}")`); HEAD is answered by every GET route and is not bound on its own.',
  },
  getRouteNotIdempotent: {
    code: "FAN0323",
    severity: E,
    message: "`{method}` has a GET route but is not @idempotent",
    help: "Browsers, crawlers, caches and proxies send GETs on their own and repeat them (prefetch, retry after a lost connection), so a GET must be safe to run twice: mark the method @idempotent, or bind another verb.",
  },
  routeConflict: {
    code: "FAN0324",
    severity: E,
    message: "`{verb} {path}` of `{method}` is already the route of `{other}`",
    help: "One request would match both methods: two methods of a service cannot bind the same verb on the same path (`{param}` names do not matter); change the path or the verb of one.",
  },

  // -- 04xx: services -------------------------------------------------------------------------
  dependencyCycle: {
    code: "FAN0401",
    severity: E,
    message: "cycle of hard dependencies: {cycle}",
    help: "Services would wait for each other at start; make one of the `depends` soft.",
  },
  duplicateDependency: {
    code: "FAN0402",
    severity: E,
    message: "`{name}` is already a dependency of this service",
    help: "Each service is listed in `depends` at most once.",
  },
  duplicateSubscription: {
    code: "FAN0403",
    severity: E,
    message: "duplicate subscription to `{name}`",
    help: "A service subscribes to each event once.",
  },
  duplicateConfig: {
    code: "FAN0404",
    severity: E,
    message: "a service has at most one `config` block",
    help: "Merge the config blocks into one.",
  },
  secretMisplaced: {
    code: "FAN0405",
    severity: E,
    message: "@secret is only allowed on config entries",
    help: "`@secret` marks config values that must never be logged.",
  },

  // -- 05xx: warnings -------------------------------------------------------------------------
  typeCasing: {
    code: "FAN0501",
    severity: W,
    message: "{what} `{name}` should be PascalCase",
    help: "Types and services are PascalCase by convention.",
  },
  memberCasing: {
    code: "FAN0502",
    severity: W,
    message: "{what} `{name}` should be camelCase",
    help: "Fields, parameters, methods, events, states and union members are camelCase.",
  },
  enumMemberCasing: {
    code: "FAN0503",
    severity: W,
    message: "enum member `{name}` should be UPPER_CASE or PascalCase",
    help: "Enum members are UPPER_CASE (or PascalCase).",
  },
  packageCasing: {
    code: "FAN0504",
    severity: W,
    message: "package `{name}` should be lowercase dotted words",
    help: "Package names are lowercase segments joined by dots.",
  },
  dependencyVersionMismatch: {
    code: "FAN0505",
    severity: W,
    message: '`{name}` is version {version} here, which does not satisfy "{range}"',
    help: "The declared version of a dependency falls outside the range asked for.",
  },
  unusedImport: {
    code: "FAN0506",
    severity: W,
    message: "import `{pkg}` is never used",
    help: "Remove imports this file does not use.",
  },

  danglingDecorator: {
    code: "FAN0507",
    severity: W,
    message: "`@{name}` applies to `{next}` on the next line, not to `{prev}` before it on this line",
    help: "Member decorators come before the member they decorate; one written at the end of a member's line belongs to the next member. Move it onto the line of (or above) the member it is meant for.",
  },
  routeVerbNotIdempotent: {
    code: "FAN0508",
    severity: W,
    message: "`{method}` has a {verb} route but is not @idempotent; HTTP clients and proxies may send a {verb} twice",
    help: "HTTP defines PUT and DELETE as idempotent, so a client may repeat one after a lost connection without asking: mark the method @idempotent if running it twice is harmless (fan's clients may then retry it too), or bind POST.",
  },
  routeParamNotInQuery: {
    code: "FAN0509",
    severity: W,
    message:
      "parameter `{param}` of `{method}` ({type}) cannot be given on its {verb} route: a query string carries only scalars and lists of them",
    help: "A GET or DELETE has no body (and a body sent with one is not read), so its parameters outside the path travel in the query string, which binds text: `?page=2`, `?tag=a&tag=b`. A struct, union, map or `json` parameter is never given there; the method runs without it. Bind POST (or PUT or PATCH) to take it from the JSON body, split it into scalar parameters, or call `POST /<package.Service>/<method>`.",
  },

  // -- 09xx: internal -------------------------------------------------------------------------
  internalError: {
    code: "FAN0999",
    severity: E,
    message: "internal compiler error here: {detail} (please report this)",
    help: "A bug in the compiler; the position shows where it happened.",
  },
} as const satisfies Record<string, DiagnosticDef>;

type Table = typeof DIAGNOSTICS;
/** The stable name of a diagnostic (`unknownType`). */
export type DiagnosticName = keyof Table;

type Placeholders<S extends string> = S extends `${string}{${infer P}}${infer Rest}` ? P | Placeholders<Rest> : never;
type ArgsOf<S extends string> = [Placeholders<S>] extends [never]
  ? []
  : [params: { readonly [K in Placeholders<S>]: string | number }];

/** Typed constructors, one per table entry: `diag.unknownType(span, { name: "Foo" })`. */
export type DiagnosticConstructors = {
  readonly [K in DiagnosticName]: (span: Span, ...args: ArgsOf<Table[K]["message"]>) => Diagnostic;
};

function fill(template: string, params: Readonly<Record<string, string | number>> | undefined): string {
  if (params === undefined) return template;
  return template.replace(/\{(\w+)\}/g, (whole, key: string) => (key in params ? String(params[key]) : whole));
}

function makeConstructors(): DiagnosticConstructors {
  const out: Record<string, (span: Span, params?: Record<string, string | number>) => Diagnostic> = {};
  for (const [name, def] of Object.entries(DIAGNOSTICS) as [string, DiagnosticDef][]) {
    out[name] = (span, params) => ({
      code: def.code,
      severity: def.severity,
      message: fill(def.message, params),
      span,
    });
  }
  return out as unknown as DiagnosticConstructors;
}

/** The constructors for every diagnostic in the table. */
export const diag: DiagnosticConstructors = makeConstructors();

/** All table entries as a list, in code order (used by the documentation test). */
export function diagnosticTable(): readonly (DiagnosticDef & { readonly name: string })[] {
  return Object.entries(DIAGNOSTICS)
    .map(([name, def]) => ({ name, ...(def as DiagnosticDef) }))
    .sort((a, b) => a.code.localeCompare(b.code));
}

/** Sort diagnostics by file, then start offset, then code (stable and deterministic). */
export function sortDiagnostics(ds: readonly Diagnostic[]): Diagnostic[] {
  return [...ds].sort(
    (a, b) =>
      (a.span.file < b.span.file ? -1 : a.span.file > b.span.file ? 1 : 0) ||
      a.span.start - b.span.start ||
      (a.code < b.code ? -1 : a.code > b.code ? 1 : 0),
  );
}

// ---------------------------------------------------------------------------------------------
// Formatting: line and column are computed here, and only here.

/** Offsets where each line starts; `\n`, `\r\n` and a lone `\r` all end a line. */
export function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) starts.push(i + 1);
    else if (c === 13) {
      if (text.charCodeAt(i + 1) === 10) i++;
      starts.push(i + 1);
    }
  }
  return starts;
}

/** 1-based line and column of an offset (tabs count as one column). */
export function lineColumn(starts: readonly number[], offset: number): { line: number; column: number } {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, column: offset - starts[lo]! + 1 };
}

function lineText(text: string, starts: readonly number[], line: number): string {
  const from = starts[line - 1] ?? text.length;
  const to = starts[line] ?? text.length;
  return text.slice(from, to).replace(/\r?\n$|\r$/, "");
}

function formatWith(d: Diagnostic, text: string, starts: readonly number[]): string {
  const offset = Math.max(0, Math.min(d.span.start, text.length));
  const { line, column } = lineColumn(starts, offset);
  const head = `${d.span.file}:${line}:${column}: ${d.severity} ${d.code}: ${d.message}`;
  const src = lineText(text, starts, line);
  // Long lines (minified or generated input) are shown as a 200-character window around the column.
  const from = src.length > 200 ? Math.max(0, Math.min(column - 1 - 80, src.length - 200)) : 0;
  const shown = src.slice(from, from + 200).replace(/[^\t\x20-\x7e\u00a0-\uffff]/g, " ");
  const at = column - 1 - from;
  const pad = shown.slice(0, at).replace(/[^\t]/g, " ");
  const width = Math.max(1, Math.min(d.span.end - offset, shown.length - at));
  const caret = "^".repeat(width);
  return `${head}\n${shown}\n${pad}${caret}`;
}

/** `file:line:col: error FAN0123: message`, the source line, and a caret under the span. */
export function formatDiagnostic(d: Diagnostic, text: string): string {
  return formatWith(d, text, lineStarts(text));
}

/** Format many diagnostics (each file's line table is computed once), separated by newlines. */
export function formatDiagnostics(
  ds: readonly Diagnostic[],
  sources: readonly { readonly path: string; readonly text: string }[],
): string {
  const texts = new Map(sources.map((s) => [s.path, s.text]));
  const starts = new Map<string, number[]>();
  const out: string[] = [];
  for (const d of ds) {
    const text = texts.get(d.span.file) ?? "";
    let s = starts.get(d.span.file);
    if (s === undefined) {
      s = lineStarts(text);
      starts.set(d.span.file, s);
    }
    out.push(formatWith(d, text, s));
  }
  return out.length === 0 ? "" : `${out.join("\n")}\n`;
}
