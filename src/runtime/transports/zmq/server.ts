/**
 * The zmq transport's server side: one ROUTER per transport, serving every bound instance.
 * Each message is handled on its own (never a stuck REQ/REP lockstep); replies go back
 * through the ROUTER to the DEALER that asked. Malformed messages are answered with an error
 * when their id frame is readable, and dropped with a log line otherwise; handshake failures
 * (bytes that are not ZMTP) are logged from the socket's monitor.
 *
 * Every reply and ack goes out through one FIFO writer (zeromq.js allows a single `send` in
 * progress per socket: a second one while the first waits throws "Socket is busy writing", so
 * under bursts answers were lost). At most `pushConcurrency` push handlers run at once; the
 * pushes beyond wait in arrival order (amqp and redis stop at their prefetch the same way).
 */
import type { Logger } from "pino";
import { Router } from "zeromq";
import type { ServiceDescriptor } from "../../descriptor.js";
import { Code, FanError } from "../../errors.js";
import { pushRefusal } from "../acked-push.js";
import type { Envelope, Inbound } from "../transport.js";
import { decodeEnvelope } from "../../codec/wire.js";
import { encodeFrameReply, wantsCompactReply } from "../replies.js";
import { errorEnvelope, frameBound, head, MAX_BATCH, Op, oversize, text } from "./frames.js";
import { Writer } from "./writer.js";
import { warnDropped } from "../../telemetry/drops.js";

/** Server-side options of the zmq transport. */
export interface ZmqServerOptions {
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

const MAX_ID = 256;

/** Answers queued for one peer in this event-loop turn: `[peer, head1, body1, ...]`. */
interface Outgoing {
  readonly frames: Array<Buffer | string>;
  pairs: number;
  bytes: number;
}

/** The ROUTER of one transport. */
export class ZmqServer {
  private router: Router | undefined;
  private writer: Writer | undefined;
  /** Push handlers running, and the pushes waiting for a slot. */
  private pushesRunning = 0;
  private readonly pushesWaiting: Array<() => void> = [];
  private listening: Promise<string> | undefined;
  private readonly bindings = new Map<string, Binding[]>();
  private readonly stopped = new Set<string>();
  private readonly running = new Map<string, AbortController>();
  private rr = 0;
  private inFlight = 0;
  private drained: (() => void) | undefined;
  private readonly outbox = new Map<string, Outgoing>();
  private flushing = false;

  constructor(
    private readonly opts: ZmqServerOptions,
    private readonly log: Logger,
    private readonly maxBytes: number,
  ) {}

  /** Binds (once) and resolves with the endpoint, `tcp://host:port`. */
  listen(): Promise<string> {
    this.listening ??= this.start();
    return this.listening;
  }

