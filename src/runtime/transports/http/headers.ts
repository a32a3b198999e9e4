/**
 * Envelope headers ⇄ HTTP headers, for requests and responses alike.
 *
 * - `traceparent` and `tracestate` keep their W3C names;
 * - the runtime's own headers become `fan-deadline`, `fan-ttl`, `fan-reply-to`, `fan-shard`,
 *   `fan-shard-fallback`, `fan-attempt` (numbers where the envelope has numbers);
 * - a custom header whose name is a lowercase token and whose value is a printable ASCII
 *   string becomes `fan-h-<name>` (so `curl -H 'fan-h-tenant: acme'` works);
 * - anything else (mixed-case names, numbers, non-ASCII text) travels in one `fan-headers`
 *   JSON object, so every header arrives intact, name, type and value.
 *
 * `fan-timeout` (relative ms) is accepted from callers that cannot compute an absolute deadline,
 * and the standard `Authorization` header as the envelope's `authorization` (what `@auth`
 * verifiers read, `call.headers.authorization`) from callers that send credentials the way
 * every HTTP client does; a `fan-h-authorization` (or one in `fan-headers`) wins over it.
 */
import type { IncomingHttpHeaders } from "node:http";
import { FanError } from "../../errors.js";
import type { EnvelopeHeaders } from "../transport.js";
import { parseJson } from "../../codec/wire.js";

/** Envelope header name → HTTP header name, for the runtime's own headers. */
const KNOWN: ReadonlyMap<string, string> = new Map([
  ["traceparent", "traceparent"],
  ["tracestate", "tracestate"],
  ["deadline", "fan-deadline"],
  ["ttl", "fan-ttl"],
  ["replyTo", "fan-reply-to"],
  ["shard", "fan-shard"],
  ["shardFallback", "fan-shard-fallback"],
  ["attempt", "fan-attempt"],
]);
const NUMERIC: ReadonlySet<string> = new Set(["deadline", "ttl", "attempt", "shard", "shardFallback"]);
const FROM_HTTP: ReadonlyMap<string, string> = new Map([...KNOWN].map(([k, v]) => [v, k]));

/** Names that would pollute prototypes if copied around. */
const FORBIDDEN: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);
const TOKEN = /^[a-z0-9][a-z0-9_.-]*$/;
/** Printable ASCII without leading or trailing blanks (HTTP trims those). */
const PRINTABLE = /^(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?$/;
/** Prefix of a custom header carried as its own HTTP header. */
export const CUSTOM_PREFIX = "fan-h-";
/** The HTTP header carrying custom headers that do not fit a plain HTTP header. */
export const JSON_HEADER = "fan-headers";
/** Bound on the `fan-headers` JSON (the server's header limit applies too). */
const MAX_JSON_HEADER = 8 * 1024;

/** Writes envelope headers as HTTP headers into `out` (which it returns). */
export function toHttpHeaders(headers: EnvelopeHeaders, out: Record<string, string> = {}): Record<string, string> {
  let extra: Record<string, string | number> | undefined;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || value === null) continue;
    const known = KNOWN.get(name);
    if (
      known !== undefined &&
      (NUMERIC.has(name) ? typeof value === "number" : typeof value === "string" && PRINTABLE.test(value))
    ) {
      out[known] = String(value);
    } else if (typeof value === "string" && TOKEN.test(name) && PRINTABLE.test(value)) {
      out[CUSTOM_PREFIX + name] = value;
    } else {
      extra ??= {};
      extra[name] = value;
    }
  }
  if (extra !== undefined) out[JSON_HEADER] = asciiJson(extra);
  return out;
}

/** JSON with every non-ASCII character escaped, so it is a valid HTTP header value. */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(", ") : v;
}

/**
 * Reads envelope headers from HTTP headers (node's lowercased record, or undici's).
 * Throws `FanError(INVALID_ARGUMENT)` when `fan-headers` is malformed or a number is not one.
 */
export function fromHttpHeaders(
  http: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
): EnvelopeHeaders {
  const out: EnvelopeHeaders = {};
  for (const key in http) {
    const raw = first(http[key]);
    if (raw === undefined) continue;
    const known = FROM_HTTP.get(key);
    if (known !== undefined) {
      out[known] = NUMERIC.has(known) ? toNumber(key, raw) : raw;
    } else if (key.startsWith(CUSTOM_PREFIX) && key.length > CUSTOM_PREFIX.length) {
      const name = key.slice(CUSTOM_PREFIX.length);
      if (FORBIDDEN.has(name)) throw new FanError("INVALID_ARGUMENT", `header ${key} is not allowed`);
      out[name] = raw;
    } else if (key === JSON_HEADER) {
      Object.assign(out, parseJsonHeader(raw));
    }
  }
  if (out.authorization === undefined) {
    const standard = first(http.authorization);
    if (standard !== undefined) out.authorization = standard;
  }
  const timeout = first(http["fan-timeout"]);
  if (timeout !== undefined) {
    const byTimeout = Date.now() + toNumber("fan-timeout", timeout);
    if (out.deadline === undefined || byTimeout < out.deadline) out.deadline = byTimeout;
  }
  return out;
}

function toNumber(name: string, raw: string): number {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n))
    throw new FanError("INVALID_ARGUMENT", `header ${name} is not a number: ${JSON.stringify(raw.slice(0, 40))}`);
  return n;
}

function parseJsonHeader(raw: string): Record<string, string | number> {
  const value = parseJson(raw, { maxBytes: MAX_JSON_HEADER, maxDepth: 2 });
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new FanError("INVALID_ARGUMENT", `header ${JSON_HEADER} must be a JSON object`);
  }
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string" && typeof v !== "number")
      throw new FanError("INVALID_ARGUMENT", `header ${JSON_HEADER}: "${k}" must be a string or number`);
    out[k] = v;
  }
  return out;
}
