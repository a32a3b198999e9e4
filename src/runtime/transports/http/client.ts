/**
 * The http transport's client side: one undici `Pool` (keep-alive) per endpoint origin. A call
 * is `POST /{service}/{method}` with the payload as JSON body and the envelope's headers as
 * HTTP headers; the response becomes a `reply` or `error` envelope. Transport failures throw
 * `FanError`: UNAVAILABLE (cannot connect, connection lost), DEADLINE_EXCEEDED, CANCELLED,
 * RESOURCE_EXHAUSTED (request or response over the limit).
 *
 * Pushes are at-least-once: a push the server could not acknowledge (the handler failed, the
 * instance is stopping) or that a connection error cut off is sent again, with `attempt`
 * incremented and the same id, until acknowledged, the attempts run out, or the deadline
 * passes. A request refused at connect never left: it is marked not delivered
 * (`not-delivered.ts`) so the client may send it to another instance, and a push refused so
 * goes there at once when the caller says another instance exists (`elsewhere`).
 */
import { Pool } from "undici";
import type { Logger } from "pino";
import { Code, FanError, type WireError } from "../../errors.js";
import type { Envelope, SendOptions } from "../transport.js";
import { parseJson } from "../../codec/wire.js";
import { fromHttpHeaders, toHttpHeaders } from "./headers.js";
import { sendAgain, sleep } from "../acked-push.js";
import { isNotDelivered, notDelivered } from "../not-delivered.js";
import { asWireError } from "./respond.js";
import { type Answer, sendScope } from "./scope.js";

/** Client-side options of the http transport. */
export interface HttpClientOptions {
  /** Connections per endpoint; default 128 (requests beyond wait in the pool's queue). */
  readonly connections?: number;
  /** Idle keep-alive connections close after this; default 30 s. */
  readonly keepAliveTimeoutMs?: number;
  /** Connecting gives up after this; default 5 s (or the deadline, when earlier). */
  readonly connectTimeoutMs?: number;
  /** Attempts of a push the server did not acknowledge; default 5. */
  readonly pushAttempts?: number;
  /** First delay between push attempts (doubling, at most 1 s); default 50 ms. */
  readonly pushBackoffMs?: number;
  /** How `https://` endpoints are verified (and this client's certificate, for mutual TLS). */
  readonly clientTls?: HttpsClientOptions;
}

/** TLS of the http transport's client (PEM contents, as node:tls takes them). */
export interface HttpsClientOptions {
  /** CA certificates the servers' certificates must chain to (default: Node's trusted roots). */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** Refuse servers whose certificate does not verify (default true; false only for tests). */
  readonly rejectUnauthorized?: boolean;
  /** This client's certificate and key, for servers that ask for one (`tls.requestCert`). */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** The name the server certificate must carry, when not the endpoint's host. */
  readonly servername?: string;
}

/** Pools per origin and the request/response mapping. */
export class HttpClient {
  private readonly pools = new Map<string, Pool>();
  /** `/{service}/{method}` per service, per method: encoded once, not on every call. */
  private readonly paths = new Map<string, Map<string, string>>();
  private closed = false;

  constructor(
    private readonly opts: HttpClientOptions,
    private readonly log: Logger,
    private readonly maxBytes: number,
  ) {}

  /** Sends a call; resolves with the reply or error envelope. */
  async call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope> {
    const answer = await this.send(endpoint, env, opts);
    return this.toEnvelope(env, answer);
  }

  /** Sends a push; resolves once the server acknowledged it (202). */
  async push(endpoint: string, env: Envelope, opts: SendOptions): Promise<void> {
    const attempts = Math.max(1, this.opts.pushAttempts ?? 5);
    let delay = this.opts.pushBackoffMs ?? 50;
    let attempt = typeof env.headers.attempt === "number" ? env.headers.attempt : 1;
    for (let i = 1; ; i++) {
      const sent: Envelope = { ...env, headers: { ...env.headers, attempt } };
      let err: FanError;
      try {
        const answer = await this.send(endpoint, sent, opts);
        if (answer.status >= 200 && answer.status < 300) return;
        err = this.errorOf(answer);
      } catch (e) {
        // A connection error (refused, reset, lost): the push may not have arrived. Refused at
        // connect with another instance to go to: the client's failover sends it there now.
        err = FanError.from(e, Code.UNAVAILABLE);
        if (err.code !== Code.UNAVAILABLE || (opts.elsewhere === true && isNotDelivered(err))) throw err;
      }
      if (!sendAgain(err) || i >= attempts || Date.now() + delay >= opts.deadline) throw err;
      this.log.debug({ id: env.id, attempt, err: err.message }, "http: push not acknowledged, sending again");
      await sleep(delay, opts.signal);
      delay = Math.min(delay * 2, 1000);
      attempt++;
    }
  }

  private async send(endpoint: string, env: Envelope, opts: SendOptions): Promise<Answer> {
    if (this.closed) throw new FanError(Code.UNAVAILABLE, "http transport is closed");
    const body = encodeBody(env.payload, this.maxBytes);
    const headers = toHttpHeaders(env.headers, { "content-type": "application/json", "fan-id": env.id });
    if (env.version !== undefined) headers["fan-version"] = env.version;
    if (env.headers.deadline === undefined && Number.isFinite(opts.deadline))
      headers["fan-deadline"] = String(opts.deadline);
    // Both may throw (an endpoint that is no URL): before the exchange exists, which would
    // otherwise stay on the deadline wheel and the caller's signal, and reject unawaited later.
    const pool = this.pool(endpoint);
    const path = this.path(env.service, env.method);
    const exchange = sendScope(opts, `${env.service}/${env.method}`);
    try {
      // undici hands what fails from here on to the exchange's onError.
      pool.dispatch({ path, method: "POST", headers, body }, exchange);
      return await exchange.answer;
    } catch (e) {
      throw exchange.failure() ?? mapError(e, endpoint);
    }
  }

