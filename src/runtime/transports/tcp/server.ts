/**
 * The tcp transport's server side: one node:net server per transport, serving every bound
 * instance; each connection is read as frames (frames.ts), each call and push handled on its
 * own, answers coalesced per connection and event-loop turn into one write.
 *
 * Bad input never stops the server: a connection that does not open with the preamble, or
 * declares a frame length far over the limit, is logged and dropped (a frame stream cannot be
 * resynchronised); a frame over the size limit is skipped and answered RESOURCE_EXHAUSTED; a
 * body that does not decode is answered INVALID_ARGUMENT; a frame with an unknown operation is
 * dropped with a warning. At most `pushConcurrency` push handlers run at once; the pushes
 * beyond wait in arrival order.
 */
import { createServer, type Server, type Socket } from "node:net";
import type { Logger } from "pino";
import type { ServiceDescriptor } from "../../descriptor.js";
import { Code, FanError } from "../../errors.js";
import { pushRefusal } from "../acked-push.js";
import { LazyAbort } from "../abort.js";
import type { Envelope, Inbound } from "../transport.js";
import { decodeEnvelope, encodeEnvelopeText, utf8SizeOver } from "../../codec/wire.js";
import { compactPayload } from "../replies.js";
import { FrameReader, type FrameSink, FrameWriter, Op } from "./frames.js";
import { warnDropped } from "../../telemetry/drops.js";

/** Server-side options of the tcp transport. */
export interface TcpServerOptions {
  /** Interface to bind; default 127.0.0.1. */
  readonly host?: string;
  /** Port; default 0 (chosen by the OS). */
  readonly port?: number;
  /** Host advertised in the endpoint; default the bind host (127.0.0.1 for 0.0.0.0). */
  readonly advertiseHost?: string;
  /** Push handlers running at once on this transport; the pushes beyond wait in order. Default 64. */
  readonly pushConcurrency?: number;
}

interface Binding {
  readonly service: ServiceDescriptor;
  readonly inbound: Inbound;
}

/** One client connection: its reader, its writer and the calls running for it. */
class Peer implements FrameSink {
  readonly reader: FrameReader;
  readonly out: FrameWriter;
  readonly running = new Map<number, LazyAbort>();
  closed = false;
  /** The client asked for compact answers to its calls (`Op.COMPACT`). */
  compact = false;

  constructor(
    private readonly server: TcpServer,
    readonly socket: Socket,
    maxBytes: number,
  ) {
    this.reader = new FrameReader(maxBytes, this, true);
    this.out = new FrameWriter(socket);
  }

  frame(op: number, corr: number, body: Buffer): void {
    this.server.onFrame(this, op, corr, body);
  }

  oversize(op: number, corr: number, bytes: number): void {
    this.server.onOversize(this, op, corr, bytes);
  }

  garbage(why: string): void {
    this.server.onGarbage(this, why);
  }
}

/** The server of one transport. */
export class TcpServer {
  private server: Server | undefined;
  private listening: Promise<string> | undefined;
  private readonly peers = new Set<Peer>();
  private readonly bindings = new Map<string, Binding[]>();
  private readonly stopped = new Set<string>();
  private pushesRunning = 0;
  private readonly pushesWaiting: Array<() => void> = [];
  private rr = 0;
  private inFlight = 0;
  private drained: (() => void) | undefined;

  constructor(
    private readonly opts: TcpServerOptions,
    private readonly log: Logger,
    private readonly maxBytes: number,
  ) {}

  /** Listens (once) and resolves with the endpoint, `tcp://host:port`. */
  listen(): Promise<string> {
    this.listening ??= this.start();
    return this.listening;
  }

