/**
 * The gateway's HTTP server: every service of the IDL, whatever transport its instances are
 * served on, over plain HTTP.
 *
 * - `POST /<package.Service>/<method>` with the JSON arguments: an rpc (200 with the reply, 204
 *   for none) or a push (202 once accepted); each `@route` path on the verb it binds (a GET
 *   route HEAD too), routed by the http transport's own code (another verb: 405 with `Allow`);
 * - `GET /_fan/events/<service>/<event>` and `GET /_fan/states/<service>/<state>`: SSE (a
 *   `@shard` state streams one shard: `?shard=N` or `?key=K`, or all of them: `?shard=all`;
 *   400 without any);
 * - `GET /_fan/idl`: the compiled IDL as JSON; `GET /health`.
 *
 * `swap(catalog)` serves a reloaded IDL (reload.ts): each request reads the catalog once, when
 * it arrives, so a call in flight ends as it began; streams of what the new IDL removed end
 * with a final `fan-error` event, every other stream goes on. What the App holds for a
 * service version the reload replaced (its client) is released once its calls and streams end.
 *
 * Every answer to a request is an answer: malformed JSON, an invalid argument, a path or query
 * of malformed percent-encoding, an unknown path, a body over the limit and a wrong verb are
 * coded JSON errors (400, 404, 413, 405) and the gateway keeps serving. A 503 carries
 * `Retry-After` (wire.ts says how long). What a client reads of a failure from inside the deployment
 * `Exposure` decides (exposure.ts).
 */
import { setMaxListeners } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Logger } from "pino";
import type { App } from "../runtime/app/app.js";
import { parseJson } from "../runtime/codec/wire.js";
import { newTraceId } from "../runtime/ids.js";
import { shardOfKey } from "../runtime/shard-key.js";
import type { MethodDescriptor, ServiceDescriptor, StateDescriptor } from "../runtime/descriptor.js";
import { Code, FanError } from "../runtime/errors.js";
import { fromHttpHeaders } from "../runtime/transports/http/headers.js";
import { sendWrongVerb } from "../runtime/transports/http/respond.js";
import {
  bindParams,
  isBodyless,
  lookupRoute,
  safeDecode,
  splitPath,
  undecodable,
} from "../runtime/transports/http/routes.js";
import type { EnvelopeHeaders } from "../runtime/transports/transport.js";
import type { Catalog, GatewayService } from "./catalog.js";
import type { Cors } from "./cors.js";
import { Exposure, isGatewayRefusal } from "./exposure.js";
import { relay } from "./rpc.js";
import { EventHub, openSse, SSE_HEADERS, type SseStream, StateHub } from "./sse.js";
import { refuse, wireErrorOf, writeError } from "./wire.js";

/** How long `close()` lets running calls answer before it cuts their connections. */
const CLOSE_GRACE_MS = 2000;
/** Default bound on a request body. */
export const MAX_BODY_BYTES = 1024 * 1024;

export interface GatewayOptions {
  readonly app: App;
  readonly catalog: Catalog;
  readonly cors: Cors;
  readonly log: Logger;
  readonly maxBodyBytes?: number;
  /** `--reveal-errors`: every error reaches the client as it is (development); default false. */
  readonly revealErrors?: boolean;
  /**
   * Releases what the App holds for a service's descriptor that a reload replaced (its cached
   * client: `app.releaseClient`), called once no call or stream of it is left.
   */
  readonly release?: (descriptor: ServiceDescriptor) => void;
}

export class GatewayServer {
  readonly #o: GatewayOptions;
  readonly #hub: EventHub;
  readonly #states: StateHub;
  readonly #maxBody: number;
  readonly #exposure: Exposure;
  #server: Server | undefined;
  #catalog: Catalog;
  readonly #streams = new Map<ServerResponse, OpenStream>();
  /** Calls in flight and open streams per catalog entry (entries of no call or stream are absent). */
  readonly #uses = new Map<GatewayService, number>();
  /** Entries a reload replaced whose calls or streams still run: released when the last ends. */
  readonly #retired = new Set<GatewayService>();

  constructor(opts: GatewayOptions) {
    this.#o = opts;
    this.#catalog = opts.catalog;
    this.#hub = new EventHub(opts.app, opts.log);
    this.#states = new StateHub(opts.app);
    this.#maxBody = opts.maxBodyBytes ?? MAX_BODY_BYTES;
    this.#exposure = new Exposure(opts.log, opts.revealErrors === true);
  }

