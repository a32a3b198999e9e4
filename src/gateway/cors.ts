/**
 * CORS for the gateway: `--cors <origins>` (comma-separated, or `*`). An allowed origin gets
 * `access-control-allow-origin` on every answer and a preflight (`OPTIONS`) naming the methods
 * and headers a browser client sends; any other origin gets no CORS headers (the browser then
 * refuses the answer) and its preflight 403. Without `--cors`, only same-origin pages work.
 */
import type { IncomingMessage } from "node:http";

/**
 * Headers a browser may send (the runtime's own and `authorization`, the credentials `@auth`
 * verifiers read, plus any `fan-h-*` custom header it asks for).
 */
const ALLOW_HEADERS = "content-type, authorization, traceparent, tracestate, fan-timeout, fan-deadline, fan-headers";
/** Reply headers a page may read. */
const EXPOSE_HEADERS = "traceparent, fan-kind, fan-id, fan-version";
const ALLOW_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
const CUSTOM = /^fan-h-[a-z0-9][a-z0-9_.-]*$/;

export class Cors {
  readonly #any: boolean;
  readonly #origins: ReadonlySet<string>;

  /** `spec`: undefined (no CORS), `*`, or a comma-separated list of origins. */
  constructor(spec: string | undefined) {
    const list = (spec ?? "")
      .split(",")
      .map((s) => s.trim().replace(/\/+$/, ""))
      .filter((s) => s !== "");
    this.#any = list.includes("*");
    this.#origins = new Set(list);
  }

  /** False without `--cors`: no answer gets a CORS header, so callers may skip `headers`. */
  get active(): boolean {
    return this.#any || this.#origins.size > 0;
  }

  /** The CORS headers of an answer to `req` (empty when it has no allowed Origin). */
  headers(req: IncomingMessage): Record<string, string> {
    // With a list of origins every answer depends on Origin (allowed or not), so a shared cache
    // must key on it: otherwise one origin's answer (with or without CORS headers) serves another.
    const vary: Record<string, string> = this.#any || this.#origins.size === 0 ? {} : { vary: "origin" };
    const origin = req.headers.origin;
    if (origin === undefined || !(this.#any || this.#origins.has(origin))) return vary;
    return {
      "access-control-allow-origin": this.#any ? "*" : origin,
      "access-control-expose-headers": EXPOSE_HEADERS,
      ...vary,
    };
  }

  /** The answer to a preflight: status and headers. */
  preflight(req: IncomingMessage): { status: number; headers: Record<string, string> } {
    const base = this.headers(req);
    if (base["access-control-allow-origin"] === undefined) return { status: 403, headers: base };
    const asked = String(req.headers["access-control-request-headers"] ?? "")
      .split(",")
      .map((h) => h.trim().toLowerCase())
      .filter((h) => CUSTOM.test(h));
    return {
      status: 204,
      headers: {
        ...base,
        "access-control-allow-methods": ALLOW_METHODS,
        "access-control-allow-headers": asked.length === 0 ? ALLOW_HEADERS : `${ALLOW_HEADERS}, ${asked.join(", ")}`,
        "access-control-max-age": "600",
      },
    };
  }
}
