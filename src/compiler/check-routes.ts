/**
 * `@route("VERB /path/{param}")`: the HTTP verb and path on which the http transport and the
 * gateway serve a method. Checked for what a user mapping a REST API expects: a verb HTTP
 * knows, GET only on a method that is safe to repeat, every required parameter reachable when
 * the verb has no body, and one method per verb and path in a service.
 *
 * `@route("/path")` without a verb keeps its meaning: GET for an `@idempotent` rpc, POST
 * otherwise.
 */
import type * as A from "./ast.js";
import type { Checker } from "./check-context.js";
import { isScalar, typeText } from "./check-types.js";
import { argString } from "./decorators.js";
import { diag } from "./diagnostics.js";
import type { FieldModel, MethodModel, RouteVerb, TypeModel } from "./model.js";
import { closest, hintText } from "./suggest.js";

/** The verbs a route may name, in the order an `Allow` header lists them. */
export const ROUTE_VERBS: readonly RouteVerb[] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/** Verbs whose requests have no body: parameters travel in the path and the query string. */
const BODYLESS: ReadonlySet<RouteVerb> = new Set(["GET", "DELETE"]);

/** Verbs HTTP defines as idempotent, other than GET: clients and proxies may send them again. */
const REPEATABLE: ReadonlySet<RouteVerb> = new Set(["PUT", "DELETE"]);

/** Why a verb a route may not name is refused, beyond "unknown". */
const NOT_BINDABLE: Readonly<Record<string, string>> = {
  HEAD: "; every GET route answers HEAD",
  OPTIONS: "; OPTIONS is answered by the gateway's CORS preflight",
};

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The verb of a route written without one: GET for an `@idempotent` rpc, POST otherwise. */
export function defaultRouteVerb(kind: MethodModel["kind"], idempotent: boolean): RouteVerb {
  return kind === "rpc" && idempotent ? "GET" : "POST";
}

/** The method a `@route` is on, as far as its route is concerned. */
export interface RouteOwner {
  readonly name: string;
  readonly kind: MethodModel["kind"];
  readonly idempotent: boolean;
  readonly params: readonly FieldModel[];
  /**
   * Every parameter name as written, with those whose type did not resolve: they are not in
   * `params`, but a route naming one is not wrong about it (its FAN0101 says what is).
   */
  readonly written?: readonly string[];
}

/** The routes of one service so far: `VERB /shape` → the method that has it. */
export type RouteClaims = Map<string, string>;

/**
 * Check a method's `@route` and claim its verb and path in `claims` (one service's routes).
 * Returns the route, or undefined when it has an error.
 */
export function checkRoute(c: Checker, d: A.Decorator, owner: RouteOwner, claims: RouteClaims): MethodModel["route"] {
  const s = argString(d, c.out);
  if (s === undefined) return undefined;
  const { written, path } = splitRoute(s.value);
  const names = routeParams(path);
  if (!Array.isArray(names)) {
    c.out.push(diag.invalidRoute(s.span, { path: s.value, reason: names.reason }));
    return undefined;
  }
  let ok = pathParamsOk(c, s, names, owner);
  const verb = written === undefined ? defaultRouteVerb(owner.kind, owner.idempotent) : verbOf(written);
  // What the verb's diagnostics point at: the verb itself (a quick fix replaces it with the hint).
  const at = verbSpan(c, s, written);
  if (verb === undefined) {
    const text = written ?? "";
    // A did-you-mean is applied in place of the span by a quick fix: only when that is the verb.
    const onVerb = at !== s.span;
    const hint = Object.hasOwn(NOT_BINDABLE, text)
      ? NOT_BINDABLE[text]
      : onVerb
        ? hintText(closest(text, ROUTE_VERBS))
        : undefined;
    c.out.push(diag.unknownRouteVerb(at, { verb: text, hint: hint ?? "" }));
    return undefined;
  }
  if (verb === "GET" && !owner.idempotent) {
    c.out.push(diag.getRouteNotIdempotent(at, { method: owner.name }));
    ok = false;
  } else if (REPEATABLE.has(verb) && !owner.idempotent) {
    c.out.push(diag.routeVerbNotIdempotent(at, { verb, method: owner.name }));
  }
  if (BODYLESS.has(verb)) ok = bodylessParamsOk(c, s, verb, names, owner) && ok;
  if (!ok) return undefined;
  const key = `${verb} ${routeShape(path)}`;
  const other = claims.get(key);
  if (other !== undefined) {
    c.out.push(diag.routeConflict(s.span, { verb, path, method: owner.name, other }));
    return undefined;
  }
  claims.set(key, owner.name);
  return { verb, path, params: names };
}

/**
 * `"DELETE /items/{id}"` → the verb as written and the path; `"/items"` has no verb. Spaces
 * only between them, as in an HTTP request line (and as the editor grammar scopes the verb).
 */
function splitRoute(text: string): { written: string | undefined; path: string } {
  const m = /^([A-Za-z]+) +(.*)$/s.exec(text);
  return m === null ? { written: undefined, path: text } : { written: m[1] as string, path: m[2] as string };
}

