/**
 * Writing http responses: a reply envelope as its JSON payload (200, or 204 for no value), an
 * error envelope as its `WireError` JSON with the code's HTTP status, always with `fan-kind`
 * and `fan-id` so a client tells fan answers from a proxy's.
 */
import type { ServerResponse } from "node:http";
import { Code, FanError, httpStatus, isCode, type WireError } from "../../errors.js";
import type { Envelope } from "../transport.js";
import { toHttpHeaders } from "./headers.js";

const JSON_TYPE = "application/json; charset=utf-8";

/** Writes a `reply` or `error` envelope as the response. */
export function sendEnvelope(res: ServerResponse, env: Envelope, maxBytes: number): void {
  const headers = toHttpHeaders(env.headers, {
    "fan-id": env.id,
    "fan-kind": env.kind === "reply" ? "reply" : "error",
  });
  if (env.version !== undefined) headers["fan-version"] = env.version;
  if (env.kind !== "reply") {
    const wire = asWireError(env.payload);
    writeJson(res, statusOf(wire.code), headers, JSON.stringify(wire));
    return;
  }
  if (env.payload === undefined) {
    res.writeHead(204, headers).end();
    return;
  }
  let body: string;
  try {
    body = JSON.stringify(env.payload);
  } catch (e) {
    sendError(res, new FanError(Code.INTERNAL, `reply is not JSON: ${(e as Error).message}`), undefined, {
      "fan-id": env.id,
    });
    return;
  }
  const size = Buffer.byteLength(body, "utf8");
  if (size > maxBytes) {
    sendError(
      res,
      new FanError(Code.RESOURCE_EXHAUSTED, `reply of ${size} bytes exceeds the limit of ${maxBytes}`),
      undefined,
      { "fan-id": env.id },
    );
    return;
  }
  writeJson(res, 200, headers, body);
}

/** Writes a transport-level error (status from its code unless given). */
export function sendError(
  res: ServerResponse,
  err: FanError,
  status?: number,
  extra: Record<string, string> = {},
): void {
  const wire: WireError = {
    code: err.code,
    message: err.message,
    ...(err.details === undefined ? {} : { details: err.details }),
  };
  writeJson(res, status ?? statusOf(err.code), { ...extra, "fan-kind": "error" }, JSON.stringify(wire));
}

/**
 * 405 for a verb a path does not take: `Allow` lists the verbs it does, the body is an
 * UNIMPLEMENTED error (as gRPC transcoding answers an unbound verb). The http transport and
 * the gateway both answer a wrong verb with this, on routes and `/{service}/{method}` alike.
 */
export function sendWrongVerb(res: ServerResponse, verb: string, path: string, allow: string): void {
  res.setHeader("allow", allow);
  sendError(res, new FanError(Code.UNIMPLEMENTED, `${verb} ${path} is not served; ${path} takes ${allow}`), 405);
}

/** Writes a status with no body. */
export function sendStatus(res: ServerResponse, status: number, headers: Record<string, string>): void {
  res.writeHead(status, headers).end();
}

function writeJson(res: ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  headers["content-type"] = JSON_TYPE;
  headers["content-length"] = String(Buffer.byteLength(body, "utf8"));
  res.writeHead(status, headers).end(body);
}

function statusOf(code: string): number {
  return isCode(code) ? httpStatus[code] : 500;
}

/** The payload of an error envelope as a WireError (an ill-formed one becomes INTERNAL). */
export function asWireError(payload: unknown): WireError {
  if (
    payload !== null &&
    typeof payload === "object" &&
    isCode((payload as WireError).code) &&
    typeof (payload as WireError).message === "string"
  ) {
    return payload as WireError;
  }
  return { code: Code.INTERNAL, message: "malformed error envelope" };
}
