/**
 * Answers of a `fanc gateway` as the browser client reads them: a reply's JSON, or a
 * `WireError` rebuilt into the generated error class (IDL errors, with their typed fields) or
 * a `FanError` with the same code the gateway (and every transport) uses. An answer that is not
 * the gateway's (a proxy's HTML page) becomes a FanError from its HTTP status.
 */
import { codec } from "../runtime/codec/index.js";
import type { ServiceDescriptor } from "../runtime/descriptor.js";
import { Code, FanError, httpStatus, isCode } from "../runtime/errors.js";

/** HTTP status → code, for answers without a fan error body (the inverse of `httpStatus`, first match). */
function codeOfStatus(status: number): Code {
  if (status === 400) return Code.INVALID_ARGUMENT;
  if (status === 409) return Code.ABORTED;
  if (status === 500) return Code.INTERNAL;
  for (const [code, s] of Object.entries(httpStatus)) if (s === status) return code as Code;
  return status >= 500 ? Code.UNAVAILABLE : Code.UNKNOWN;
}

/** The trace id of a gateway answer's `traceparent` header. */
export function traceIdOf(res: Response): string | undefined {
  return /^[0-9a-f]{2}-([0-9a-f]{32})-/.exec(res.headers.get("traceparent") ?? "")?.[1];
}

/** The error a non-2xx answer stands for. */
export async function errorOf(res: Response, service: ServiceDescriptor): Promise<FanError> {
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  const err = fromWire(body, service) ?? new FanError(codeOfStatus(res.status), `HTTP ${res.status} ${res.statusText} from ${res.url}`);
  err.traceId = traceIdOf(res);
  return err;
}

function fromWire(body: unknown, service: ServiceDescriptor): FanError | undefined {
  if (body === null || typeof body !== "object") return undefined;
  const w = body as { code?: unknown; message?: unknown; error?: unknown; details?: unknown };
  if (!isCode(w.code)) return undefined;
  const message = typeof w.message === "string" ? w.message : w.code;
  if (typeof w.error === "string") {
    const desc = service.errors[w.error];
    if (desc !== undefined) {
      try {
        return desc.create(codec<Record<string, unknown>>(desc.fields).decode(w.details, "error"), message);
      } catch (e) {
        return new FanError(w.code, message, { cause: e, details: { error: w.error, fields: w.details } });
      }
    }
    return new FanError(w.code, message, { details: { error: w.error, fields: w.details } });
  }
  return w.details === undefined ? new FanError(w.code, message) : new FanError(w.code, message, { details: w.details });
}