  private async start(): Promise<string> {
    const router = new Router({
      linger: 0,
      maxMessageSize: this.maxBytes * 2 + 64 * 1024,
      receiveHighWaterMark: 0,
      sendHighWaterMark: 0,
    });
    router.events.on("handshake:error:protocol", (e) =>
      this.log.warn(
        { address: e.address, err: e.error?.message },
        "zmq: dropped a connection that does not speak ZMTP",
      ),
    );
    router.events.on("handshake:error:other", (e) =>
      this.log.warn({ address: e.address, err: e.error?.message }, "zmq: dropped a connection whose handshake failed"),
    );
    const host = this.opts.host ?? "127.0.0.1";
    await router.bind(`tcp://${host}:${this.opts.port && this.opts.port > 0 ? this.opts.port : "*"}`);
    this.router = router;
    this.writer = new Writer(router, "zmq server");
    void this.receive(router);
    const port = new URL((router.lastEndpoint ?? "").replace(/^tcp:/, "http:")).port;
    const advertised = this.opts.advertiseHost ?? (host === "0.0.0.0" || host === "*" ? "127.0.0.1" : host);
    return `tcp://${advertised}:${port}`;
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

  private async receive(router: Router): Promise<void> {
    try {
      for await (const frames of router) this.onMessage(frames);
    } catch (e) {
      if (this.router !== undefined) this.log.error({ err: e }, "zmq: server receive loop failed");
    }
  }

  /** One message `[peer, head, body]`, or a batch `[peer, head1, body1, ...]` (frames.ts). */
  private onMessage(frames: Buffer[]): void {
    const peer = frames[0];
    const pairs = (frames.length - 1) / 2;
    if (peer === undefined || frames.length < 3 || !Number.isInteger(pairs)) {
      warnDropped(
        this.log,
        { transport: "zmq", endpoint: "server", reason: "malformed message" },
        { frames: frames.length, head: text(frames[1]).slice(0, 16) },
        "zmq: dropped a malformed message",
      );
      return;
    }
    if (pairs > 1) {
      let bytes = 0;
      for (let i = 1; i < frames.length; i++) bytes += (frames[i] as Buffer).byteLength;
      if (pairs > MAX_BATCH || bytes > this.maxBytes) {
        this.refuseBatch(peer, frames, pairs, bytes);
        return;
      }
    }
    const peerKey = peer.toString("latin1");
    for (let i = 1; i < frames.length; i += 2) this.onPair(peer, peerKey, frames[i] as Buffer, frames[i + 1] as Buffer);
  }

  private onPair(peer: Buffer, peerKey: string, headFrame: Buffer, body: Buffer): void {
    const h = text(headFrame);
    const op = h.charAt(0);
    const id = h.slice(1);
    if (id.length === 0 || id.length > maxId(id) || !(op === Op.CALL || op === Op.PUSH || op === Op.CANCEL)) {
      warnDropped(
        this.log,
        { transport: "zmq", endpoint: "server", reason: "malformed message" },
        { head: h.slice(0, 16) },
        "zmq: dropped a malformed message",
      );
      return;
    }
    const key = `${id}\u0000${peerKey}`;
    if (op === Op.CANCEL) {
      this.running.get(key)?.abort(new FanError(Code.CANCELLED, "cancelled by the caller"));
      return;
    }
    this.track(this.handle(peer, op, id, key, body));
  }

  /** A batch over the bounds: every call and push in it with a readable head is refused RESOURCE_EXHAUSTED. */
  private refuseBatch(peer: Buffer, frames: Buffer[], pairs: number, bytes: number): void {
    const err = new FanError(
      Code.RESOURCE_EXHAUSTED,
      `batch of ${pairs} messages and ${bytes} bytes exceeds the limit of ${MAX_BATCH} messages or ${this.maxBytes} bytes`,
    );
    this.log.warn({ pairs, bytes }, "zmq: refused a batch over the bounds");
    for (let i = 1; i < frames.length; i += 2) {
      const h = text(frames[i]);
      const op = h.charAt(0);
      const id = h.slice(1);
      if (id.length === 0 || id.length > maxId(id)) continue;
      if (op === Op.CALL) this.send([peer, head(Op.REPLY, id), this.answer(id, errorEnvelope(callId(id), err))]);
      else if (op === Op.PUSH)
        this.send([peer, head(Op.NACK, id), JSON.stringify({ code: err.code, message: err.message })]);
    }
  }

  private track(work: Promise<void>): void {
    this.inFlight++;
    work.then(this.settled, (e: unknown) => {
      this.log.error({ err: e }, "zmq: message handling failed");
      this.settled();
    });
  }

  private readonly settled = (): void => {
    this.inFlight--;
    if (this.inFlight === 0) this.drained?.();
  };

  private async handle(peer: Buffer, op: string, id: string, key: string, body: Buffer): Promise<void> {
    const target = this.decode(op === Op.CALL ? callId(id) : id, body);
    if (!("binding" in target)) {
      if (op === Op.CALL) this.send([peer, head(Op.REPLY, id), this.answer(id, target.error)]);
      else this.send([peer, head(Op.NACK, id), JSON.stringify(target.error.payload)]);
      return;
    }
    if (op === Op.PUSH) {
      await this.push(peer, id, target.binding, target.env);
      return;
    }
    const ac = new AbortController();
    this.running.set(key, ac);
    try {
      const reply = await target.binding.inbound.call(target.env, ac.signal);
      if (!ac.signal.aborted) this.send([peer, head(Op.REPLY, id), this.answer(id, reply)]);
    } finally {
      this.running.delete(key);
    }
  }

  /** Decodes and addresses a message, or says which error answers it. */
  private decode(id: string, body: Buffer): { binding: Binding; env: Envelope } | { error: Envelope } {
    let env: Envelope;
    try {
      env = decodeEnvelope(body, { maxBytes: this.maxBytes });
    } catch (e) {
      const err = FanError.from(e, Code.INVALID_ARGUMENT);
      warnDropped(
        this.log,
        { transport: "zmq", endpoint: "server", reason: "undecodable" },
        { id, err: err.message },
        "zmq: refused a message that does not decode (INVALID_ARGUMENT)",
      );
      return { error: errorEnvelope(id, err) };
    }
    const binding = this.pick(env.service);
    if (binding === undefined) {
      const stopping = this.stopped.has(env.service);
      const err = new FanError(
        stopping ? Code.UNAVAILABLE : Code.NOT_FOUND,
        stopping ? `service ${env.service} is stopping here` : `unknown service ${env.service}`,
      );
      return { error: errorEnvelope(id, err, env.service, env.method) };
    }
    if (!Object.hasOwn(binding.service.methods, env.method)) {
      return {
        error: errorEnvelope(
          id,
          new FanError(Code.UNIMPLEMENTED, `unknown method ${env.service}/${env.method}`),
          env.service,
          env.method,
        ),
      };
    }
    return { binding, env: env.id === id ? env : { ...env, id } };
  }

  private pick(service: string): Binding | undefined {
    const list = this.bindings.get(service);
    if (list === undefined || list.length === 0) return undefined;
    this.rr = (this.rr + 1) % list.length;
    return list[this.rr];
  }

  private async push(peer: Buffer, id: string, binding: Binding, env: Envelope): Promise<void> {
    if (this.pushesRunning >= Math.max(1, this.opts.pushConcurrency ?? 64))
      await new Promise<void>((resolve) => this.pushesWaiting.push(resolve));
    else this.pushesRunning++;
    try {
      await binding.inbound.push(env);
    } catch (e) {
      this.send([peer, head(Op.NACK, id), JSON.stringify(pushRefusal(e))]);
      return;
    } finally {
      // Hand the slot to the next waiting push, or free it.
      const next = this.pushesWaiting.shift();
      if (next !== undefined) next();
      else this.pushesRunning--;
    }
    this.send([peer, head(Op.ACK, id), ""]);
  }

  /**
   * The body of the `R` frame answering call `id` (as received, with its mark when it has one)
   * with `out`, a reply or error: compact (`=`/`!` and the payload's JSON, replies.ts) when the id
   * asked for it and `out` has no headers, else the envelope; RESOURCE_EXHAUSTED when too large.
   */
  private answer(id: string, out: Envelope): string {
    const compact = wantsCompactReply(id);
    const json = encodeFrameReply(out, compact);
    const size = oversize(json, this.maxBytes);
    if (size === 0) return json;
    const err = errorEnvelope(
      out.id,
      { code: Code.RESOURCE_EXHAUSTED, message: `reply of ${size} bytes exceeds the limit of ${this.maxBytes}` },
      out.service,
      out.method,
    );
    return encodeFrameReply(err, compact);
  }

  /**
   * Queues `[peer, head, body]`; what is queued for one peer in this event-loop turn goes out as
   * one message (a batch when more than one, bounded like the client's: frames.ts).
   */
  private send(frames: [Buffer, string, Buffer | string]): void {
    const key = frames[0].toString("latin1");
    const size = frameBound(frames[1]) + frameBound(frames[2]);
    let out = this.outbox.get(key);
    if (out !== undefined && (out.pairs >= MAX_BATCH || out.bytes + size > this.maxBytes)) {
      this.write(out.frames);
      out = undefined;
    }
    if (out === undefined) this.outbox.set(key, { frames, pairs: 1, bytes: size });
    else {
      out.frames.push(frames[1], frames[2]);
      out.pairs++;
      out.bytes += size;
    }
    if (!this.flushing) {
      this.flushing = true;
      process.nextTick(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushing = false;
    for (const out of this.outbox.values()) this.write(out.frames);
    this.outbox.clear();
  };

  /**
   * Queues a message behind the send in progress (unroutable replies to a vanished peer are
   * dropped by the ROUTER itself); one that cannot be sent is a warning: its caller waits out
   * its deadline.
   */
  private write(frames: Array<Buffer | string>): void {
    const writer = this.writer;
    if (writer === undefined || this.router === undefined) {
      this.log.warn({ pairs: (frames.length - 1) / 2 }, "zmq: reply not sent: the server is closed");
      return;
    }
    writer
      .send(frames)
      .catch((e: unknown) =>
        this.log.warn({ err: (e as Error).message, pairs: (frames.length - 1) / 2 }, "zmq: reply not sent"),
      );
  }

  /** Waits for in-flight messages up to `graceMs`, then closes the socket (queued replies linger at most 1 s). */
  async close(graceMs: number): Promise<void> {
    if (this.listening === undefined) return;
    await this.listening.catch(() => undefined);
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const ac of this.running.values()) ac.abort(new FanError(Code.UNAVAILABLE, "server closing"));
    this.flush();
    await this.writer?.idle(Math.min(graceMs, 1000));
    const router = this.router;
    this.router = undefined;
    if (router === undefined) return;
    // Replies already queued still reach their peers: a bounded linger, never a hang.
    router.linger = Math.min(graceMs, 1000);
    router.close();
  }
}

/** A call's id without the compact mark (replies.ts) its message head may carry. */
function callId(id: string): string {
  return wantsCompactReply(id) ? id.slice(1) : id;
}

/** The longest id a head may carry: an envelope id's limit, plus the compact mark when it has one. */
function maxId(id: string): number {
  return wantsCompactReply(id) ? MAX_ID + 1 : MAX_ID;
}