  /** Listens; resolves with the base URL (`http://127.0.0.1:8080`). */
  async listen(port: number, host = "127.0.0.1"): Promise<string> {
    const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => this.#onRequest(req, res));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const addr = server.address() as AddressInfo;
    const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
    return `http://${shown.includes(":") ? `[${shown}]` : shown}:${addr.port}`;
  }

  /** The catalog new requests are served from. */
  get catalog(): Catalog {
    return this.#catalog;
  }

  /**
   * Serves `next` to every request from now on (one assignment: no request sees half of it).
   * Open streams of a service, event or state that `next` lacks end with a `fan-error` event
   * (NOT_FOUND, as a new request for them is answered); returns how many. The entries of the
   * previous catalog that `next` does not keep have their clients released (`release`) once no
   * call or stream that began on them is left: at once, or when the last ends.
   */
  swap(next: Catalog): number {
    const before = this.#catalog;
    this.#catalog = next;
    // Entries the new catalog does not keep: their clients go once nothing uses them.
    for (const name of before.names()) {
      const was = before.service(name) as GatewayService;
      if (next.service(name) === was) continue;
      if (this.#uses.has(was)) this.#retired.add(was);
      else this.#release(was);
    }
    let ended = 0;
    for (const [res, s] of this.#streams) {
      const gone = removed(next, s);
      if (gone === undefined) continue;
      this.#streams.delete(res);
      s.sse.fail({ code: Code.NOT_FOUND, message: gone });
      ended++;
    }
    return ended;
  }

  /** Stops accepting, ends event streams, closes subscriptions. */
  async close(): Promise<void> {
    for (const res of this.#streams.keys()) res.end();
    this.#streams.clear();
    const server = this.#server;
    if (server !== undefined) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Calls still running get this long to answer; then their connections are cut.
      const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
      await closed;
      clearTimeout(cut);
    }
    await Promise.allSettled([this.#hub.close(), this.#states.close()]);
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    if (this.#o.cors.active) {
      const cors = this.#o.cors.headers(req);
      for (const k in cors) res.setHeader(k, cors[k] as string);
    }
    if (req.method === "OPTIONS") {
      const p = this.#o.cors.preflight(req);
      res.writeHead(p.status, p.headers).end();
      return;
    }
    this.#route(req, res).catch((e: unknown) => {
      const traceId = newTraceId();
      this.#o.log.error({ err: e, url: req.url, traceId }, "gateway request failed");
      if (!res.headersSent)
        writeError(res, this.#exposure.outside(wireErrorOf(e, undefined), e, traceId, { path: req.url ?? "/" }), {}, e);
      else res.destroy();
    });
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const raw = splitPath(path);
    const method = req.method ?? "GET";
    // A request whose path or query does not decode addresses nothing: 400 naming the part, not
    // a 404 (no route matches an undecodable segment) or a URIError.
    if (url.includes("%")) {
      const bad = undecodable(raw, q < 0 ? undefined : url.slice(q + 1));
      if (bad !== undefined) return refuse(res, Code.INVALID_ARGUMENT, bad);
    }
    // Read once: a reload during this request does not change what it is served from.
    const catalog = this.#catalog;
    // POST /<package.Service>/<method>: the common case first. As on the http transport, no
    // route shadows a service's own path, whatever the verb.
    const svc = raw.length === 2 ? catalog.service(safeDecode(raw[0] as string) ?? "") : undefined;
    if (svc !== undefined) {
      const methods = svc.descriptor.methods;
      const name = safeDecode(raw[1] as string) ?? "";
      const m = Object.hasOwn(methods, name) ? methods[name] : undefined;
      if (m === undefined)
        return refuse(res, Code.NOT_FOUND, `${svc.descriptor.name} has no rpc or push ${JSON.stringify(raw[1])}`);
      if (method !== "POST") return sendWrongVerb(res, method, path, "POST");
      // Counted from here, before the body is read: a reload meanwhile must not release its client.
      const done = this.#use(svc);
      try {
        const body = await this.#body(req, res);
        if (body === undefined) return;
        return await this.#send(req, res, svc, m, body);
      } finally {
        done();
      }
    }
    if (raw[0] === "_fan" || (raw.length === 1 && raw[0] === "health"))
      return this.#own(req, res, catalog, raw, method, q < 0 ? undefined : url.slice(q + 1));
    const found = lookupRoute(catalog.routes, method, raw);
    if (found !== undefined && "allow" in found) return sendWrongVerb(res, method, path, found.allow);
    if (found !== undefined) {
      const { route, params } = found.match;
      const m = route.method;
      const target = catalog.service(route.service) as GatewayService;
      const done = this.#use(target);
      try {
        // GET, HEAD and DELETE: the path and the query string; POST, PUT and PATCH: the JSON body.
        const bodyless = isBodyless(method);
        const body = bodyless ? {} : await this.#body(req, res);
        if (body === undefined) return;
        const query = bodyless && q >= 0 ? new URLSearchParams(url.slice(q + 1)) : undefined;
        return await this.#send(req, res, target, m, bindParams(m.input, body, params, query));
      } finally {
        done();
      }
    }
    refuse(res, Code.NOT_FOUND, `no service, method or route at ${method} ${path} (GET /_fan/idl lists them)`);
  }

  /** `/health`, `/_fan/idl`, `/_fan/events/...`, `/_fan/states/...` (`search`: the query string, without `?`). */
  async #own(
    req: IncomingMessage,
    res: ServerResponse,
    catalog: Catalog,
    raw: readonly string[],
    method: string,
    search: string | undefined,
  ): Promise<void> {
    if (method !== "GET" && method !== "HEAD") return sendWrongVerb(res, method, `/${raw.join("/")}`, "GET, HEAD");
    if (raw[0] === "health") {
      const body = JSON.stringify({
        status: "SERVING",
        services: catalog.names(),
        transports: this.#o.app.transportNames(),
      });
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" }).end(body);
      return;
    }
    if (raw.length === 2 && raw[1] === "idl") {
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" }).end(catalog.idlJson);
      return;
    }
    const [, kind, service, member] = raw.map((s) => safeDecode(s) ?? "");
    if (raw.length !== 4 || (kind !== "events" && kind !== "states"))
      return refuse(
        res,
        Code.NOT_FOUND,
        `no such path; try /_fan/idl, /_fan/events/<service>/<event> or /_fan/states/<service>/<state>`,
      );
    const svc = catalog.service(service as string);
    if (svc === undefined) return refuse(res, Code.NOT_FOUND, `no service ${JSON.stringify(service)} in the IDL`);
    // From before the subscription is made (a reload meanwhile must not release it) to the stream's end.
    const done = this.#use(svc);
    let attached = false;
    try {
      attached = await this.#stream(req, res, svc, kind, member as string, service as string, search, method, done);
    } finally {
      if (!attached) done();
    }
  }

  /** `#own`'s event or state stream of `svc`; true once open (`done` is then called when it closes). */
  async #stream(
    req: IncomingMessage,
    res: ServerResponse,
    svc: GatewayService,
    kind: "events" | "states",
    member: string,
    service: string,
    search: string | undefined,
    method: string,
    done: () => void,
  ): Promise<boolean> {
    const d = svc.descriptor;
    const target = kind === "events" ? d.events[member] : d.states[member];
    if (target === undefined) {
      refuse(
        res,
        Code.NOT_FOUND,
        `${d.name} has no ${kind === "events" ? "event" : "state"} ${JSON.stringify(member)}`,
      );
      return false;
    }
    // A sharded state streams one shard: `?shard=N`, or `?key=K` (repeated for a tuple key); or all: `?shard=all`.
    let shard: number | "all" | undefined;
    if (kind === "states") {
      const picked = pickShard(d, target as StateDescriptor, search);
      if (typeof picked === "object") {
        refuse(res, Code.INVALID_ARGUMENT, picked.refused);
        return false;
      }
      shard = picked;
    }
    // HEAD has no body: answer the stream's headers and end, with no subscription or keepalive behind it.
    if (method === "HEAD") {
      res.writeHead(200, SSE_HEADERS).end();
      return false;
    }
    // Subscribe first: the stream opens (and EventSource fires `open`) only once nothing can be missed.
    const pending: string[] = [];
    let stream: ((data: string) => void) | undefined;
    const fn = (data: string): void => (stream === undefined ? void pending.push(data) : stream(data));
    let stop: () => void;
    try {
      stop =
        kind === "events"
          ? await this.#hub.attach(d, d.events[member] as NonNullable<(typeof d.events)[string]>, fn)
          : shard === "all"
            ? this.#states.attachAll(d, target as StateDescriptor, fn)
            : await this.#states.attach(d, target as StateDescriptor, shard, fn);
    } catch (e) {
      // No transport to subscribe on (the owners publish on one the gateway did not open, zmq
      // without an event hub): the browser gets 503 naming it rather than a stream that stays
      // silent. Another UNAVAILABLE (no owner of a state, a broker down) is 503 as `Exposure`
      // words it; anything else goes to #onRequest's answer to a failure.
      const stream = `/_fan/${kind}/${service}/${member}`;
      if (isGatewayRefusal(e)) {
        this.#o.log.warn({ stream, err: (e as Error).message }, "refused an event stream");
        refuse(res, Code.UNAVAILABLE, (e as Error).message, 503);
        return false;
      }
      if (!FanError.is(e) || e.code !== Code.UNAVAILABLE) throw e;
      const outside = this.#exposure.outside(wireErrorOf(e, d), e, newTraceId(), { service: d.name, path: stream });
      writeError(res, outside, {}, e);
      return false;
    }
    if (req.destroyed) {
      stop();
      return false;
    }
    const name = `/_fan/${kind}/${service}/${member}${shard === undefined ? "" : `?shard=${shard}`}`;
    const sse = openSse(res, {}, this.#o.log, name);
    const open: OpenStream = { service: d.name, kind, member, sse };
    stream = sse.send;
    for (const p of pending) sse.send(p);
    // A reload while the subscription was made may have removed what it streams.
    const gone = removed(this.#catalog, open);
    if (gone !== undefined) sse.fail({ code: Code.NOT_FOUND, message: gone });
    else this.#streams.set(res, open);
    res.once("close", () => {
      this.#streams.delete(res);
      stop();
      done();
    });
    return true;
  }

  /**
   * Reads and parses the JSON body (empty: `{}`); answers 400/413 itself and returns undefined.
   * Listens for `data`/`end` rather than iterating the request: the async iterator costs a
   * promise and an object per chunk, and most bodies come in one chunk.
   */
  async #body(req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown> | undefined> {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > this.#maxBody) {
      res.setHeader("connection", "close");
      refuse(res, Code.RESOURCE_EXHAUSTED, `a body of ${declared} bytes exceeds the limit of ${this.#maxBody}`, 413);
      return undefined;
    }
    const raw = await readBody(req, this.#maxBody);
    if (raw === undefined) {
      res.setHeader("connection", "close");
      refuse(res, Code.RESOURCE_EXHAUSTED, `the body exceeds the limit of ${this.#maxBody} bytes`, 413);
      // As leaving a `for await` over the request does: the rest of the body is not read.
      req.destroy();
      return undefined;
    }
    if (raw.length === 0) return {};
    let value: unknown;
    try {
      value = parseJson(raw, { maxBytes: this.#maxBody, maxDepth: 64 });
    } catch (e) {
      writeError(res, wireErrorOf(e, undefined));
      return undefined;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      refuse(res, Code.INVALID_ARGUMENT, "the body must be a JSON object of the method's parameters");
      return undefined;
    }
    return value as Record<string, unknown>;
  }

  #send(
    req: IncomingMessage,
    res: ServerResponse,
    svc: GatewayService,
    m: MethodDescriptor,
    body: unknown,
  ): Promise<void> {
    let headers: EnvelopeHeaders;
    try {
      headers = fromHttpHeaders(req.headers);
    } catch (e) {
      writeError(res, wireErrorOf(FanError.from(e, Code.INVALID_ARGUMENT), undefined));
      return Promise.resolve();
    }
    return relay(res, svc, m, body, headers, leaving(req), this.#exposure);
  }

  /** Counts a call or stream of `svc`; returns its end (once), which releases a retired entry left unused. */
  #use(svc: GatewayService): () => void {
    this.#uses.set(svc, (this.#uses.get(svc) ?? 0) + 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const n = (this.#uses.get(svc) ?? 1) - 1;
      if (n > 0) return void this.#uses.set(svc, n);
      this.#uses.delete(svc);
      if (this.#retired.delete(svc)) this.#release(svc);
    };
  }

  /** Releases the App's client of an entry a reload replaced (nothing uses it). */
  #release(svc: GatewayService): void {
    try {
      this.#o.release?.(svc.descriptor);
      this.#o.log.debug({ service: svc.descriptor.name }, "released the client of a service version a reload replaced");
    } catch (e) {
      this.#o.log.error({ err: e, service: svc.descriptor.name }, "releasing a replaced client failed");
    }
  }
}

/** An open event or state stream, as `swap` checks it against a new catalog. */
interface OpenStream {
  readonly service: string;
  readonly kind: "events" | "states";
  readonly member: string;
  readonly sse: SseStream;
}

/** Why `catalog` no longer serves the stream, or undefined when it does. */
function removed(catalog: Catalog, s: OpenStream): string | undefined {
  const d = catalog.service(s.service)?.descriptor;
  const what = `${s.kind === "events" ? "event" : "state"} ${s.service}.${s.member}`;
  if (d === undefined)
    return `the gateway's IDL was reloaded without service ${s.service}: the ${what} is no longer served`;
  if (!Object.hasOwn(s.kind === "events" ? d.events : d.states, s.member))
    return `the gateway's IDL was reloaded without the ${what}: it is no longer served`;
  return undefined;
}

/**
 * The shard a state stream names, undefined for a state that is not sharded, or why the query
 * does not name one (`refused`, answered 400). `?shard=N` is the shard's number; `?key=K` a key hashed as
 * a `@shard` method's key is (`watch({ key })`), repeated for a tuple key: the parts come as
 * text, which is the canonical form of a string, number, boolean or date part alike.
 * `?shard=all` names every shard (one stream for all, as `watchAll()`).
 */
function pickShard(
  svc: ServiceDescriptor,
  state: StateDescriptor,
  search: string | undefined,
): number | "all" | { readonly refused: string } | undefined {
  const label = `${svc.name}.${state.name}`;
  const q = search === undefined || search === "" ? undefined : new URLSearchParams(search);
  const shard = q?.getAll("shard") ?? [];
  const key = q?.getAll("key") ?? [];
  if (state.sharded !== true) {
    if (shard.length === 0 && key.length === 0) return undefined;
    return { refused: `${label} is not sharded (@shard): its stream takes no ?shard or ?key` };
  }
  const how = `name one with ?shard=<0..${svc.shards - 1}> or ?key=<key> (repeated for a tuple key), or every shard with ?shard=all`;
  if (shard.length === 0 && key.length === 0)
    return { refused: `${label} is sharded (@shard): the shard parameter is missing; ${how}` };
  if (shard.length > 0 && key.length > 0) return { refused: `${label}: give ?shard or ?key, not both` };
  if (key.length > 0) return shardOfKey(key, svc.shards);
  const text = shard.length === 1 ? (shard[0] as string) : "";
  if (text === "all") return "all";
  const n = /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN;
  if (!(n < svc.shards))
    return { refused: `${label} has shards 0..${svc.shards - 1}, not ?shard=${shard.join("&shard=")}` };
  return n;
}

/** The abort signal of each connection: fires when it closes (see `leaving`). */
const connectionSignals = new WeakMap<Socket, AbortSignal>();

/**
 * A signal that fires when the caller leaves: its connection closes before the answer is
 * written. An HTTP/1.1 client cannot abandon one request and keep the connection, so one
 * signal per connection serves every call made on it; a call that has answered no longer
 * listens (the runtime unregisters it when it settles). Made once per connection instead of
 * an AbortController and a `close` listener per request.
 */
function leaving(req: IncomingMessage): AbortSignal {
  const socket = req.socket;
  let signal = connectionSignals.get(socket);
  if (signal === undefined) {
    const ac = new AbortController();
    signal = ac.signal;
    // Pipelined requests run side by side, each call listening while it is pending (and no
    // longer): many listeners on this signal are expected, not a leak to warn about.
    setMaxListeners(0, signal);
    connectionSignals.set(socket, signal);
    if (socket.destroyed) ac.abort();
    else socket.once("close", () => ac.abort());
  }
  return signal;
}

/**
 * The request's body, or undefined once it passes `max` bytes (the rest is not read).
 * Rejects if the request errors (the caller left mid-body).
 */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  // Anonymous listeners, left in place: the request ends (or is destroyed past `max`) and
  // they go with it; naming them and removing them cost more than they save.
  return new Promise((resolve, reject) => {
    let first: Buffer | undefined;
    let more: Buffer[] | undefined;
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      if (size > max) return;
      size += chunk.length;
      if (size > max) resolve(undefined);
      else if (first === undefined) first = chunk;
      else {
        more ??= [first];
        more.push(chunk);
      }
    });
    req.once("end", () => resolve(more !== undefined ? Buffer.concat(more, size) : (first ?? EMPTY)));
    req.once("error", reject);
  });
}

const EMPTY = Buffer.alloc(0);
