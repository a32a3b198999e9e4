/**
 * `@route("VERB /store/{storeId}/item/{inventoryId}")` paths: finding the route a request's
 * verb and path address, and binding path and query parameters to the method's input. The
 * http transport and the gateway both route with this file, so they answer alike.
 *
 * A route answers its one verb (a GET route HEAD too); another verb on its path is a 405
 * whose `Allow` lists the verbs the path takes. GET, HEAD and DELETE take their parameters
 * from the path and the query string; POST, PUT and PATCH from a JSON body whose keys the path
 * parameters override. Path and query values are text; they are converted to the parameter's
 * IDL type where that is unambiguous (numbers, booleans), and left as text otherwise, for the
 * App's decoders to accept or reject with INVALID_ARGUMENT.
 */
import type { MethodDescriptor } from "../../descriptor.js";
import type { Schema, StructSchema } from "../../codec/schema.js";

/** Names never bound from a path or query (they would pollute prototypes). */
const FORBIDDEN: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/** A verb a route is bound to. */
export type RouteVerb = NonNullable<NonNullable<MethodDescriptor["route"]>["verb"]>;

/** How an `Allow` header lists verbs. */
const ALLOW_ORDER: readonly string[] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/** One compiled route of one method. */
export interface Route {
  readonly service: string;
  readonly method: MethodDescriptor;
  readonly verb: RouteVerb;
  readonly segments: readonly Segment[];
}

type Segment = { readonly literal: string } | { readonly param: string };

/** A matched route with its path parameters (decoded, still text). */
export interface RouteMatch {
  readonly route: Route;
  readonly params: Readonly<Record<string, string>>;
}

/**
 * What a request finds: the route of its verb and path; or, when routes have the path but
 * none the verb, the `Allow` header of a 405; or undefined when no route has the path.
 */
export type RouteLookup = { readonly match: RouteMatch } | { readonly allow: string } | undefined;

/** The verb a method's route is served on: as the IDL wrote it, else GET for an `@idempotent` rpc and POST otherwise. */
export function routeVerb(method: MethodDescriptor): RouteVerb {
  return method.route?.verb ?? (method.kind === "rpc" && method.idempotent ? "GET" : "POST");
}

/** True for the verbs that carry no body: parameters come from the path and the query string. */
export function isBodyless(verb: string): boolean {
  return verb === "GET" || verb === "HEAD" || verb === "DELETE";
}

/** Compiles a method's `@route` into its verb and path segments. */
export function compileRoute(
  service: string,
  method: MethodDescriptor & { route: NonNullable<MethodDescriptor["route"]> },
): Route {
  const segments = splitPath(method.route.path).map((s): Segment => {
    const m = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(s);
    return m === null ? { literal: s } : { param: m[1] as string };
  });
  return { service, method, verb: routeVerb(method), segments };
}

/** Splits a path into its non-empty segments (no decoding). */
export function splitPath(path: string): string[] {
  return path.split("/").filter((s) => s.length > 0);
}

/**
 * Finds the route of `verb` (HEAD: a GET route) on the (raw, percent-encoded) path segments.
 * Where routes of one verb match alike (`/items/search`, `/items/{id}`), the one with a
 * literal segment where the other has a parameter wins, whatever their order.
 */
export function lookupRoute(routes: readonly Route[], verb: string, rawSegments: readonly string[]): RouteLookup {
  const wanted = verb === "HEAD" ? "GET" : verb;
  let best: RouteMatch | undefined;
  let others: Set<string> | undefined; // made only when a route of another verb has the path
  for (const route of routes) {
    // Once the verb has a match, routes of other verbs no longer matter (no 405 to list them in).
    if (route.verb !== wanted && best !== undefined) continue;
    const params = matchSegments(route, rawSegments);
    if (params === undefined) continue;
    if (route.verb !== wanted) {
      others ??= new Set();
      others.add(route.verb);
    } else if (best === undefined || moreSpecific(route, best.route)) best = { route, params };
  }
  if (best !== undefined) return { match: best };
  return others === undefined ? undefined : { allow: allowOf(others) };
}

