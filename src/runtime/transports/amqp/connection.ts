/**
 * One amqplib connection that comes back by itself. After a broker restart, a lost socket or
 * a channel-only close, the connection and every managed channel are recreated and each
 * channel's setup steps (declare the topology, start consuming) run again. Senders wait for a
 * channel with a deadline instead of failing at once while the broker is away.
 */
import amqplib from "amqplib";
import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";
import type { Logger } from "pino";
import { Code, FanError } from "../../errors.js";
import { redactUrl, tlsReason, tlsRefusal } from "../tls-refusal.js";
import { Waiters } from "./waiters.js";

/** How to reach the broker and how eagerly to come back. */
export interface ConnectionOptions {
  /** Broker URLs, tried in turn (a RabbitMQ cluster's nodes). */
  readonly urls: readonly string[];
  /** Passed to amqplib's `connect` (`noDelay` is always set). */
  readonly socketOptions: Readonly<Record<string, unknown>>;
  /** Shown in the management UI and `rabbitmqctl list_connections`. */
  readonly connectionName: string;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly log: Logger;
}

/** A step that prepares a freshly opened channel: declare, bind, consume. */
export type Setup = (ch: Channel) => Promise<void>;

const CLOSE_TIMEOUT_MS = 2000;
/**
 * amqplib waits for the broker's side of the handshake without a bound: a broker that accepted
 * the TCP connection and then stalled (overloaded, out of file descriptors, half booted) would
 * hold that attempt, and every call, forever. Silence this long while connecting fails the
 * attempt, which is retried with backoff (`socketOptions.timeout` overrides it).
 */
const HANDSHAKE_TIMEOUT_MS = 5000;

function backoff(attempt: number, min: number, max: number): number {
  const d = Math.min(max, min * 2 ** Math.min(attempt, 16));
  return Math.round(d / 2 + (Math.random() * d) / 2);
}

/** The connection: reconnects with backoff across `urls` until closed. */
export class AmqpConnection {
  #model: ChannelModel | undefined;
  #started = false;
  #closed = false;
  #connecting = false;
  #attempt = 0;
  #urlIndex = 0;
  #timer: NodeJS.Timeout | undefined;
  #down: string | undefined;
  /**
   * The URLs whose last attempt failed its TLS handshake on a certificate (see tls-refusal.ts),
   * with the error callers get; a URL leaves it when an attempt on it fails for another reason,
   * and all do once connected.
   */
  readonly #refusedAt = new Map<string, FanError>();
  /** The error callers get at once: set while every URL of the list refused our TLS. */
  #refused: FanError | undefined;
  readonly #channels = new Set<ManagedChannel>();
  /** Channel closes in progress: the connection closes after them, so their frames go out first. */
  readonly #closing = new Set<Promise<unknown>>();
  readonly #waiters = new Waiters();

  constructor(readonly opts: ConnectionOptions) {}

  /** The open connection, if any. */
  get model(): ChannelModel | undefined {
    return this.#model;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Why the broker is unreachable (the last connect or connection error), while it is. */
  get down(): string | undefined {
    return this.#closed ? "amqp transport closed" : this.#down;
  }

  /** The broker URLs, without passwords, for messages. */
  get where(): string {
    return this.opts.urls.map(redactUrl).join(",");
  }

  /** While the last connect failed its TLS handshake on a certificate: the error callers get at once. */
  get refused(): FanError | undefined {
    return this.#closed ? undefined : this.#refused;
  }

  /** Starts connecting (idempotent). */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    void this.#connect();
  }

