/**
 * Failure plumbing shared by the compiled codec closures.
 *
 * The closures never build path strings while a value is valid: a failure throws a `Fail`,
 * and each container on the way up appends its own segment (field, index or map key). The
 * public `codec()` turns the `Fail` into `FanError(INVALID_ARGUMENT)` with the formatted path.
 */
import { Code, FanError } from "../errors.js";

/** One step of a field path: a field or JSON key (string), a list index, or a map key. */
export type Seg = string | number | { readonly key: string };

/** Internal failure; segments are collected innermost first. */
export class Fail {
  readonly segs: Seg[] = [];
  constructor(readonly reason: string) {}
}

/** Throws a `Fail` with `reason` (the "expected ..." text). */
export function fail(reason: string): never {
  throw new Fail(reason);
}

/** Appends `seg` to a bubbling `Fail` (other errors pass through) and returns it for rethrow. */
export function at(e: unknown, seg: Seg): unknown {
  if (e instanceof Fail) e.segs.push(seg);
  return e;
}

/** Keys that are rejected anywhere in a value: they pollute prototypes when copied. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/**
 * True when `o` has an own forbidden key. Fast path for plain objects: reading the three names
 * gives the inherited values unless an own key shadows them (an own key holding exactly the
 * inherited value is harmless and only code, never JSON, can make one); anything else gets
 * the three own-property probes.
 */
export function hasForbiddenKey(o: object): boolean {
  const r = o as { constructor?: unknown; prototype?: unknown; __proto__?: unknown };
  // biome-ignore lint/suspicious/noProto: reading __proto__ is how an own "__proto__" key shows itself cheaply.
  if (r.constructor === Object && r.prototype === undefined && r.__proto__ === Object.prototype) return false;
  return Object.hasOwn(o, "__proto__") || Object.hasOwn(o, "constructor") || Object.hasOwn(o, "prototype");
}

/** Fails when `o` has an own forbidden key. */
export function rejectForbidden(o: object): void {
  if (!hasForbiddenKey(o)) return;
  for (const k of FORBIDDEN_KEYS) if (Object.hasOwn(o, k)) fail(`key "${k}" is not allowed`);
}

/** The failure for nesting past the bound. */
export function failDepth(maxDepth: number): never {
  fail(`nesting deeper than ${maxDepth} levels (or a cycle)`);
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Formats segments (innermost first) under `root`: `wine.tags[3]`, `stock["x"]`. */
export function formatPath(root: string, segs: readonly Seg[]): string {
  let out = root;
  for (let i = segs.length - 1; i >= 0; i--) {
    const s = segs[i] as Seg;
    if (typeof s === "number") out += `[${s}]`;
    else if (typeof s === "string" && IDENT.test(s) && !FORBIDDEN_KEYS.has(s)) out += out === "" ? s : `.${s}`;
    else out += `[${JSON.stringify(clip(typeof s === "string" ? s : s.key, 60))}]`;
  }
  return out;
}

/** A short description of a value for messages: `number 1.5`, `string "abc"`, `null`. */
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "undefined";
  switch (typeof v) {
    case "string":
      return `string ${JSON.stringify(clip(v, 40))}`;
    case "number":
    case "boolean":
      return `${typeof v} ${String(v)}`;
    case "bigint":
      return `bigint ${clip(String(v), 40)}n`;
    case "function":
      return "a function";
    case "symbol":
      return "a symbol";
    default:
      return describeObject(v as object);
  }
}

function describeObject(o: object): string {
  if (Array.isArray(o)) return `an array of ${o.length}`;
  if (o instanceof Date) return "a Date";
  if (o instanceof Uint8Array) return "a Uint8Array";
  const proto: unknown = Object.getPrototypeOf(o);
  if (proto === Object.prototype || proto === null) return "an object";
  const name = (proto as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === "string" && name !== "" ? `an instance of ${name}` : "an object";
}

function clip(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n)}…`;
}

/**
 * A refusal's message without the value it quotes (everything from ", got "), for a value that
 * must not be logged: a config entry marked `@secret`.
 */
export function withoutValue(message: string): string {
  const at = message.indexOf(", got ");
  return `${at < 0 ? message : message.slice(0, at)} (the value is @secret: not shown)`;
}

/** Converts a `Fail` into the public error; anything else is rethrown unchanged. */
export function toFanError(e: unknown, root: string | undefined): unknown {
  if (!(e instanceof Fail)) return e;
  const path = formatPath(root ?? "", e.segs);
  return new FanError(Code.INVALID_ARGUMENT, `${path === "" ? "value" : path}: ${e.reason}`, { details: { path } });
}

/**
 * The codec's refusal of a request, its message naming the method it was for: `customerId:
 * missing required field of type string, in a request to retail.orders.Orders.place`. The path
 * stays first and `details` as they were; any other error is returned unchanged.
 */
export function inRequest(e: unknown, method: string): unknown {
  if (!FanError.is(e) || e.code !== Code.INVALID_ARGUMENT) return e;
  const message = `${e.message}, in a request to ${method}`;
  return new FanError(Code.INVALID_ARGUMENT, message, e.details === undefined ? undefined : { details: e.details });
}

/** A schema that cannot be compiled is a bug in generated or hand-written code, not bad input. */
export function schemaError(message: string): FanError {
  return new FanError(Code.INTERNAL, `invalid schema: ${message}`);
}
