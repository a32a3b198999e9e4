/**
 * The one NATS connection of a transport (`@nats-io/transport-node`). It keeps trying to connect
 * (first connection included) and comes back by itself after a server restart, resubscribing
 * everything; the transport learns of losses and returns through `onDown`/`onUp` and never
 * publishes into the client's reconnect buffer: a send waits for the connection (bounded by its
 * deadline) instead, so a message that never left can say so.
 */
import { connect, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Code, FanError } from "../../errors.js";
import { onAbort } from "../abort.js";
import { atDeadline } from "../deadline-timer.js";
import { redactUrl, tlsReason, tlsRefusal } from "../tls-refusal.js";
import { tlsProbe } from "./tls-probe.js";

/** How to reach NATS. */
export interface NatsConnectOptions {
  /** `nats://host:port`, or the URLs of a NATS cluster's servers; default `nats://127.0.0.1:4222`. */
  readonly url?: string | readonly string[];
  /** Options of `@nats-io/transport-node`'s `connect` (auth, tls, ...), passed through. */
  readonly nats?: Partial<NodeConnectionOptions>;
}

/** How long the connection is down before a probe asks the servers whether they refuse our certificate (tls-probe.ts), and between probes while they do. */
const PROBE_AFTER_MS = 500;
/** Between probes while it stays down, and the bound of one probe. */
const PROBE_EVERY_MS = 2_000;

/** A managed connection: ready/up state, loss and return callbacks. */
export class NatsLink {
  readonly #log: Logger;
  readonly #downs = new Set<(why: string) => void>();
  readonly #ups = new Set<() => void>();
  readonly #waiters = new Set<() => void>();
  #nc: NatsConnection | undefined;
  #up = false;
  #closed = false;
  /** Why the connection is down (undefined while it is up or still connecting for the first time). */
  #down: string | undefined;
  /** Why the last attempt or probe failed its TLS handshake on a certificate (see tls-refusal.ts); undefined once up. */
  #refused: string | undefined;
  /** The servers, for error messages. */
  readonly #servers: string;
  /** The servers as given and our TLS options, for the probes. */
  readonly #probeTo: { readonly servers: readonly string[]; readonly tls: NodeConnectionOptions["tls"] };
  #probing = false;
  /** Abandons the first connect's pending attempt for a fresh one (set while one is pending). */
  #redial: (() => void) | undefined;

