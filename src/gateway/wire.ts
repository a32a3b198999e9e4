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

/** Writes an error: the http transport's status for its code and the WireError as JSON. */
export function writeError(res: ServerResponse, wire: WireError, headers: EnvelopeHeaders = {}): void {
  sendEnvelope(res, { v: 1, id: nextEnvelopeId(), kind: "error", service: "", method: "", headers, payload: wire, form: "wire" }, MAX_REPLY_BYTES);
}

/** Writes a reply: 200 with the wire JSON, or 204 for no value. */
export function writeReply(res: ServerResponse, payload: unknown, headers: EnvelopeHeaders = {}): void {
  sendEnvelope(res, { v: 1, id: nextEnvelopeId(), kind: "reply", service: "", method: "", headers, payload, form: "wire" }, MAX_REPLY_BYTES);
}

/**
 * A gateway-level refusal (bad JSON, unknown path, ...): the code's status unless `status` is
 * given (405 for a verb, 413 for a body over the limit, as the http transport answers them).
 */
export function refuse(res: ServerResponse, code: Code, message: string, status?: number): void {
  if (status === undefined) writeError(res, { code, message });
  else sendError(res, new FanError(code, message), status);
}