  private path(service: string, method: string): string {
    let byMethod = this.paths.get(service);
    if (byMethod === undefined) {
      byMethod = new Map();
      if (this.paths.size < 1024) this.paths.set(service, byMethod);
    }
    let path = byMethod.get(method);
    if (path === undefined) {
      path = `/${encodeURIComponent(service)}/${encodeURIComponent(method)}`;
      if (byMethod.size < 1024) byMethod.set(method, path);
    }
    return path;
  }

  private pool(endpoint: string): Pool {
    let pool = this.pools.get(endpoint);
    if (pool === undefined) {
      pool = new Pool(originOf(endpoint), {
        connections: this.opts.connections ?? 128,
        pipelining: 1,
        keepAliveTimeout: this.opts.keepAliveTimeoutMs ?? 30_000,
        maxResponseSize: this.maxBytes,
        connect: { timeout: this.opts.connectTimeoutMs ?? 5000, ...(this.opts.clientTls as object | undefined) },
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      this.pools.set(endpoint, pool);
    }
    return pool;
  }

  private toEnvelope(req: Envelope, a: Answer): Envelope {
    let headers = {};
    try {
      headers = fromHttpHeaders(a.headers);
    } catch (e) {
      this.log.warn({ err: e, id: req.id }, "http: dropped malformed reply headers");
    }
    if (a.status >= 200 && a.status < 300 && a.headers["fan-kind"] !== "error") {
      const payload = a.status === 204 || a.body.length === 0 ? undefined : this.parse(a.body);
      return { v: 1, id: req.id, kind: "reply", service: req.service, method: req.method, headers, payload };
    }
    return {
      v: 1,
      id: req.id,
      kind: "error",
      service: req.service,
      method: req.method,
      headers,
      payload: this.wireErrorOf(a),
    };
  }

  private parse(body: Buffer): unknown {
    try {
      return parseJson(body, { maxBytes: this.maxBytes });
    } catch (e) {
      const err = FanError.from(e);
      throw new FanError(
        err.code === Code.RESOURCE_EXHAUSTED ? err.code : Code.INTERNAL,
        `malformed reply: ${err.message}`,
        { cause: e },
      );
    }
  }

  private wireErrorOf(a: Answer): WireError {
    if (a.headers["fan-kind"] === "error") {
      try {
        return asWireError(parseJson(a.body, { maxBytes: this.maxBytes }));
      } catch {
        // fall through: a fan server never sends this, so treat it like a foreign answer
      }
    }
    const text = a.body.toString("utf8", 0, Math.min(a.body.length, 200));
    return { code: codeOfStatus(a.status), message: `HTTP ${a.status}${text.length > 0 ? `: ${text}` : ""}` };
  }

  private errorOf(a: Answer): FanError {
    const wire = this.wireErrorOf(a);
    return new FanError(wire.code, wire.message, wire.details === undefined ? undefined : { details: wire.details });
  }

  /** Closes every pool: waits briefly for requests in flight, then destroys. */
  async close(graceMs = 1000): Promise<void> {
    this.closed = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(
      pools.map(async (p) => {
        const timer = setTimeout(() => void p.destroy().catch(() => undefined), graceMs);
        await p.close().catch(() => p.destroy().catch(() => undefined));
        clearTimeout(timer);
      }),
    );
  }
}

function encodeBody(payload: unknown, maxBytes: number): string {
  const body = payload === undefined ? "" : JSON.stringify(payload);
  if (body.length > maxBytes / 3 && Buffer.byteLength(body, "utf8") > maxBytes) {
    throw new FanError(
      Code.RESOURCE_EXHAUSTED,
      `request of ${Buffer.byteLength(body, "utf8")} bytes exceeds the limit of ${maxBytes}`,
    );
  }
  return body;
}

function originOf(endpoint: string): string {
  try {
    return new URL(endpoint).origin;
  } catch {
    throw new FanError(Code.INVALID_ARGUMENT, `not an http endpoint: ${JSON.stringify(endpoint)}`);
  }
}

/** Maps an undici or socket error to a FanError: too large, timed out, or unreachable. */
function mapError(e: unknown, endpoint: string): FanError {
  if (FanError.is(e)) return e;
  const code = (e as { code?: string }).code ?? "";
  const message = (e as Error).message ?? String(e);
  if (code === "UND_ERR_RES_EXCEEDED_MAX_SIZE")
    return new FanError(Code.RESOURCE_EXHAUSTED, `reply from ${endpoint} exceeds the limit: ${message}`, { cause: e });
  if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT")
    return new FanError(Code.DEADLINE_EXCEEDED, message, { cause: e });
  const err = new FanError(Code.UNAVAILABLE, `${endpoint}: ${message}${code ? ` (${code})` : ""}`, { cause: e });
  // No connection was made, so no byte of the request left: another instance may take it.
  return code === "ECONNREFUSED" || code === "UND_ERR_CONNECT_TIMEOUT" ? notDelivered(err) : err;
}

/** The code of a non-fan HTTP answer (gRPC's mapping). */
function codeOfStatus(status: number): WireError["code"] {
  switch (status) {
    case 400:
      return Code.INTERNAL;
    case 401:
      return Code.UNAUTHENTICATED;
    case 403:
      return Code.PERMISSION_DENIED;
    case 404:
      return Code.UNIMPLEMENTED;
    case 413:
      return Code.RESOURCE_EXHAUSTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.UNAVAILABLE;
    default:
      return Code.UNKNOWN;
  }
}