  constructor(o: NatsConnectOptions, name: string, log: Logger) {
    this.#log = log;
    const servers = o.url === undefined ? ["nats://127.0.0.1:4222"] : typeof o.url === "string" ? [o.url] : [...o.url];
    this.#servers = servers.map(redactUrl).join(",");
    this.#probeTo = { servers, tls: o.nats?.tls };
    void this.#probeWhileDown();
    void this.#first({
      name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      pingInterval: 10_000,
      maxPingOut: 2,
      // nats.js builds two Error objects (stack traces) per request for a longer trace of a
      // failed one: a third of a JetStream publish's CPU. fan's errors name the operation anyway.
      noAsyncTraces: true,
      ...o.nats,
      servers,
    });
  }

  /**
   * Tries to connect until it works or the link is closed (a failure is logged once). An attempt
   * the servers refused our certificate on waits for nats.js's `timeout` (tls-probe.ts): once the
   * probes find them letting us in, it is left to end by itself (closed if it ever connects) and
   * a fresh one starts.
   */
  async #first(opts: NodeConnectionOptions): Promise<void> {
    let logged = false;
    while (!this.#closed) {
      const attempt = connect(opts);
      const redial = new Promise<undefined>((r) => {
        this.#redial = () => r(undefined);
      });
      try {
        const nc = await Promise.race([attempt, redial]);
        if (nc === undefined) {
          attempt
            .then(
              (left) => left.close(),
              () => undefined,
            )
            .catch(() => undefined);
          continue;
        }
        this.#adopt(nc);
        return;
      } catch (e) {
        this.#down = (e as Error).message;
        // nats.js's timeout is what a refused certificate looks like to it (tls-probe.ts): the probes judge that one.
        if (tlsRefusal(e)) this.#refused = tlsReason(e);
        else if ((e as Error).name !== "TimeoutError") this.#refused = undefined;
        if (!logged)
          this.#log.warn({ servers: this.#servers, err: this.#down }, "cannot connect to nats; trying again");
        logged = true;
        this.#wake();
        await new Promise((r) => setTimeout(r, 250));
      } finally {
        this.#redial = undefined;
      }
    }
  }

  #adopt(nc: NatsConnection): void {
    this.#nc = nc;
    if (this.#closed) {
      void nc.close().catch(() => undefined);
      return;
    }
    this.#up = true;
    this.#down = undefined;
    this.#refused = undefined;
    this.#wake();
    void this.#watch(nc);
    void nc.closed().then(() => {
      this.#up = false;
      this.#down ??= "connection closed";
      this.#wake();
    });
  }

  async #watch(nc: NatsConnection): Promise<void> {
    try {
      await this.#statuses(nc);
    } catch (e) {
      this.#log.warn({ err: (e as Error).message }, "nats status watch ended");
    }
  }

  async #statuses(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        if (!this.#up) {
          failHandshake(nc);
          continue;
        }
        this.#up = false;
        this.#down = `disconnected from ${s.server}`;
        this.#log.warn({ server: s.server }, "nats connection lost; reconnecting");
        for (const f of [...this.#downs]) f(this.#down);
        void this.#probeWhileDown();
      } else if (s.type === "reconnect") {
        this.#up = true;
        this.#down = undefined;
        this.#refused = undefined;
        this.#log.info({ server: s.server }, "nats connection back");
        this.#wake();
        for (const f of [...this.#ups]) f();
      }
    }
  }

  /**
   * While the connection is down, asks every server every few seconds whether it refuses our TLS
   * certificate: a refusal by all of them fails calls at once, as nats.js itself cannot report
   * it (tls-probe.ts); a server that accepts again (or fails otherwise) clears it.
   */
  async #probeWhileDown(): Promise<void> {
    if (this.#probing) return;
    this.#probing = true;
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());
    try {
      await pause(PROBE_AFTER_MS);
      while (!this.up && !this.#closed) {
        const { servers, tls } = this.#probeTo;
        const why = await Promise.all(servers.map((s) => tlsProbe(s, tls, PROBE_EVERY_MS)));
        if (this.up || this.#closed) break;
        const refused = why.every((w) => w !== undefined) ? why[0] : undefined;
        if (refused !== this.#refused) {
          // The servers let us in again: the first connect's attempt they refused would wait for its timeout.
          if (refused === undefined) this.#redial?.();
          if (refused !== undefined)
            this.#log.warn(
              { servers: this.#servers, err: refused },
              "nats refuses our TLS certificate; calls fail until it accepts",
            );
          this.#refused = refused;
          this.#wake();
        }
        // While refused, sooner: the first connect starts again only when a probe finds us let in.
        await pause(this.#refused === undefined ? PROBE_EVERY_MS : PROBE_AFTER_MS);
      }
    } finally {
      this.#probing = false;
    }
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** True while connected. */
  get up(): boolean {
    return this.#up && !this.#closed;
  }

  /** The connection once it was made (it may be reconnecting); undefined before. */
  get nc(): NatsConnection | undefined {
    return this.#nc;
  }

  /** Calls `f` with the reason whenever the connection drops. */
  onDown(f: (why: string) => void): () => void {
    this.#downs.add(f);
    return () => this.#downs.delete(f);
  }

  /** Calls `f` whenever the connection comes back. */
  onUp(f: () => void): () => void {
    this.#ups.add(f);
    return () => this.#ups.delete(f);
  }

  /** The error of a call while the TLS handshake is refused. */
  #refusal(why: string): FanError {
    return new FanError(Code.UNAVAILABLE, `nats ${this.#servers}: TLS handshake failed: ${why}`);
  }

  /**
   * The connection, once it is up; at the deadline rejects with UNAVAILABLE when NATS is known to
   * be down (DEADLINE_EXCEEDED while it is merely connecting), CANCELLED when `signal` aborts. A
   * TLS handshake that failed on a certificate rejects at once (UNAVAILABLE).
   */
  ready(deadline: number, signal?: AbortSignal): Promise<NatsConnection> {
    if (this.up) return Promise.resolve(this.#nc as NatsConnection);
    if (this.#closed) return Promise.reject(new FanError(Code.UNAVAILABLE, "nats transport closed"));
    if (signal?.aborted === true) return Promise.reject(new FanError(Code.CANCELLED, "cancelled"));
    if (this.#refused !== undefined) return Promise.reject(this.#refusal(this.#refused));
    return new Promise<NatsConnection>((resolve, reject) => {
      const timer = atDeadline(deadline, () => done(this.#late()));
      const check = (): void => {
        if (this.up) done();
        else if (this.#closed) done(new FanError(Code.UNAVAILABLE, "nats transport closed"));
        else if (this.#refused !== undefined) done(this.#refusal(this.#refused));
      };
      const done = (err?: FanError): void => {
        timer?.clear();
        this.#waiters.delete(check);
        stopListening();
        if (err === undefined) resolve(this.#nc as NatsConnection);
        else reject(err);
      };
      this.#waiters.add(check);
      const stopListening =
        signal === undefined ? () => undefined : onAbort(signal, () => done(new FanError(Code.CANCELLED, "cancelled")));
    });
  }

  /** While the connection is not up: the error of a call that waited for it until its deadline. */
  stalled(): FanError | undefined {
    if (this.up) return undefined;
    if (this.#closed) return new FanError(Code.UNAVAILABLE, "nats transport closed");
    if (this.#refused !== undefined) return this.#refusal(this.#refused);
    return this.#late();
  }

  #late(): FanError {
    return this.#down === undefined
      ? new FanError(Code.DEADLINE_EXCEEDED, `nats connection (${this.#servers}) not ready before the deadline`)
      : new FanError(Code.UNAVAILABLE, `nats unreachable until the deadline (${this.#servers}): ${this.#down}`);
  }

  /** Flushes what was published, then closes (never hangs past `ms`). */
  async close(ms = 2000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake();
    const nc = this.#nc;
    if (nc === undefined) return;
    const flush = this.#up ? nc.flush().catch(() => undefined) : Promise.resolve();
    await Promise.race([flush, new Promise((r) => setTimeout(r, ms).unref())]);
    await Promise.race([nc.close().catch(() => undefined), new Promise((r) => setTimeout(r, ms).unref())]);
  }

  /** Flushes what was published (when connected), waiting at most `ms`; never throws. */
  async flush(ms = 2000): Promise<void> {
    const nc = this.#nc;
    if (nc === undefined || !this.up) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      nc.flush().catch(() => undefined),
      new Promise((r) => {
        timer = setTimeout(r, ms);
      }),
    ]);
    clearTimeout(timer);
  }
}

/**
 * Fails nats.js's pending connect attempt on `nc` now. A "disconnect" while we are not connected
 * is an attempt whose socket closed after its TLS handshake and before the server's PONG (a
 * server refusing our certificate with TLS 1.3, tls-probe.ts); nats.js leaves that attempt
 * waiting for the PONG until its connect `timeout` (20 s by default) before trying again, so a
 * server that trusts us again is reconnected to only then. Rejecting the attempt's PONG through
 * nats.js's `connectError` (internal, @nats-io/nats-core 3.x `ProtocolHandler`) makes it try
 * again after `reconnectTimeWait`; without that hook nothing changes.
 */
function failHandshake(nc: NatsConnection): void {
  const protocol = (nc as unknown as { protocol?: { connectError?: (err: Error) => void } }).protocol;
  protocol?.connectError?.(new Error("connection closed during the handshake"));
}

/** A FanError for a NATS failure during a send. */
export function unavailable(what: string, e: unknown): FanError {
  if (FanError.is(e)) return e;
  return new FanError(Code.UNAVAILABLE, `${what}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}
