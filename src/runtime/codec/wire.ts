/**
 * Bytes ⇄ envelopes for every transport that serialises. Every decode is bounded in size and
 * nesting and rejects prototype-polluting keys, so a transport can hand whatever arrived on a
 * socket or queue straight to `decodeEnvelope` and turn a throw into an error reply or a
 * logged drop.
 */
import { Code, FanError } from "../errors.js";
import type { Envelope, EnvelopeHeaders, EnvelopeKind } from "../transports/transport.js";

/** Default bound of a decoded message: 4 MiB. */
export const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;
/** Default bound of JSON nesting (objects and arrays). */
export const DEFAULT_MAX_DEPTH = 64;

/** Bounds applied to every decode. */
export interface WireLimits {
  readonly maxBytes: number;
  readonly maxDepth?: number;
}

const KINDS: ReadonlySet<string> = new Set<EnvelopeKind>(["call", "push", "event", "reply", "error", "state"]);
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/** Serialises an envelope (without the in-process `form` marker) to UTF-8 JSON bytes. */
export function encodeEnvelope(env: Envelope): Buffer {
  return Buffer.from(encodeEnvelopeText(env), "utf8");
}

/**
 * `encodeEnvelope` as a string, for transports that write strings (redis): the same JSON text
 * without the UTF-8 copy and its decode back.
 */
export function encodeEnvelopeText(env: Envelope): string {
  const { v, id, kind, service, method, version, headers, payload } = env;
  return JSON.stringify({ v, id, kind, service, method, version, headers, payload });
}

/**
 * The UTF-8 size of `text` when it may exceed `max`, else -1 (no count needed): a UTF-16 code
 * unit never takes more than 3 UTF-8 bytes, so text of at most `max / 3` units fits.
 */
export function utf8SizeOver(text: string, max: number): number {
  if (text.length * 3 <= max) return -1;
  const size = Buffer.byteLength(text, "utf8");
  return size > max ? size : -1;
}

/**
 * Parses bytes into an envelope. Throws `FanError` RESOURCE_EXHAUSTED when larger than
 * `limits.maxBytes`, INVALID_ARGUMENT when not JSON, too deep, carrying `__proto__`,
 * `constructor` or `prototype` keys, or not shaped like an envelope.
 */
export function decodeEnvelope(bytes: Uint8Array | string, limits: WireLimits): Envelope {
  const value = parseJson(bytes, limits);
  return checkEnvelope(value);
}

/** Parses bounded JSON (same checks as `decodeEnvelope`, any JSON value). */
export function parseJson(bytes: Uint8Array | string, limits: WireLimits): unknown {
  // A string's UTF-8 size is counted only when it could exceed the bound (see utf8SizeOver).
  const size = typeof bytes === "string" ? utf8SizeOver(bytes, limits.maxBytes) : bytes.byteLength;
  if (size > limits.maxBytes) {
    throw new FanError(Code.RESOURCE_EXHAUSTED, `message of ${size} bytes exceeds the limit of ${limits.maxBytes}`);
  }
  const text = typeof bytes === "string" ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new FanError(Code.INVALID_ARGUMENT, `malformed JSON: ${(e as Error).message}`);
  }
  checkJsonValue(value, limits.maxDepth ?? DEFAULT_MAX_DEPTH);
  return value;
}

/**
 * Checks a parsed JSON value: nesting no deeper than `maxDepth` and no prototype-polluting
 * keys. Recursion is bounded by `maxDepth` (it throws before going deeper), so it cannot
 * overflow the stack; the failing path is built only when it throws, so the valid case
 * allocates nothing.
 */
export function checkJsonValue(value: unknown, maxDepth: number = DEFAULT_MAX_DEPTH): void {
  if (value === null || typeof value !== "object") return;
  const trail: (string | number)[] = [];
  if (!walk(value, 0, maxDepth, trail)) {
    const path = `$${trail
      .reverse()
      .map((k) => (typeof k === "number" ? `[${k}]` : `.${k}`))
      .join("")}`;
    const key = trail[trail.length - 1];
    const why = typeof key === "string" && FORBIDDEN_KEYS.has(key) ? `forbidden key "${key}"` : `JSON nested deeper than ${maxDepth} levels`;
    throw new FanError(Code.INVALID_ARGUMENT, `${why} at ${path}`, { details: { path } });
  }
}

/** False when `v` breaks a rule; `trail` then holds the path to it, innermost first. */
function walk(v: object, depth: number, maxDepth: number, trail: (string | number)[]): boolean {
  if (depth >= maxDepth) return false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const item: unknown = v[i];
      if (item !== null && typeof item === "object" && !walk(item, depth + 1, maxDepth, trail)) {
        trail.push(i);
        return false;
      }
    }
    return true;
  }
  for (const key in v) {
    if (FORBIDDEN_KEYS.has(key)) {
      trail.push(key);
      return false;
    }
    const item: unknown = (v as Record<string, unknown>)[key];
    if (item !== null && typeof item === "object" && !walk(item, depth + 1, maxDepth, trail)) {
      trail.push(key);
      return false;
    }
  }
  return true;
}

function invalid(what: string): never {
  throw new FanError(Code.INVALID_ARGUMENT, `not a fan envelope: ${what}`);
}

function checkHeaders(h: unknown): EnvelopeHeaders {
  if (h === undefined) return {};
  if (h === null || typeof h !== "object" || Array.isArray(h)) invalid("headers must be an object");
  const rec = h as Record<string, unknown>;
  for (const k in rec) {
    if (!Object.hasOwn(rec, k)) continue;
    const val = rec[k];
    if (typeof val !== "string" && typeof val !== "number" && val !== null) invalid(`header "${k}" must be a string or number`);
  }
  return h as EnvelopeHeaders;
}

/** Checks the shape of a parsed value and returns it as an envelope. */
export function checkEnvelope(value: unknown): Envelope {
  if (value === null || typeof value !== "object" || Array.isArray(value)) invalid("expected an object");
  const o = value as Record<string, unknown>;
  if (o.v !== 1) invalid(`unsupported version ${JSON.stringify(o.v)}`);
  if (typeof o.id !== "string" || o.id.length === 0 || o.id.length > 256) invalid("id must be a non-empty string");
  if (typeof o.kind !== "string" || !KINDS.has(o.kind)) invalid(`unknown kind ${JSON.stringify(o.kind)}`);
  if (typeof o.service !== "string" || o.service.length > 512) invalid("service must be a string");
  if (typeof o.method !== "string" || o.method.length > 512) invalid("method must be a string");
  if (o.version !== undefined && typeof o.version !== "string") invalid("version must be a string");
  const headers = checkHeaders(o.headers);
  const env: { -readonly [K in keyof Envelope]: Envelope[K] } = {
    v: 1,
    id: o.id,
    kind: o.kind as EnvelopeKind,
    service: o.service,
    method: o.method,
    headers,
    payload: o.payload,
  };
  if (typeof o.version === "string") env.version = o.version;
  return env;
}
