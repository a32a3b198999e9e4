/**
 * The admin port of an App not on http (`createApp({ admin: { port } })`): a bare node:http
 * server answering `GET /metrics`, `/health` and `/ready` through the App's `AdminHook`, and
 * 404 for anything else. Opened at the beginning of start (so `/ready` can say "not yet"),
 * closed at the end of stop.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { AdminHook, AdminOptions } from "./index.js";

/** Writes the admin answer to `path`, if it is an admin path; false otherwise. */
export function answerAdmin(hook: AdminHook, req: IncomingMessage, res: ServerResponse, log: Logger): boolean {
  if (req.method !== "GET" && req.method !== "HEAD") return false;
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  const reply = hook(q < 0 ? url : url.slice(0, q));
  if (reply === undefined) return false;
  reply.then(
    (r) => {
      res.writeHead(r.status, { "content-type": r.contentType, "content-length": Buffer.byteLength(r.body) });
      res.end(req.method === "HEAD" ? undefined : r.body);
    },
    (e: unknown) => {
      log.error({ err: e }, `admin: ${url} failed`);
      if (!res.headersSent) res.writeHead(500).end();
    },
  );
  return true;
}

/** The admin server of one App. */
export class AdminServer {
  #server: Server | undefined;

  constructor(
    private readonly opts: AdminOptions,
    private readonly hook: AdminHook,
    private readonly log: Logger,
  ) {}

  /** Listens; resolves with `http://host:port`. */
  async open(): Promise<string> {
    const server = createServer((req, res) => {
      if (!answerAdmin(this.hook, req, res, this.log))
        res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    });
    this.#server = server;
    const host = this.opts.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const { port } = server.address() as AddressInfo;
    const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
    this.log.info({ url }, "admin port open: /metrics, /health, /ready");
    return url;
  }

  /** The bound port (after `open`). */
  get port(): number | undefined {
    return (this.#server?.address() as AddressInfo | null)?.port;
  }

  /** Closes the server and its idle connections. */
  async close(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (s === undefined) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }
}