/**
 * The span of the verb written at the start of the string, just after its quote, read from the
 * source (an escape later in the literal does not move it); the whole string when there is no
 * verb or the verb itself is written with an escape (`"g\u0065t /x"`).
 */
function verbSpan(c: Checker, s: A.StringLit, written: string | undefined): A.Span {
  if (written === undefined) return s.span;
  const start = s.span.start + 1;
  const source = c.scopes.get(s.span.file)?.file.text;
  if (source?.slice(start, start + written.length) !== written) return s.span;
  return { file: s.span.file, start, end: start + written.length };
}

function verbOf(text: string): RouteVerb | undefined {
  return (ROUTE_VERBS as readonly string[]).includes(text) ? (text as RouteVerb) : undefined;
}

/**
 * A path's segments with each `{param}` as `{}`: two routes of one shape match the same
 * requests whatever their parameters are called. Empty segments do not count (`/a//b/` is
 * `/a/b`), as the servers split paths.
 */
export function routeShape(path: string): string {
  return `/${path
    .split("/")
    .filter((x) => x.length > 0)
    .map((x) => (x.startsWith("{") ? "{}" : x))
    .join("/")}`;
}

/** The parameters named in a route path, or a reason the path is malformed. */
function routeParams(path: string): string[] | { reason: string } {
  if (!path.startsWith("/")) return { reason: "a route is `/path` or `VERB /path`" };
  if (/[?#]/.test(path)) return { reason: "a route has no query string or fragment" };
  const names: string[] = [];
  for (const segment of path.split("/")) {
    const braces = /[{}]/.test(segment);
    if (!braces) continue;
    const m = /^\{([^{}]*)\}$/.exec(segment);
    if (m === null) {
      const inner = /\{([^{}]*)\}/.exec(segment);
      if (inner === null) return { reason: "unbalanced `{` or `}`" };
      return { reason: `\`{${inner[1]}}\` must be a whole path segment, as in \`/items/{${inner[1]}}\`` };
    }
    const name = m[1] as string;
    if (!PARAM_NAME.test(name)) return { reason: `\`{${name}}\` is not a parameter name` };
    if (names.includes(name)) return { reason: `\`{${name}}\` appears twice` };
    names.push(name);
  }
  return names;
}

/** Each `{param}` names a required scalar parameter of the method. */
function pathParamsOk(c: Checker, s: A.StringLit, names: readonly string[], owner: RouteOwner): boolean {
  let ok = true;
  for (const name of names) {
    const p = owner.params.find((x) => x.name === name);
    if (p === undefined) {
      if (!owner.written?.includes(name))
        c.out.push(diag.routeUnknownParam(s.span, { param: name, method: owner.name }));
      ok = false;
      continue;
    }
    const problem = p.optional
      ? `path parameter \`${name}\` is optional`
      : isScalar(p.type)
        ? undefined
        : `path parameter \`${name}\` has type ${typeText(p.type)}, not a scalar`;
    if (problem !== undefined) {
      c.out.push(diag.invalidRoute(s.span, { path: s.value, reason: problem }));
      ok = false;
    }
  }
  return ok;
}

/**
 * A GET or DELETE carries no body, so every required parameter must be in the path. Optional
 * and defaulted parameters may travel in the query string, as far as text can carry them: a
 * struct, union, map or `json` there could never be given (FAN0509, a warning: the route works
 * without it).
 */
function bodylessParamsOk(
  c: Checker,
  s: A.StringLit,
  verb: RouteVerb,
  names: readonly string[],
  owner: RouteOwner,
): boolean {
  let ok = true;
  for (const p of owner.params) {
    if (names.includes(p.name)) continue;
    if (!p.optional && p.default === undefined) {
      c.out.push(diag.routeMissingParam(s.span, { param: p.name, method: owner.name, verb, fix: bodylessFix(p) }));
      ok = false;
    } else if (!queryCarries(p.type)) {
      c.out.push(
        diag.routeParamNotInQuery(s.span, { param: p.name, method: owner.name, verb, type: typeText(p.type) }),
      );
    }
  }
  return ok;
}

/** How a required parameter a body-less route does not bind can be given (FAN0315). */
function bodylessFix(p: FieldModel): string {
  const type = typeText(p.type);
  if (!queryCarries(p.type))
    return `a query string cannot carry a ${type} either; bind POST, PUT or PATCH to take it from the JSON body`;
  const path = isScalar(p.type) ? `, or put \`{${p.name}}\` in the path` : "";
  return `make it optional (\`${p.name}?: ${type}\`) or give it a default (\`${p.name}: ${type} = ...\`), and it travels in the query string (\`?${p.name}=...\`)${path}`;
}

/**
 * Whether a query string can carry a value of this type: the servers bind `?k=v` as text
 * (numbers and booleans converted) and a repeated key as a list (routes.ts `bindParams`).
 */
function queryCarries(t: TypeModel): boolean {
  if (t.kind === "list") return t.element.kind !== "list" && queryCarries(t.element);
  if (t.kind === "ref") return t.declKind === "enum";
  return t.kind === "primitive" && t.name !== "json";
}
