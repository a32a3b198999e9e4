/**
 * `@route("/store/{storeId}/item/{inventoryId}")` paths: matching a request path against the
 * served routes and binding path and query parameters to the method's input.
 *
 * A route answers GET (and HEAD/DELETE, which have no body) with its parameters taken from the
 * path and the query string, and POST/PUT/PATCH with a JSON body whose keys the path
 * parameters override. Path and query values are text; they are converted to the parameter's
 * IDL type where that is unambiguous (numbers, booleans), and left as text otherwise, for the
 * App's decoders to accept or reject with INVALID_ARGUMENT.
 */
import type { MethodDescriptor } from "../../descriptor.js";
import type { Schema, StructSchema } from "../../codec/schema.js";

/** Names never bound from a path or query (they would pollute prototypes). */
const FORBIDDEN: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/** One compiled route of one method. */
export interface Route {
  readonly service: string;
  readonly method: MethodDescriptor;
  readonly segments: readonly Segment[];
}

type Segment = { readonly literal: string } | { readonly param: string };

/** A matched route with its path parameters (decoded, still text). */
export interface RouteMatch {
  readonly route: Route;
  readonly params: Readonly<Record<string, string>>;
}

/** Compiles a method's `@route` path into segments. */
export function compileRoute(
  service: string,
  method: MethodDescriptor & { route: NonNullable<MethodDescriptor["route"]> },
): Route {
  const segments = splitPath(method.route.path).map((s): Segment => {
    const m = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(s);
    return m === null ? { literal: s } : { param: m[1] as string };
  });
  return { service, method, segments };
}

/** Splits a path into its non-empty segments (no decoding). */
export function splitPath(path: string): string[] {
  return path.split("/").filter((s) => s.length > 0);
}

/** Finds the first route matching the (raw, percent-encoded) path segments. */
export function matchRoute(routes: readonly Route[], rawSegments: readonly string[]): RouteMatch | undefined {
  outer: for (const route of routes) {
    if (route.segments.length !== rawSegments.length) continue;
    const params: Record<string, string> = {};
    for (let i = 0; i < route.segments.length; i++) {
      const seg = route.segments[i] as Segment;
      const raw = rawSegments[i] as string;
      if ("literal" in seg) {
        if (seg.literal !== raw) continue outer;
      } else {
        const value = safeDecode(raw);
        if (value === undefined) continue outer;
        params[seg.param] = value;
      }
    }
    return { route, params };
  }
  return undefined;
}

/** `decodeURIComponent` that returns undefined instead of throwing on bad escapes. */
export function safeDecode(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/** True when two routes would match the same paths (same shape, same literals). */
export function sameShape(a: Route, b: Route): boolean {
  if (a.segments.length !== b.segments.length) return false;
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
