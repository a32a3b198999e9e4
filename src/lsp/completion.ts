/**
 * Completion, from the text before the cursor and the last check of the program: decorators
 * valid where the cursor is (with their arguments as a snippet), the verbs right after
 * `@route("` and `{param}` names inside one, members of an imported package after `alias.`,
 * events after `on Service.`, services after `on`/`depends`, packages after `import`, and
 * otherwise the types in scope (built-ins, this package's declarations, imported packages)
 * and the keywords of the block.
 */
import { type CompletionItem, CompletionItemKind, InsertTextFormat } from "vscode-languageserver";
import { ROUTE_VERBS } from "../compiler/check-routes.js";
import { BUILTIN_TYPE_NAMES } from "../compiler/check-types.js";
import { DECORATOR_TARGETS, type Target } from "../compiler/decorators.js";
import type { RouteVerb } from "../compiler/model.js";
import type { DeclEntry } from "../compiler/scope.js";
import type { Analysis } from "./analysis.js";
import { DECORATOR_INFO, exampleOf, snippetOf } from "./decorator-info.js";

/** The block the cursor is in. */
type Block = "top" | "struct" | "enum" | "union" | "error" | "service" | "config" | "params" | "other";

const BLOCK_TARGETS: Readonly<Record<Block, readonly Target[]>> = {
  top: ["struct", "enum", "union", "error", "service"],
  struct: ["field"],
  error: ["field"],
  enum: ["enumMember"],
  union: ["unionMember"],
  config: ["configField"],
  params: ["field"],
  service: ["rpc", "push", "event", "state", "depends", "config", "on"],
  other: [],
};

const KEYWORDS: Readonly<Partial<Record<Block, readonly string[]>>> = {
  top: ["package", "import", "version", "struct", "enum", "union", "error", "service"],
  service: ["rpc", "push", "event", "state", "depends", "config", "on"],
};

const DECL_KIND: Readonly<Record<string, CompletionItemKind>> = {
  Struct: CompletionItemKind.Struct,
  Enum: CompletionItemKind.Enum,
  Union: CompletionItemKind.Class,
  Error: CompletionItemKind.Class,
  Service: CompletionItemKind.Interface,
};

