/**
 * The http transport's server side: one node:http server per transport, serving every bound
 * service instance. rpc is `POST /{service}/{method}` with the JSON payload as body, and each
 * `@route` path too; pushes answer 202 once the handler has finished (the Inbound resolved).
 *
 * A `@route` path answers the verb its route binds (a GET route HEAD too); another verb on it
 * is a 405 with `Allow` (routes.ts, respond.ts: the gateway answers alike).
 *
 * Everything that reaches the socket gets an answer: unknown services and methods 404, a body
 * over the limit 413 (RESOURCE_EXHAUSTED, without reading it), malformed JSON or
 * prototype-polluting keys 400 (INVALID_ARGUMENT), bytes that are not HTTP a logged 400 from
 * the parser. A stopped instance answers 503 (UNAVAILABLE) so callers go elsewhere.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { Logger } from "pino";
import type { MethodDescriptor, ServiceDescriptor } from "../../descriptor.js";
import { Code, FanError } from "../../errors.js";
import { pushRefusal } from "../acked-push.js";
import { nextEnvelopeId } from "../../ids.js";
import type { Envelope, Inbound } from "../transport.js";
import { parseJson } from "../../codec/wire.js";
import { fromHttpHeaders } from "./headers.js";
import {
  bindParams,
  compileRoute,
  isBodyless,
  lookupRoute,
  type Route,
  safeDecode,
  sameRoute,
  splitPath,
  undecodable,
} from "./routes.js";
import { sendEnvelope, sendError, sendStatus, sendWrongVerb } from "./respond.js";
import { LazyAbort } from "../abort.js";
import { answerAdmin } from "../../telemetry/admin.js";
import type { AdminHook } from "../../telemetry/index.js";
import { warnDropped } from "../../telemetry/drops.js";

/** Server-side options of the http transport. */
export interface HttpServerOptions {
  /** Interface to listen on; default 127.0.0.1. */
  readonly host?: string;
  /** Port; default 0 (chosen by the OS). */
  readonly port?: number;
  /** Host name advertised in the endpoint; default the listen host (127.0.0.1 for 0.0.0.0/::). */
  readonly advertiseHost?: string;
  /** Bound on a request's header block; default 16 KiB (431 past it). */
  readonly maxHeaderBytes?: number;
  /** Idle keep-alive sockets close after this; default 65 s (longer than the client's). */
  readonly keepAliveTimeoutMs?: number;
  /** A request must be received whole within this; default 60 s. */
  readonly requestTimeoutMs?: number;
  /** Serve https with this key and certificate: the advertised endpoint is then `https://host:port`. */
  readonly tls?: HttpsServerOptions;
}

/** TLS of the http transport's server (PEM contents, as node:tls takes them). */
export interface HttpsServerOptions {
  /** The private key. */
  readonly key: string | Buffer;
  /** The certificate chain, leaf first. */
  readonly cert: string | Buffer;
  /** The key's passphrase, when it is encrypted. */
  readonly passphrase?: string;
  /** CA certificates that client certificates must chain to (with `requestCert`). */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** Ask callers for a certificate and refuse connections without one valid against `ca` (mutual TLS). */
  readonly requestCert?: boolean;
}

/** One served instance. */
interface Binding {
  readonly service: ServiceDescriptor;
  readonly instanceId: string;
  readonly inbound: Inbound;
}

/** What a request addresses, once routed. */
interface Target {
  readonly binding: Binding;
  readonly method: MethodDescriptor;
  readonly params?: Readonly<Record<string, string>>;
  readonly query?: URLSearchParams;
}

/** Distinct request paths whose split segments are kept. */
const MAX_CACHED_PATHS = 1024;

/** A path's raw segments, and for two segments their decoded service and method names. */
type Segments = readonly string[] & { readonly names: readonly [string | undefined, string | undefined] | undefined };

/** Per-request state shared with the response's "close" listener. */
interface Exchange {
  /** The running call's abort source, while its handler runs. */
  ac: LazyAbort | undefined;
}

/** The node:http server of one transport. */
export class HttpServer {
  private server: Server | undefined;
  private listening: Promise<string> | undefined;
  private readonly bindings = new Map<string, Binding[]>();
  private readonly stopped = new Set<string>();
  private readonly routes: Route[] = [];
  private readonly rr = new Map<string, number>();
  private readonly paths = new Map<string, Segments>();
  private inFlight = 0;
  private drained: (() => void) | undefined;