/** The path parameters when `route` matches the raw segments, else undefined. */
function matchSegments(route: Route, rawSegments: readonly string[]): Record<string, string> | undefined {
  if (route.segments.length !== rawSegments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < route.segments.length; i++) {
    const seg = route.segments[i] as Segment;
    const raw = rawSegments[i] as string;
    if ("literal" in seg) {
      if (seg.literal !== raw) return undefined;
    } else {
      const value = safeDecode(raw);
      if (value === undefined) return undefined;
      params[seg.param] = value;
    }
  }
  return params;
}

/** True when `a` has a literal segment at the first place where it and `b` differ in kind. */
function moreSpecific(a: Route, b: Route): boolean {
  for (let i = 0; i < a.segments.length; i++) {
    const x = "literal" in (a.segments[i] as Segment);
    const y = "literal" in (b.segments[i] as Segment);
    if (x !== y) return x;
  }
  return false;
}

/** An `Allow` header of these verbs: HEAD with GET, in the usual order. */
export function allowOf(verbs: Iterable<string>): string {
  const set = new Set(verbs);
  if (set.has("GET")) set.add("HEAD");
  return ALLOW_ORDER.filter((v) => set.has(v)).join(", ");
}

/** `decodeURIComponent` that returns undefined instead of throwing on bad escapes. */
export function safeDecode(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/**
 * Why a request's path (raw segments) or query string (without `?`) does not decode, naming
 * the first part whose percent-encoding is malformed (`the path segment "getItem%ZZ"`), or
 * undefined when all do: the gateway and the http transport answer it 400. `URLSearchParams`
 * would read a bad escape as text and `decodeURIComponent` throw on it: both are refused
 * before either runs.
 */
export function undecodable(raw: readonly string[], search: string | undefined): string | undefined {
  const bad = badPart(raw, search);
  return bad === undefined
    ? undefined
    : `malformed percent-encoding in ${bad}: a % must start an escape of two hex digits, and the escapes must spell UTF-8`;
}

function badPart(raw: readonly string[], search: string | undefined): string | undefined {
  for (const s of raw) if (safeDecode(s) === undefined) return `the path segment ${JSON.stringify(s)}`;
  if (search === undefined) return undefined;
  for (const pair of search.split("&"))
    for (const part of pair.split("="))
      if (safeDecode(part.replaceAll("+", " ")) === undefined) return `the query string part ${JSON.stringify(part)}`;
  return undefined;
}

/** True when two routes answer the same requests (same verb, same shape, same literals). */
export function sameRoute(a: Route, b: Route): boolean {
  if (a.verb !== b.verb || a.segments.length !== b.segments.length) return false;
  return a.segments.every((s, i) => {
    const t = b.segments[i] as Segment;
    return "literal" in s ? "literal" in t && s.literal === t.literal : "param" in t;
  });
}

/**
 * Binds text parameters (path, then query when `query` is given) onto `body`, converting each
 * to its field's type. Unknown query keys are ignored; repeated keys keep the last value
 * unless the field is a list.
 */
export function bindParams(
  input: StructSchema,
  body: Record<string, unknown>,
  params: Readonly<Record<string, string>>,
  query?: URLSearchParams,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...body };
  const fields = new Map(input.fields.filter((f) => !FORBIDDEN.has(f.name)).map((f) => [f.name, f.schema]));
  if (query !== undefined) {
    for (const key of new Set(query.keys())) {
      const schema = fields.get(key);
      if (schema === undefined) continue;
      const values = query.getAll(key);
      const s = resolve(schema);
      out[key] =
        s.kind === "list" ? values.map((v) => fromText(s.of, v)) : fromText(s, values[values.length - 1] as string);
    }
  }
  for (const [key, text] of Object.entries(params)) {
    const schema = fields.get(key);
    if (schema !== undefined) out[key] = fromText(schema, text);
  }
  return out;
}

function resolve(schema: Schema): Schema {
  let s = schema;
  for (let i = 0; s.kind === "ref" && i < 32; i++) s = s.get();
  return s;
}

/** Text → wire value for a field type: numbers and booleans convert, everything else stays text. */
function fromText(schema: Schema, text: string): unknown {
  const s = resolve(schema);
  switch (s.kind) {
    case "int":
    case "float":
    case "duration": {
      const n = Number(text);
      return text.trim() !== "" && Number.isFinite(n) ? n : text;
    }
    case "bool":
      return text === "true" ? true : text === "false" ? false : text;
    default:
      return text;
  }
}