  /** A channel that is reopened, and set up again, whenever it or the connection is lost. */
  channel(name: string, confirm: boolean): ManagedChannel {
    const ch = new ManagedChannel(this, name, confirm, this.opts.log);
    this.#channels.add(ch);
    this.start();
    if (this.#model !== undefined) void ch.open(this.#model);
    return ch;
  }

  /** Forgets a disposed channel; `closing` settles once the broker confirmed its close. */
  release(ch: ManagedChannel, closing: Promise<unknown>): void {
    this.#channels.delete(ch);
    this.#closing.add(closing);
    void closing.then(() => this.#closing.delete(closing));
  }

  async #connect(): Promise<void> {
    if (this.#closed || this.#connecting || this.#model !== undefined) return;
    this.#connecting = true;
    const urls = this.opts.urls;
    const url = urls[this.#urlIndex++ % urls.length] as string;
    let model: ChannelModel;
    try {
      model = await amqplib.connect(url, {
        timeout: HANDSHAKE_TIMEOUT_MS,
        ...this.opts.socketOptions,
        noDelay: true,
        clientProperties: { connection_name: this.opts.connectionName },
      });
    } catch (e) {
      this.#connecting = false;
      this.#down = (e as Error).message;
      this.opts.log.warn(
        { err: (e as Error).message, url: redactUrl(url), attempt: this.#attempt },
        "amqp connect failed",
      );
      if (tlsRefusal(e))
        this.#refusedAt.set(
          url,
          new FanError(Code.UNAVAILABLE, `amqp ${redactUrl(url)}: TLS handshake failed: ${tlsReason(e)}`),
        );
      else this.#refusedAt.delete(url);
      // Fail fast only when no URL of the list can take us: a cluster node with a bad
      // certificate must not fail calls while another node restarts.
      const was = this.#refused;
      this.#refused = this.#refusedAt.size === new Set(urls).size ? this.#refusedAt.get(url) : undefined;
      if (this.#refused !== undefined && was === undefined) for (const ch of this.#channels) ch.recheck();
      this.#schedule();
      return;
    }
    this.#connecting = false;
    if (this.#closed) {
      model.close().catch(() => undefined);
      return;
    }
    this.#adopt(model, url);
  }

  #adopt(model: ChannelModel, url: string): void {
    coalesceWrites(model);
    model.on("error", (e: Error) => this.opts.log.warn({ err: e.message }, "amqp connection error"));
    model.on("close", (e?: Error) => this.#onClose(model, e));
    model.on("blocked", (reason: string) => this.opts.log.warn({ reason }, "amqp connection blocked by the broker"));
    model.on("unblocked", () => this.opts.log.info("amqp connection unblocked"));
    this.#model = model;
    this.#down = undefined;
    this.#refusedAt.clear();
    this.#refused = undefined;
    this.#attempt = 0;
    this.opts.log.info({ url: redactUrl(url) }, "amqp connected");
    for (const ch of this.#channels) void ch.open(model);
    this.#waiters.wake();
  }

  #onClose(model: ChannelModel, err: Error | undefined): void {
    if (this.#model !== model) return;
    this.#model = undefined;
    this.#down = err?.message ?? "connection closed";
    if (!this.#closed) this.opts.log.warn({ err: err?.message }, "amqp connection lost; reconnecting");
    for (const ch of this.#channels) ch.lost();
    this.#waiters.wake();
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed || this.#timer !== undefined) return;
    const delay = backoff(this.#attempt++, this.opts.minDelayMs, this.opts.maxDelayMs);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#connect();
    }, delay);
  }

  /** Closes every channel and the connection; bounded in time, never rejects. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#waiters.fail(new FanError(Code.UNAVAILABLE, "amqp transport closed"));
    for (const ch of [...this.#channels]) ch.dispose();
    const model = this.#model;
    await withTimeout(Promise.all([...this.#closing]), CLOSE_TIMEOUT_MS).catch(() => undefined);
    this.#model = undefined;
    if (model === undefined) return;
    await withTimeout(model.close(), CLOSE_TIMEOUT_MS).catch(() => destroySocket(model));
  }
}

/**
 * amqplib's multiplexer writes every frame to the socket on its own; with Nagle's algorithm off
 * that is a system call (and often a TCP segment) per frame. Corking the socket for each pass of
 * the multiplexer sends all frames of the pass in one write, with no delay added. Relies on
 * amqplib 0.10's `connection.muxer` and `connection.stream`; without them it does nothing.
 */
function coalesceWrites(model: ChannelModel): void {
  const conn = (model as unknown as { connection?: { muxer?: { _readIncoming?: () => void }; stream?: unknown } })
    .connection;
  const mux = conn?.muxer;
  const socket = conn?.stream as { cork?: () => void; uncork?: () => void } | undefined;
  if (
    mux === undefined ||
    typeof mux._readIncoming !== "function" ||
    typeof socket?.cork !== "function" ||
    typeof socket.uncork !== "function"
  )
    return;
  const pass = mux._readIncoming.bind(mux);
  const cork = socket.cork.bind(socket);
  const uncork = socket.uncork.bind(socket);
  mux._readIncoming = () => {
    cork();
    try {
      pass();
    } finally {
      uncork();
    }
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("timeout")), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

function destroySocket(model: ChannelModel): void {
  const stream = (model as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream;
  stream?.destroy?.();
}

/** Listeners of a managed channel's events. */
export interface ChannelListeners {
  /** A message published with `mandatory` came back unroutable. */
  onReturn?(msg: ConsumeMessage): void;
  /** The channel `ch` closed; work tied to it is gone. */
  onLost?(ch: Channel): void;
}

/** A channel that outlives reconnections: it is reopened and set up again each time. */
export class ManagedChannel {
  #ch: Channel | undefined;
  #opening = false;
  #disposed = false;
  /** The channel every current setup finished on (see `ready`). */
  #setUp: Channel | undefined = undefined;
  #failures = 0;
  /** Why the last setup failed (a 403 on a declaration, say), until a channel is set up. */
  #setupError: string | undefined;
  readonly #setups: Setup[] = [];
  readonly #ran = new WeakMap<Channel, Set<Setup>>();
  readonly #listeners = new Set<ChannelListeners>();
  readonly #waiters = new Waiters();

  constructor(
    private readonly conn: AmqpConnection,
    readonly name: string,
    readonly confirm: boolean,
    private readonly log: Logger,
  ) {}

  /** The open channel, if any. */
  get current(): Channel | undefined {
    return this.#ch;
  }

  /** Adds listeners; returns a function that removes them. */
  listen(l: ChannelListeners): () => void {
    this.#listeners.add(l);
    return () => this.#listeners.delete(l);
  }

  /** Adds a setup step that runs on every future channel (and on the open one, at `get`). */
  register(setup: Setup): void {
    this.#setups.push(setup);
    this.#setUp = undefined;
  }

  /**
   * The open channel when every registered setup has finished on it (opened with all of them,
   * none registered since): a call can go out at once, without `get`'s async steps.
   */
  get ready(): Channel | undefined {
    const ch = this.#ch;
    return ch !== undefined && ch === this.#setUp && !this.#disposed ? ch : undefined;
  }

  /** Removes a setup step (it will not run on the next channel). */
  unregister(setup: Setup): void {
    const i = this.#setups.indexOf(setup);
    if (i >= 0) this.#setups.splice(i, 1);
  }

  /**
   * The open channel with every registered setup run on it, waiting (bounded by `deadline`,
   * UNAVAILABLE after) while the broker is away; UNAVAILABLE at once while the connection's TLS
   * handshake fails on a certificate.
   */
  async get(deadline: number, signal?: AbortSignal): Promise<Channel> {
    for (;;) {
      if (this.#disposed) throw new FanError(Code.UNAVAILABLE, "amqp transport closed");
      const ch = this.#ch;
      if (ch !== undefined) {
        if (await this.#catchUp(ch)) return ch;
        continue;
      }
      const refused = this.conn.refused;
      if (refused !== undefined) throw refused;
      await this.#waiters.wait(deadline, signal, () => this.#late());
    }
  }

  /** While the channel is not ready: the error of a call that waited for it until its deadline. */
  stalled(): FanError | undefined {
    if (this.ready !== undefined) return undefined;
    if (this.#disposed) return new FanError(Code.UNAVAILABLE, "amqp transport closed");
    return this.conn.refused ?? this.#late();
  }

  #late(): FanError {
    const down = this.conn.down;
    if (down === undefined && this.#setupError !== undefined)
      return new FanError(
        Code.UNAVAILABLE,
        `amqp ${this.name} channel setup failed until the deadline (${this.conn.where}): ${this.#setupError}`,
      );
    return down === undefined
      ? new FanError(
          Code.DEADLINE_EXCEEDED,
          `amqp ${this.name} channel not ready before the deadline (${this.conn.where})`,
        )
      : new FanError(Code.UNAVAILABLE, `amqp broker unreachable until the deadline (${this.conn.where}): ${down}`);
  }

  /** Runs setups registered since `ch` opened; false when the channel was lost meanwhile. */
  async #catchUp(ch: Channel): Promise<boolean> {
    const ran = this.#ran.get(ch) as Set<Setup>;
    for (const s of [...this.#setups]) {
      if (ran.has(s)) continue;
      ran.add(s);
      await s(ch);
    }
    return this.#ch === ch;
  }

  /** Opens a channel on `model` and runs every setup on it. */
  async open(model: ChannelModel): Promise<void> {
    if (this.#disposed || this.#opening || this.#ch !== undefined) return;
    this.#opening = true;
    let ch: Channel | undefined;
    try {
      ch = this.confirm ? await model.createConfirmChannel() : await model.createChannel();
      this.#wire(ch);
      const ran = new Set<Setup>();
      this.#ran.set(ch, ran);
      for (let i = 0; i < this.#setups.length; i++) {
        const s = this.#setups[i] as Setup;
        ran.add(s);
        await s(ch);
      }
    } catch (e) {
      this.#opening = false;
      this.#failed(model, ch, e);
      return;
    }
    this.#opening = false;
    if (this.#disposed || this.conn.model !== model) {
      ch.close().catch(() => undefined);
      return;
    }
    this.#failures = 0;
    this.#setupError = undefined;
    this.#ch = ch;
    this.#setUp = ch;
    this.#waiters.wake();
  }

  #wire(ch: Channel): void {
    ch.on("error", (e: Error) => this.log.warn({ channel: this.name, err: e.message }, "amqp channel error"));
    ch.on("close", () => this.#onClose(ch));
    ch.on("return", (msg: ConsumeMessage) => {
      for (const l of this.#listeners) l.onReturn?.(msg);
    });
  }

  #failed(model: ChannelModel, ch: Channel | undefined, e: unknown): void {
    this.log.error({ channel: this.name, err: (e as Error).message }, "amqp channel setup failed; retrying");
    if (this.conn.model === model) this.#setupError = (e as Error).message;
    ch?.close().catch(() => undefined);
    const delay = backoff(this.#failures++, this.conn.opts.minDelayMs, this.conn.opts.maxDelayMs);
    setTimeout(() => {
      if (this.conn.model === model) void this.open(model);
    }, delay).unref();
  }

  #onClose(ch: Channel): void {
    if (this.#ch !== ch) return;
    this.#ch = undefined;
    for (const l of this.#listeners) l.onLost?.(ch);
    this.#waiters.wake();
    const model = this.conn.model;
    if (this.#disposed || model === undefined) return;
    this.log.warn({ channel: this.name }, "amqp channel closed; reopening");
    const delay = backoff(this.#failures++, this.conn.opts.minDelayMs, this.conn.opts.maxDelayMs);
    setTimeout(() => {
      if (this.conn.model === model) void this.open(model);
    }, delay).unref();
  }

  /**
   * Takes `ch` out of use without closing it: later `get`s get a fresh channel, while the
   * caller keeps `ch` for what is still in flight on it and closes it once that settled (a
   * close of `ch` is then not reported to the listeners). False when `ch` is not the current
   * channel.
   */
  retire(ch: Channel): boolean {
    if (this.#ch !== ch) return false;
    this.#ch = undefined;
    const model = this.conn.model;
    if (!this.#disposed && model !== undefined) void this.open(model);
    return true;
  }

  /** Wakes callers waiting in `get` so they look at the connection again (a refused TLS handshake). */
  recheck(): void {
    this.#waiters.wake();
  }

  /** The connection was lost: every channel on it is gone. */
  lost(): void {
    this.#setupError = undefined;
    const ch = this.#ch;
    if (ch === undefined) return;
    this.#ch = undefined;
    for (const l of this.#listeners) l.onLost?.(ch);
    this.#waiters.wake();
  }

  /**
   * Closes the channel for good; resolves (never rejects) once the broker confirmed the close,
   * so everything published on it before has been taken by the broker.
   */
  dispose(): Promise<void> {
    if (this.#disposed) return Promise.resolve();
    this.#disposed = true;
    const ch = this.#ch;
    this.#ch = undefined;
    this.#waiters.fail(new FanError(Code.UNAVAILABLE, "amqp transport closed"));
    if (ch !== undefined) for (const l of this.#listeners) l.onLost?.(ch);
    const closing = ch === undefined ? Promise.resolve() : ch.close().catch(() => undefined);
    this.conn.release(this, closing);
    return closing;
  }
}