  constructor(
    private readonly opts: HttpServerOptions,
    private readonly log: Logger,
    private readonly maxBodyBytes: number,
    private readonly admin?: AdminHook,
  ) {}

  /** Starts listening (once) and resolves with the advertised origin, `http://host:port` (`https://` with `tls`). */
  listen(): Promise<string> {
    this.listening ??= this.start();
    return this.listening;
  }

  private async start(): Promise<string> {
    const options = {
      maxHeaderSize: this.opts.maxHeaderBytes ?? 16 * 1024,
      keepAliveTimeout: this.opts.keepAliveTimeoutMs ?? 65_000,
      requestTimeout: this.opts.requestTimeoutMs ?? 60_000,
    };
    const tls = this.opts.tls;
    const server: Server =
      tls === undefined
        ? createServer(options)
        : createHttpsServer({
            ...options,
            key: tls.key,
            cert: tls.cert,
            ...(tls.passphrase === undefined ? {} : { passphrase: tls.passphrase }),
            ...(tls.ca === undefined ? {} : { ca: tls.ca as string | Buffer | (string | Buffer)[] }),
            ...(tls.requestCert === true ? { requestCert: true, rejectUnauthorized: true } : {}),
          });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
    server.on("clientError", (err: Error & { code?: string }, socket: Socket) => this.onClientError(err, socket));
    this.server = server;
    const host = this.opts.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port ?? 0, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const { port } = server.address() as AddressInfo;
    const advertised = this.opts.advertiseHost ?? (host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host);
    const scheme = tls === undefined ? "http" : "https";
    return `${scheme}://${advertised.includes(":") ? `[${advertised}]` : advertised}:${port}`;
  }

  /** Adds an instance; returns a function that removes it (new requests then get 503). */
  add(service: ServiceDescriptor, instanceId: string, inbound: Inbound): () => void {
    const binding: Binding = { service, instanceId, inbound };
    const list = this.bindings.get(service.name) ?? [];
    list.push(binding);
    this.bindings.set(service.name, list);
    this.stopped.delete(service.name);
    if (list.length === 1) this.addRoutes(service);
    return () => this.remove(binding);
  }

  private remove(binding: Binding): void {
    const name = binding.service.name;
    const list = (this.bindings.get(name) ?? []).filter((b) => b !== binding);
    if (list.length > 0) {
      this.bindings.set(name, list);
      return;
    }
    this.bindings.delete(name);
    this.stopped.add(name);
    for (let i = this.routes.length - 1; i >= 0; i--) if (this.routes[i]?.service === name) this.routes.splice(i, 1);
  }

  private addRoutes(service: ServiceDescriptor): void {
    for (const method of Object.values(service.methods)) {
      if (method.route === undefined) continue;
      const route = compileRoute(service.name, { ...method, route: method.route });
      const clash = this.routes.find((r) => sameRoute(r, route));
      if (clash !== undefined) {
        this.log.warn(
          {
            route: `${route.verb} ${method.route.path}`,
            service: service.name,
            method: method.name,
            servedBy: `${clash.service}.${clash.method.name}`,
          },
          "route shadowed by an earlier one",
        );
      }
      this.routes.push(route);
    }
  }

  private onClientError(err: Error & { code?: string }, socket: Socket): void {
    if (err.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    warnDropped(
      this.log,
      { transport: "http", endpoint: "server", reason: err.code ?? "malformed request" },
      { err: { message: err.message, code: err.code } },
      "http: dropped a malformed request",
    );
    const status =
      err.code === "HPE_HEADER_OVERFLOW"
        ? "431 Request Header Fields Too Large"
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? "408 Request Timeout"
          : "400 Bad Request";
    socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    if (this.admin !== undefined && answerAdmin(this.admin, req, res, this.log)) return;
    this.inFlight++;
    // One "close" listener per request does both jobs: count the request done, and cancel the
    // call's handler while it runs (the caller went away before its answer was written).
    const exchange: Exchange = { ac: undefined };
    res.on("close", () => {
      this.done();
      if (exchange.ac !== undefined && !res.writableFinished)
        exchange.ac.abort(new FanError(Code.CANCELLED, "the caller went away"));
    });
    this.handle(req, res, exchange).catch((e: unknown) => {
      if (res.destroyed || req.destroyed) {
        this.log.debug({ err: e }, "http: the caller went away");
        return;
      }
      this.log.error({ err: e }, "http: request handling failed");
      if (!res.headersSent) sendError(res, FanError.from(e));
      else res.destroy();
    });
  }

  private done(): void {
    this.inFlight--;
    if (this.inFlight === 0) this.drained?.();
  }

  private async handle(req: IncomingMessage, res: ServerResponse, exchange: Exchange): Promise<void> {
    const target = this.route(req.method ?? "GET", originForm(req.url ?? "/"), res);
    if (target === undefined) return;
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > this.maxBodyBytes) {
      tooLarge(req, res, declared, this.maxBodyBytes);
      return;
    }
    const body = await readBody(req, this.maxBodyBytes);
    if (body === undefined) {
      tooLarge(req, res, undefined, this.maxBodyBytes);
      return;
    }
    let env: Envelope;
    try {
      env = this.toEnvelope(req, body, target);
    } catch (e) {
      sendError(res, FanError.from(e, Code.INVALID_ARGUMENT));
      return;
    }
    await (target.method.kind === "push" ? this.push(target, env, res) : this.call(target, env, res, exchange));
  }

