/**
 * Replies and errors as the gateway writes them: through the http transport's own writer
 * (`transports/http/respond.ts`), so a code maps to the same HTTP status, `fan-kind` says
 * reply or error, and an IDL error keeps its name and fields in wire form (`error`, `details`).
 */
import type { ServerResponse } from "node:http";
import { codec } from "../runtime/codec/index.js";
import type { ServiceDescriptor } from "../runtime/descriptor.js";
import { Code, FanError, type WireError } from "../runtime/errors.js";
import { nextEnvelopeId } from "../runtime/ids.js";
import { sendEnvelope, sendError } from "../runtime/transports/http/respond.js";
import type { EnvelopeHeaders } from "../runtime/transports/transport.js";

/** Bound on a reply the gateway writes (as the http transport's default body limit). */
export const MAX_REPLY_BYTES = 4 * 1024 * 1024;

/** The wire form of an error a call rejected with; IDL errors get their fields encoded back. */
export function wireErrorOf(e: unknown, service: ServiceDescriptor | undefined): WireError {
  const err = FanError.from(e, Code.INTERNAL);
  const d = err.details as { error?: unknown; fields?: unknown } | undefined;
  if (d !== null && typeof d === "object" && typeof d.error === "string") {
    const desc = service?.errors[d.error];
    let fields: unknown = d.fields ?? {};
    if (desc !== undefined) {
      try {
        fields = codec(desc.fields).encode(fields, "error");
      } catch {
        // Fields that do not encode were never decoded either: pass them on as they came.
      }
    }
    return { code: err.code, message: err.message, error: d.error, details: fields };
  }
  if (err.details === undefined) return { code: err.code, message: err.message };
  return { code: err.code, message: err.message, details: jsonSafe(err.details) };
}

function jsonSafe(v: unknown): unknown {
  try {
    const text = JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x));
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}

/** Seconds a client waits before trying again when nothing better is known (docs/gateway.md). */
export const RETRY_AFTER_S = 1;

/**
 * The `Retry-After` of an answer of `code` (seconds), or undefined for none. Every 503
 * (UNAVAILABLE: no instance, a broker or connection down, an instance draining, every circuit
 * breaker open) has one: the time until the first open breaker lets a probe through when
 * `cause` says (`details.retryAfterMs`, policy/client.ts), else `RETRY_AFTER_S`. A 429 has one
 * only when a bound on calls in flight refused it (a client bulkhead or a served instance
 * shedding load: `details.maxInFlight`); a message over a size limit is also 429, but the same
 * request would be refused again.
 */
export function retryAfterOf(code: string, cause: unknown): number | undefined {
  const details = FanError.is(cause)
    ? (cause.details as { retryAfterMs?: unknown; maxInFlight?: unknown } | undefined)
    : undefined;
  if (code === Code.UNAVAILABLE) {
    const ms = details?.retryAfterMs;
    return typeof ms === "number" && ms > 0 && Number.isFinite(ms) ? Math.ceil(ms / 1000) : RETRY_AFTER_S;
  }
  if (code === Code.RESOURCE_EXHAUSTED && typeof details?.maxInFlight === "number") return RETRY_AFTER_S;
  return undefined;
}

/** Sets `Retry-After` on the answer of `code` when `retryAfterOf` gives one. */
function setRetryAfter(res: ServerResponse, code: string, cause: unknown): void {
  const s = retryAfterOf(code, cause);
  if (s !== undefined && !res.headersSent) res.setHeader("retry-after", String(s));
}

/**
 * Writes an error: the http transport's status for its code and the WireError as JSON;
 * `cause`, the error the wire form was made of, says how long a 503 or 429's `Retry-After` is.
 */
export function writeError(res: ServerResponse, wire: WireError, headers: EnvelopeHeaders = {}, cause?: unknown): void {
  setRetryAfter(res, wire.code, cause);
  sendEnvelope(
    res,
    { v: 1, id: nextEnvelopeId(), kind: "error", service: "", method: "", headers, payload: wire, form: "wire" },
    MAX_REPLY_BYTES,
  );
}

/** Writes a reply: 200 with the wire JSON, or 204 for no value. */
export function writeReply(res: ServerResponse, payload: unknown, headers: EnvelopeHeaders = {}): void {
  sendEnvelope(
    res,
    { v: 1, id: nextEnvelopeId(), kind: "reply", service: "", method: "", headers, payload, form: "wire" },
    MAX_REPLY_BYTES,
  );
}

/**
 * A gateway-level refusal (bad JSON, unknown path, ...): the code's status unless `status` is
 * given (405 for a verb, 413 for a body over the limit, as the http transport answers them).
 */
export function refuse(res: ServerResponse, code: Code, message: string, status?: number): void {
  if (status === undefined) writeError(res, { code, message });
  else {
    setRetryAfter(res, code, undefined);
    sendError(res, new FanError(code, message), status);
  }
}
