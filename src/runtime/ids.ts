/**
 * Identifiers: envelope ids, instance and app ids, and W3C trace context (traceparent).
 * Trace and span ids come from a pooled buffer of crypto-random bytes, so making one costs a
 * slice and a hex conversion, not a system call.
 */
import { randomFillSync } from "node:crypto";

/**
 * 64 KB: a refill costs ~7 µs at 4 KB and ~14 µs at 64 KB (mostly the system call itself), and
 * a call from the edge takes up to 32 bytes. At 4 KB one call in ~130–200 paid ~7 µs (53 ns a
 * call amortized); at 64 KB one in ~2,000 pays ~14 µs (7 ns amortized).
 */
const POOL_SIZE = 65536;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolOffset = POOL_SIZE;
let refills = 0;

/** How many times the random pool was refilled (for tests of how often a call pays it). */
export function randomRefills(): number {
  return refills;
}

function randomHex(bytes: number): string {
  if (poolOffset + bytes > POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
    refills++;
  }
  const hex = pool.toString("hex", poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

const ZERO_TRACE = "00000000000000000000000000000000";
const ZERO_SPAN = "0000000000000000";

/** A new W3C trace id: 32 lowercase hex characters, never all zero. */
export function newTraceId(): string {
  const id = randomHex(16);
  return id === ZERO_TRACE ? newTraceId() : id;
}

/** A new W3C span (parent) id: 16 lowercase hex characters, never all zero. */
export function newSpanId(): string {
  const id = randomHex(8);
  return id === ZERO_SPAN ? newSpanId() : id;
}

/** A short random id for apps and instances: 12 hex characters. */
export function shortId(): string {
  return randomHex(6);
}

/** The id of a new instance of `service`: its simple name and a random suffix. */
export function instanceIdFor(service: string): string {
  const dot = service.lastIndexOf(".");
  return `${service.slice(dot + 1)}-${shortId()}`;
}

const processPrefix = `${shortId()}-`;
let seq = 0;

/** A process-unique envelope id (prefix + counter); cheap enough for every call. */
export function nextEnvelopeId(): string {
  // A small integer converts to text through V8's number-string cache; 2^53 ids before reuse.
  return processPrefix + ++seq;
}

/** A parsed W3C traceparent. */
export interface TraceParent {
  readonly traceId: string;
  readonly spanId: string;
  readonly flags: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/;

/** Parses a `traceparent` header; undefined when absent or malformed (all-zero ids, version ff). */
export function parseTraceparent(header: unknown): TraceParent | undefined {
  if (typeof header !== "string") return undefined;
  const m = TRACEPARENT.exec(header);
  if (m === null) return undefined;
  const [, version, traceId, spanId, flags] = m as unknown as [string, string, string, string, string];
  if (version === "ff" || (version === "00" && header.length !== 55)) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId, spanId, flags };
}

/** Formats a version-00 `traceparent` (sampled flag set unless `flags` says otherwise). */
export function formatTraceparent(traceId: string, spanId: string, flags = "01"): string {
  return `00-${traceId}-${spanId}-${flags}`;
}