/** Completion items at `offset` of `path` whose current text is `text`. */
export function completionsAt(a: Analysis, path: string, text: string, offset: number): CompletionItem[] {
  const before = text.slice(Math.max(0, text.lastIndexOf("\n", offset - 1) + 1), offset);
  const route = /@route\(\s*"[^"]*\{(\w*)$/.exec(before);
  if (route !== null) return routeParams(text.slice(offset));
  if (/@route\(\s*"[A-Za-z]*$/.test(before)) return routeVerbs();
  const dec = /@(\w*)$/.exec(before);
  if (dec !== null) return decorators(blockAt(text, offset), before, text.slice(offset));
  const scope = a.scopes.get(path);
  if (/\bimport\s+[\w.]*$/.test(before))
    return [...a.packages.keys()].map((p) => ({ label: p, kind: CompletionItemKind.Module }));
  const qualified = /([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.(\w*)$/.exec(before);
  const onLine = /\bon\s+[\w.]*$/.test(before);
  if (qualified !== null) return memberItems(a, path, qualified[1]!, onLine);
  if (onLine || /\bdepends\s+(?:soft\s+)?\w*$/.test(before)) return services(a, path);
  const block = blockAt(text, offset);
  const typePosition = /[:<,]\s*\w*$/.test(before) || /\bthrows\s+[\w.,\s]*$/.test(before);
  const errorsOnly = /\bthrows\s+[\w.,\s]*$/.test(before);
  const items: CompletionItem[] = [];
  if (typePosition || block === "params") items.push(...types(a, path, errorsOnly));
  if (!typePosition) for (const k of KEYWORDS[block] ?? []) items.push({ label: k, kind: CompletionItemKind.Keyword });
  if (scope === undefined && items.length === 0) return [];
  return items;
}

const SERVICE_MEMBER = /\b(rpc|push|event|state|depends|config|on)\b/;
/** Blanks, comments and decorators (strings in their arguments emptied), up to a member's keyword. */
const DECORATORS_THEN_MEMBER = /^(?:\s|@\w*(?:\([^()]*\))?|\/\/[^\n]*)*(rpc|push|event|state|depends|config|on)\b/;

/**
 * The decorators allowed at an `@` in `block`. In a service, the member they belong to is the
 * one on the cursor's line, else the one that follows the decorators after the cursor (`@` on
 * its own line above an `rpc`); with neither, every member's.
 */
function decorators(block: Block, before: string, after: string): CompletionItem[] {
  let targets = BLOCK_TARGETS[block];
  if (block === "service") {
    const blank = (s: string) => s.replace(/"[^"\n]*"/g, '""');
    const line = blank(before + after.slice(0, after.indexOf("\n") >>> 0)).replace(/\/\/.*/, "");
    const next = blank(after.slice(0, 2000).replace(/^\w*/, ""));
    const member = SERVICE_MEMBER.exec(line) ?? DECORATORS_THEN_MEMBER.exec(next);
    if (member !== null) targets = [member[1] as Target];
  }
  return Object.entries(DECORATOR_TARGETS)
    .filter(([, allowed]) => allowed.some((t) => targets.includes(t)))
    .map(([name]) => {
      const info = DECORATOR_INFO[name];
      return {
        label: `@${name}`,
        filterText: name,
        kind: CompletionItemKind.Property,
        detail: exampleOf(name, info),
        documentation: info?.doc,
        insertText: snippetOf(name, info),
        insertTextFormat: InsertTextFormat.Snippet,
      };
    });
}

/** What each verb of a route means, for `@route("` completion. */
const VERB_DETAIL: Readonly<Record<RouteVerb, string>> = {
  GET: "read: needs @idempotent; parameters in the path and query string",
  POST: "any method; parameters in the JSON body and the path",
  PUT: "replace (idempotent in HTTP); parameters in the JSON body and the path",
  PATCH: "update; parameters in the JSON body and the path",
  DELETE: "delete (idempotent in HTTP); parameters in the path and query string",
};

/** The verbs a route may start with, right after `@route("`. */
function routeVerbs(): CompletionItem[] {
  return ROUTE_VERBS.map((verb, i) => ({
    label: verb,
    kind: CompletionItemKind.EnumMember,
    detail: VERB_DETAIL[verb],
    insertText: `${verb} /`,
    sortText: String(i),
  }));
}

/** The parameter names of the rpc or push declared after the cursor (the one the `@route` is on). */
function routeParams(after: string): CompletionItem[] {
  const m = /\b(?:rpc|push)\s+\w+\s*\(([^)]*)\)/.exec(after);
  if (m === null) return [];
  const names = [...m[1]!.matchAll(/(?:^|[,\n(])\s*(?:\/\/\/[^\n]*\n\s*)*([A-Za-z_]\w*)\s*\??\s*:/g)].map((x) => x[1]!);
  return names.map((n) => ({ label: n, kind: CompletionItemKind.Variable, detail: "route parameter" }));
}

function entryItem(e: DeclEntry, label: string): CompletionItem {
  return {
    label,
    kind: DECL_KIND[e.decl.kind] ?? CompletionItemKind.Reference,
    detail: `${e.decl.kind.toLowerCase()} ${e.fullName}`,
    ...(e.decl.doc === undefined ? {} : { documentation: e.decl.doc }),
  };
}

/** After `q.`: the declarations of the package `q` names, or the events of the service it names (`on`). */
function memberItems(a: Analysis, path: string, q: string, onLine: boolean): CompletionItem[] {
  const scope = a.scopes.get(path);
  const bound = scope?.imports.get(q);
  const pkgName = typeof bound === "string" ? bound : a.packages.has(q) ? q : undefined;
  if (onLine) {
    const svc = serviceNamed(a, path, q);
    if (svc !== undefined && svc.decl.kind === "Service")
      return svc.decl.members.flatMap((m) =>
        m.kind === "Event"
          ? [{ label: m.name.name, kind: CompletionItemKind.Event, detail: `event of ${svc.fullName}` }]
          : [],
      );
  }
  const pkg = pkgName === undefined ? undefined : a.packages.get(pkgName);
  if (pkg === undefined) return [];
  return [...pkg.decls.values()].map((e) => entryItem(e, e.decl.name.name));
}

function serviceNamed(a: Analysis, path: string, q: string): DeclEntry | undefined {
  const scope = a.scopes.get(path);
  if (scope === undefined) return undefined;
  const dot = q.lastIndexOf(".");
  if (dot < 0) return scope.pkg.decls.get(q);
  const qual = q.slice(0, dot);
  const bound = scope.imports.get(qual);
  const pkg = typeof bound === "string" ? bound : qual;
  return a.packages.get(pkg)?.decls.get(q.slice(dot + 1));
}

function services(a: Analysis, path: string): CompletionItem[] {
  const scope = a.scopes.get(path);
  if (scope === undefined) return [];
  const out = [...scope.pkg.decls.values()]
    .filter((e) => e.decl.kind === "Service")
    .map((e) => entryItem(e, e.decl.name.name));
  for (const [alias, target] of scope.imports) {
    if (typeof target !== "string") continue;
    for (const e of a.packages.get(target)?.decls.values() ?? [])
      if (e.decl.kind === "Service") out.push(entryItem(e, `${alias}.${e.decl.name.name}`));
  }
  return out;
}

function types(a: Analysis, path: string, errorsOnly: boolean): CompletionItem[] {
  const scope = a.scopes.get(path);
  const out: CompletionItem[] = [];
  if (!errorsOnly)
    for (const b of BUILTIN_TYPE_NAMES)
      out.push({ label: b, kind: CompletionItemKind.TypeParameter, detail: "built-in type" });
  const wanted = (e: DeclEntry): boolean => (errorsOnly ? e.decl.kind === "Error" : e.decl.kind !== "Service");
  if (scope === undefined) return out;
  for (const e of scope.pkg.decls.values()) if (wanted(e)) out.push(entryItem(e, e.decl.name.name));
  for (const [alias, target] of scope.imports)
    if (typeof target === "string")
      out.push({ label: alias, kind: CompletionItemKind.Module, detail: `package ${target}` });
  return out;
}

/** The innermost block around `offset`, by a scan that skips strings and comments. */
export function blockAt(text: string, offset: number): Block {
  const stack: Block[] = [];
  let lastKeyword: Block | undefined;
  let word = "";
  let prevWord = "";
  for (let i = 0; i < offset; i++) {
    const c = text[i]!;
    if (c === '"') {
      const end = text.indexOf('"', i + 1);
      i = end < 0 || end >= offset ? offset : end;
      continue;
    }
    if (c === "/" && text[i + 1] === "/") {
      const end = text.indexOf("\n", i);
      i = end < 0 ? offset : end;
      continue;
    }
    if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? offset : end + 1;
      continue;
    }
    if (/\w/.test(c)) {
      word += c;
      continue;
    }
    if (word !== "") {
      if (["struct", "enum", "union", "error", "service", "config"].includes(word) && prevWord !== "@")
        lastKeyword = word as Block;
      prevWord = word;
      word = "";
    }
    if (c === "@") prevWord = "@";
    if (c === "{") {
      stack.push(lastKeyword ?? "other");
      lastKeyword = undefined;
    } else if (c === "(")
      stack.push(prevWord === "@" || /@\w+$/.test(text.slice(Math.max(0, i - 40), i)) ? "other" : "params");
    else if (c === "}" || c === ")") stack.pop();
  }
  return stack[stack.length - 1] ?? "top";
}