  /** Finds what a request addresses, or answers it (404/405/503) and returns undefined. */
  private route(verb: string, url: string, res: ServerResponse): Target | undefined {
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const raw = this.segments(path);
    // A path or query that does not decode addresses nothing: 400 naming the part, not a 404.
    if (url.includes("%")) {
      const bad = undecodable(raw, q < 0 ? undefined : url.slice(q + 1));
      if (bad !== undefined) {
        sendError(res, new FanError(Code.INVALID_ARGUMENT, bad));
        return undefined;
      }
    }
    // `/{service}/{method}` of a service bound here first: no route shadows it (and a call
    // does not scan the routes).
    const named = raw.names?.[0];
    if (named !== undefined && (this.bindings.has(named) || this.stopped.has(named)))
      return this.routeByName(verb, raw, res);
    const found = lookupRoute(this.routes, verb, raw);
    if (found === undefined) return this.routeByName(verb, raw, res);
    if ("allow" in found) {
      sendWrongVerb(res, verb, path, found.allow);
      return undefined;
    }
    const { route, params } = found.match;
    const binding = this.pick(route.service);
    if (binding === undefined) return this.routeByName(verb, raw, res);
    return {
      binding,
      method: route.method,
      params,
      ...(isBodyless(verb) ? { query: new URLSearchParams(q < 0 ? "" : url.slice(q + 1)) } : {}),
    };
  }

  /** A path's raw segments, split once per distinct path (rpc paths repeat on every call). */
  private segments(path: string): Segments {
    let raw = this.paths.get(path);
    if (raw === undefined) {
      const split = splitPath(path);
      raw = Object.assign(split, {
        names:
          split.length === 2 ? ([safeDecode(split[0] as string), safeDecode(split[1] as string)] as const) : undefined,
      }) as Segments;
      if (this.paths.size < MAX_CACHED_PATHS) this.paths.set(path, raw);
    }
    return raw;
  }

  private routeByName(verb: string, raw: Segments, res: ServerResponse): Target | undefined {
    const [service, method] = raw.names ?? [undefined, undefined];
    if (service === undefined || method === undefined) {
      sendError(
        res,
        new FanError(Code.NOT_FOUND, `no service or route at ${raw.length === 0 ? "/" : `/${raw.join("/")}`}`),
      );
      return undefined;
    }
    const binding = this.pick(service);
    if (binding === undefined) {
      const stopping = this.stopped.has(service);
      sendError(
        res,
        new FanError(
          stopping ? Code.UNAVAILABLE : Code.NOT_FOUND,
          stopping ? `service ${service} is stopping here` : `unknown service ${service}`,
        ),
      );
      return undefined;
    }
    const m = Object.hasOwn(binding.service.methods, method) ? binding.service.methods[method] : undefined;
    if (m === undefined) {
      sendError(res, new FanError(Code.UNIMPLEMENTED, `unknown method ${service}/${method}`));
      return undefined;
    }
    if (verb !== "POST") {
      sendWrongVerb(res, verb, `/${service}/${method}`, "POST");
      return undefined;
    }
    return { binding, method: m };
  }

  /** Round-robin over the instances of a service bound here. */
  private pick(service: string): Binding | undefined {
    const list = this.bindings.get(service);
    if (list === undefined || list.length === 0) return undefined;
    if (list.length === 1) return list[0];
    const i = ((this.rr.get(service) ?? 0) + 1) % list.length;
    this.rr.set(service, i);
    return list[i];
  }