  private start(): Promise<string> {
    const host = this.opts.host ?? "127.0.0.1";
    const server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port ?? 0, host, () => {
        server.off("error", reject);
        server.on("error", (e) => this.log.error({ err: e }, "tcp: server error"));
        this.server = server;
        const addr = server.address();
        const port = typeof addr === "object" && addr !== null ? addr.port : 0;
        const advertised = this.opts.advertiseHost ?? (host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host);
        resolve(`tcp://${advertised.includes(":") ? `[${advertised}]` : advertised}:${port}`);
      });
    });
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    const peer = new Peer(this, socket, this.maxBytes);
    this.peers.add(peer);
    peer.out.queue(Op.HELLO, 0, "");
    socket.on("data", (chunk: Buffer) => peer.reader.push(chunk));
    socket.on("error", (e) => this.log.debug({ err: e.message }, "tcp: connection error"));
    socket.on("close", () => {
      peer.closed = true;
      this.peers.delete(peer);
      for (const ac of peer.running.values()) ac.abort(new FanError(Code.CANCELLED, "the caller's connection closed"));
      peer.running.clear();
    });
  }

  /** Adds an instance; returns a function that removes it (new calls then get UNAVAILABLE). */
  add(service: ServiceDescriptor, inbound: Inbound): () => void {
    const binding: Binding = { service, inbound };
    const list = this.bindings.get(service.name) ?? [];
    list.push(binding);
    this.bindings.set(service.name, list);
    this.stopped.delete(service.name);
    return () => {
      const rest = (this.bindings.get(service.name) ?? []).filter((b) => b !== binding);
      if (rest.length > 0) this.bindings.set(service.name, rest);
      else {
        this.bindings.delete(service.name);
        this.stopped.add(service.name);
      }
    };
  }

  /** One frame from a peer. */
  onFrame(peer: Peer, op: number, corr: number, body: Buffer): void {
    if (op === Op.CALL) this.call(peer, corr, body);
    else if (op === Op.PUSH) this.track(this.push(peer, corr, body));
    else if (op === Op.CANCEL) peer.running.get(corr)?.abort(new FanError(Code.CANCELLED, "cancelled by the caller"));
    else if (op === Op.COMPACT) peer.compact = true;
    else
      warnDropped(
        this.log,
        { transport: "tcp", endpoint: "server", reason: "unknown operation" },
        { op, corr, bytes: body.length, remote: peer.socket.remoteAddress },
        "tcp: dropped a frame with an unknown operation",
      );
  }

  /** A frame over the size limit (skipped): a call or push is refused RESOURCE_EXHAUSTED. */
  onOversize(peer: Peer, op: number, corr: number, bytes: number): void {
    const err = new FanError(
      Code.RESOURCE_EXHAUSTED,
      `message of ${bytes} bytes exceeds the limit of ${this.maxBytes}`,
    );
    warnDropped(
      this.log,
      { transport: "tcp", endpoint: "server", reason: "oversize" },
      { op, corr, bytes, remote: peer.socket.remoteAddress },
      "tcp: refused a frame over the size limit",
    );
    if (op === Op.CALL) peer.out.queue(Op.REPLY, corr, encodeEnvelopeText(errorEnvelope("", err)));
    else if (op === Op.PUSH) peer.out.queue(Op.NACK, corr, JSON.stringify({ code: err.code, message: err.message }));
  }

  /** Bytes that are not frames: the connection is dropped, the server keeps serving the others. */
  onGarbage(peer: Peer, why: string): void {
    warnDropped(
      this.log,
      { transport: "tcp", endpoint: "server", reason: "not frames" },
      { remote: peer.socket.remoteAddress, why },
      "tcp: dropped a connection that does not speak fan's tcp protocol",
    );
    peer.socket.destroy();
  }

  private call(peer: Peer, corr: number, body: Buffer): void {
    const target = this.decode(body);
    if (!("binding" in target)) {
      peer.out.queue(Op.REPLY, corr, encodeEnvelopeText(target.error));
      return;
    }
    // Made a real AbortSignal only if the handler reads it (abort.ts): an AbortController per
    // call was the largest single cost of the server's call path at c=1.
    const ac = new LazyAbort();
    peer.running.set(corr, ac);
    this.inFlight++;
    target.binding.inbound.call(target.env, ac).then(
      (reply) => {
        peer.running.delete(corr);
        if (!ac.aborted && !peer.closed) this.answer(peer, corr, reply);
        this.settled();
      },
      (e: unknown) => {
        peer.running.delete(corr);
        this.log.error({ err: e }, "tcp: call handling failed");
        this.settled();
      },
    );
  }

  private track(work: Promise<void>): void {
    this.inFlight++;
    work.then(this.settled, (e: unknown) => {
      this.log.error({ err: e }, "tcp: push handling failed");
      this.settled();
    });
  }

  private readonly settled = (): void => {
    this.inFlight--;
    if (this.inFlight === 0) this.drained?.();
  };

  /** Decodes and addresses a message, or says which error answers it. */
  private decode(body: Buffer): { binding: Binding; env: Envelope } | { error: Envelope } {
    let env: Envelope;
    try {
      env = decodeEnvelope(body, { maxBytes: this.maxBytes });
    } catch (e) {
      const err = FanError.from(e, Code.INVALID_ARGUMENT);
      warnDropped(
        this.log,
        { transport: "tcp", endpoint: "server", reason: "undecodable" },
        { err: err.message },
        "tcp: refused a message that does not decode (INVALID_ARGUMENT)",
      );
      return { error: errorEnvelope("", err) };
    }
    const binding = this.pick(env.service);
    if (binding === undefined) {
      const stopping = this.stopped.has(env.service);
      const err = new FanError(
        stopping ? Code.UNAVAILABLE : Code.NOT_FOUND,
        stopping ? `service ${env.service} is stopping here` : `unknown service ${env.service}`,
      );
      return { error: errorEnvelope(env.id, err, env.service, env.method) };
    }
    if (!Object.hasOwn(binding.service.methods, env.method)) {
      return {
        error: errorEnvelope(
          env.id,
          new FanError(Code.UNIMPLEMENTED, `unknown method ${env.service}/${env.method}`),
          env.service,
          env.method,
        ),
      };
    }
    return { binding, env };
  }

  private pick(service: string): Binding | undefined {
    const list = this.bindings.get(service);
    if (list === undefined || list.length === 0) return undefined;
    if (list.length === 1) return list[0];
    this.rr = (this.rr + 1) % list.length;
    return list[this.rr];
  }

  private async push(peer: Peer, corr: number, body: Buffer): Promise<void> {
    const target = this.decode(body);
    if (!("binding" in target)) {
      peer.out.queue(Op.NACK, corr, JSON.stringify(target.error.payload));
      return;
    }
    if (this.pushesRunning >= Math.max(1, this.opts.pushConcurrency ?? 64))
      await new Promise<void>((resolve) => this.pushesWaiting.push(resolve));
    else this.pushesRunning++;
    try {
      await target.binding.inbound.push(target.env);
    } catch (e) {
      if (!peer.closed) peer.out.queue(Op.NACK, corr, JSON.stringify(pushRefusal(e)));
      return;
    } finally {
      // Hand the slot to the next waiting push, or free it.
      const next = this.pushesWaiting.shift();
      if (next !== undefined) next();
      else this.pushesRunning--;
    }
    if (peer.closed)
      this.log.warn({ id: target.env.id }, "tcp: push handled, but its ack is lost: the caller's connection closed");
    else peer.out.queue(Op.ACK, corr, "");
  }

  /** Answers a call: compactly (`ok`, `fail`) to a peer that asked for it, else its envelope. */
  private answer(peer: Peer, corr: number, reply: Envelope): void {
    const json = peer.compact ? compactPayload(reply) : undefined;
    if (json === undefined || utf8SizeOver(json, this.maxBytes) >= 0) {
      peer.out.queue(Op.REPLY, corr, this.encodeReply(reply));
      return;
    }
    peer.out.queue(reply.kind === "reply" ? Op.OK : Op.FAIL, corr, json);
  }

  private encodeReply(reply: Envelope): string {
    const json = encodeEnvelopeText(reply);
    const size = utf8SizeOver(json, this.maxBytes);
    if (size < 0) return json;
    return encodeEnvelopeText(
      errorEnvelope(
        reply.id,
        new FanError(Code.RESOURCE_EXHAUSTED, `reply of ${size} bytes exceeds the limit of ${this.maxBytes}`),
        reply.service,
        reply.method,
      ),
    );
  }

  /** Stops accepting, waits for in-flight messages up to `graceMs`, sends what is queued, closes every connection. */
  async close(graceMs: number): Promise<void> {
    if (this.listening === undefined) return;
    await this.listening.catch(() => undefined);
    const server = this.server;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const peers = [...this.peers];
    for (const p of peers) {
      for (const ac of p.running.values()) ac.abort(new FanError(Code.UNAVAILABLE, "server closing"));
      p.out.flush();
      p.socket.end();
    }
    // Queued answers get at most a second to leave, then connections are cut: never a hang.
    const timer = setTimeout(
      () => {
        for (const p of peers) p.socket.destroy();
      },
      Math.min(graceMs, 1000),
    );
    await closed;
    clearTimeout(timer);
  }
}

/** An error envelope answering a message (service and method may be unknown when its body was refused). */
function errorEnvelope(id: string, err: FanError, service = "", method = ""): Envelope {
  return { v: 1, id, kind: "error", service, method, headers: {}, payload: { code: err.code, message: err.message } };
}