  private toEnvelope(req: IncomingMessage, body: Buffer, target: Target): Envelope {
    const headers = fromHttpHeaders(req.headers);
    // A GET, HEAD or DELETE takes its parameters from the path and the query string only: a
    // body sent with one is not read as parameters (as the gateway does).
    const bodyless = target.query !== undefined;
    let payload: unknown = body.length === 0 || bodyless ? {} : parseJson(body, { maxBytes: this.maxBodyBytes });
    if (target.params !== undefined) {
      if (payload === null || typeof payload !== "object" || Array.isArray(payload))
        throw new FanError(Code.INVALID_ARGUMENT, "the body of a routed request must be a JSON object");
      payload = bindParams(target.method.input, payload as Record<string, unknown>, target.params, target.query);
    }
    const id = req.headers["fan-id"];
    const version = req.headers["fan-version"];
    return {
      v: 1,
      id: typeof id === "string" && id.length > 0 && id.length <= 256 ? id : nextEnvelopeId(),
      kind: target.method.kind === "push" ? "push" : "call",
      service: target.binding.service.name,
      method: target.method.name,
      ...(typeof version === "string" ? { version } : {}),
      headers,
      payload,
    };
  }

  private async call(target: Target, env: Envelope, res: ServerResponse, exchange: Exchange): Promise<void> {
    // A real AbortSignal only if the handler reads ctx.signal (abort.ts): `new AbortController()`
    // cost 3.1 µs of the server's ~40 µs per call on Node 20 (0.2 µs on Node 24), at c=64.
    const ac = new LazyAbort();
    exchange.ac = ac;
    const reply = await target.binding.inbound.call(env, ac);
    exchange.ac = undefined;
    if (res.destroyed || ac.aborted) return;
    sendEnvelope(res, reply, this.maxBodyBytes);
  }

  private async push(target: Target, env: Envelope, res: ServerResponse): Promise<void> {
    try {
      await target.binding.inbound.push(env);
    } catch (e) {
      const w = pushRefusal(e);
      const opts = w.details === undefined ? { cause: e } : { cause: e, details: w.details };
      sendError(res, new FanError(w.code, w.message, opts), undefined, { "fan-id": env.id });
      return;
    }
    sendStatus(res, 202, { "fan-id": env.id });
  }

  /** Stops listening; waits for in-flight requests up to `graceMs`, then cuts every connection. */
  async close(graceMs: number): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    server.closeAllConnections();
    await closed;
  }
}

/** The path and query of a request target (absolute-form, as proxies send it, reduced to origin-form). */
function originForm(target: string): string {
  if (target.startsWith("/")) return target;
  try {
    const u = new URL(target);
    return u.pathname + u.search;
  } catch {
    return "/";
  }
}

/** Most bytes of a refused body read (and discarded) after its 413, so the client reads the answer. */
const DRAIN_BYTES = 256 * 1024 * 1024;
/** Longest time spent discarding a refused body. */
const DRAIN_MS = 30_000;

/**
 * Answers 413 and discards the rest of the body, bounded: closing while the client still sends
 * makes the kernel reset the connection, and the client loses the answer (curl's "Broken
 * pipe"). Past `DRAIN_BYTES` or `DRAIN_MS` the connection is cut.
 */
function tooLarge(req: IncomingMessage, res: ServerResponse, size: number | undefined, max: number): void {
  const what = size === undefined ? "body" : `body of ${size} bytes`;
  sendError(res, new FanError(Code.RESOURCE_EXHAUSTED, `${what} exceeds the limit of ${max} bytes`), 413);
  if (req.complete) return;
  let left = DRAIN_BYTES;
  const cut = (): void => {
    req.socket.destroy();
  };
  const timer = setTimeout(cut, DRAIN_MS);
  timer.unref();
  req.removeAllListeners("data");
  req.on("data", (chunk: Buffer) => {
    left -= chunk.length;
    if (left < 0) cut();
  });
  req.once("end", () => clearTimeout(timer));
  req.once("close", () => clearTimeout(timer));
  req.resume();
}

/** Reads a request body, or undefined (having stopped reading) once it passes `max` bytes. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners("data");
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.once("end", () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)));
    req.once("error", reject);
    req.once("close", () => {
      if (!req.complete) reject(new FanError(Code.CANCELLED, "the caller went away mid-request"));
    });
  });
}
