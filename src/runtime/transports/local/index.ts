/**
 * The local transport: calls, pushes and events inside the process, through a `LocalHub`.
 * By default nothing is serialised (the typed value is handed over, marked `form: "value"`,
 * and dispatch validates it in place); with `serialize: true` every envelope goes through the
 * same bounded JSON encoding as the network transports, to test that payloads survive the wire.
 */
import type { Logger } from "pino";
import { Code, FanError, type WireError } from "../../errors.js";
import type { CallSink, Dispatcher } from "../../call/dispatch.js";
import { nextEnvelopeId } from "../../ids.js";
import { keepRevealed } from "../../call/reveal.js";
import type {
  Envelope,
  EnvelopeHeaders,
  EventDelivery,
  EventSubscription,
  Inbound,
  SendOptions,
  Served,
  Transport,
  TransportContext,
  TransportFactory,
  Unsubscribe,
} from "../transport.js";
import type { ServiceDescriptor } from "../../descriptor.js";
import { decodeEnvelope, encodeEnvelope } from "../../codec/wire.js";
import { DEFAULT_REDELIVERY, holdRedeliveries, type RedeliveryOptions } from "./delivery.js";
import { limitsOf } from "../push-ends.js";
import { type LocalHub, localHub, type RemoveSubscriber } from "./hub.js";

export { LocalHub, localHub } from "./hub.js";

/** Options of the local transport (`createApp({ transports: { local: {...} } })`). */
export interface LocalOptions {
  /** Serialise every envelope as the network transports do (default false). */
  readonly serialize?: boolean;
  /** Deliveries of a push or event before it is given up (default 5). */
  readonly maxAttempts?: number;
  /**
   * First redelivery delay in ms, doubled each attempt (default 20; a failure's longer
   * `details.retryAfterMs` wins, push-ends.ts).
   */
  readonly backoffMs?: number;
  /** The hub to use; the App passes the one of its discovery domain. */
  readonly hub?: LocalHub;
  /**
   * How long closing a subscription (the App's stop) waits for the events already accepted for
   * it to reach its handler (the App's drain then waits for the handlers); default 10 s (the App
   * passes its `stopGraceMs`).
   */
  readonly drainMs?: number;
  /**
   * `publish` (an `emit`) resolves only once every local subscriber has handled the event, or
   * given up on it after its redeliveries; default false (it resolves once the event is
   * accepted). `createTestApp` turns it on, so a test needs no sleep after an emit.
   */
  readonly waitForSubscribers?: boolean;
}

/** The factory of the local transport. */
export function localTransport(opts: LocalOptions = {}): TransportFactory {
  return (ctx) => new LocalTransport(opts, ctx);
}

/** The in-process transport. */
export class LocalTransport implements Transport {
  readonly name = "local" as const;
  /** True when payloads travel as typed values (no serialisation). */
  readonly acceptsValues: boolean;
  readonly hub: LocalHub;
  readonly #redelivery: RedeliveryOptions;
  readonly #log: Logger;
  readonly #maxBytes: number;
  readonly #bound = new Set<string>();
  readonly #subs = new Set<RemoveSubscriber>();
  readonly #drainMs: number;
  readonly #waitForSubscribers: boolean;
  #closed = false;
  /** Lets waiting redeliveries hold the process open while this transport is (delivery.ts). */
  readonly #holding = holdRedeliveries();

  constructor(opts: LocalOptions, ctx: TransportContext) {
    this.acceptsValues = opts.serialize !== true;
    this.hub = opts.hub ?? localHub("default", ctx.cluster);
    this.#redelivery = {
      maxAttempts: opts.maxAttempts ?? DEFAULT_REDELIVERY.maxAttempts,
      backoffMs: opts.backoffMs ?? DEFAULT_REDELIVERY.backoffMs,
    };
    this.#log = ctx.log;
    this.#maxBytes = ctx.maxPayloadBytes;
    this.#drainMs = opts.drainMs ?? 10_000;
    this.#waitForSubscribers = opts.waitForSubscribers === true;
  }

  /** True when `endpoint` is an instance of this transport's hub. */
  reaches(endpoint: string): boolean {
    return this.hub.lookup(endpoint) !== undefined;
  }

  async serve(service: ServiceDescriptor, instanceId: string, inbound: Inbound): Promise<Served> {
    this.#open();
    const endpoint = this.hub.bind(
      { service: service.name, instanceId, inbound, ...limitsOf(service, this.#redelivery.maxAttempts) },
      this.#redelivery,
      this.#log,
    );
    this.#bound.add(endpoint);
    return {
      endpoint,
      stop: async () => {
        this.#bound.delete(endpoint);
        this.hub.unbind(endpoint);
      },
    };
  }

  call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope> {
    const b = this.hub.lookup(endpoint);
    if (b === undefined || this.#closed) return Promise.reject(unavailable(endpoint, env));
    if (opts.signal.aborted) return Promise.reject(new FanError(Code.CANCELLED, "call cancelled before it was sent"));
    if (this.acceptsValues) return b.inbound.call(env, opts.signal);
    try {
      return b.inbound.call(this.#copy(env), opts.signal).then((reply) => {
        const copy = this.#copy(reply);
        if (reply.kind === "error") keepRevealed(reply.payload, copy.payload); // in-process: never a wire
        return copy;
      });
    } catch (e) {
      return Promise.reject(FanError.from(e));
    }
  }

  /**
   * The unserialised call path: hands the typed request to the instance's dispatcher, which
   * reports the checked reply or the error straight to `sink` (no reply envelope, no extra
   * promise). Falls back to `call` for an inbound that is not a dispatcher.
   */
  callValue(endpoint: string, env: Envelope, signal: AbortSignal, sink: CallSink): void {
    const b = this.hub.lookup(endpoint);
    if (b === undefined || this.#closed) {
      sink.error(wireOf(unavailable(endpoint, env)));
      return;
    }
    const inbound = b.inbound as Partial<Dispatcher>;
    if (typeof inbound.run === "function") {
      inbound.run(env, signal, sink);
      return;
    }
    b.inbound.call(env, signal).then(
      (reply) => (reply.kind === "error" ? sink.error(reply.payload as WireError) : sink.reply(reply.payload)),
      (e: unknown) => sink.error(wireOf(FanError.from(e, Code.UNAVAILABLE))),
    );
  }

  /**
   * `callValue` without an envelope: the client's in-process fast path hands the typed input
   * and its request headers straight to the instance's dispatcher (`Dispatcher.runValue`);
   * `now` is the caller's clock reading, when taken in this same synchronous run, and `mono` a
   * `performance.now()` reading of about the same instant (the caller's metrics took one).
   */
  callLocal(
    endpoint: string,
    service: ServiceDescriptor,
    method: string,
    payload: unknown,
    headers: EnvelopeHeaders,
    signal: AbortSignal | undefined,
    sink: CallSink,
    now?: number,
    mono?: number,
  ): void {
    const b = this.hub.lookup(endpoint);
    if (b === undefined || this.#closed) {
      sink.error(wireOf(unavailableAt(endpoint, service.name)));
      return;
    }
    const inbound = b.inbound as Partial<Dispatcher>;
    if (typeof inbound.runValue === "function") {
      inbound.runValue(service.name, method, payload, headers, signal, sink, now, mono);
      return;
    }
    const env: Envelope = {
      v: 1,
      id: nextEnvelopeId(),
      kind: "call",
      service: service.name,
      method,
      version: service.version,
      headers,
      payload,
      form: "value",
    };
    this.callValue(endpoint, env, signal ?? NEVER, sink);
  }

  async push(endpoint: string, env: Envelope, opts: SendOptions): Promise<void> {
    this.#open();
    if (opts.signal.aborted) throw new FanError(Code.CANCELLED, "push cancelled before it was sent");
    this.hub.enqueue(endpoint, this.acceptsValues ? env : this.#copy(env), this.#redelivery, this.#log);
  }

  async publish(env: Envelope, opts: SendOptions): Promise<void> {
    this.#open();
    if (opts.signal.aborted) throw new FanError(Code.CANCELLED, "publish cancelled before it was sent");
    const copy = this.acceptsValues ? (e: Envelope) => e : (e: Envelope) => this.#copy(e);
    if (!this.#waitForSubscribers) {
      this.hub.publish(env, copy, this.#redelivery, this.#log);
      return;
    }
    await new Promise<void>((settled) => this.hub.publish(env, copy, this.#redelivery, this.#log, settled));
  }

  async subscribe(sub: EventSubscription, deliver: EventDelivery): Promise<Unsubscribe> {
    this.#open();
    const remove = this.hub.subscribe(sub, deliver);
    this.#subs.add(remove);
    return {
      // Waits for the events already accepted for it (bounded): a stop does not drop them.
      close: async () => {
        this.#subs.delete(remove);
        await remove(this.#drainMs);
      },
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#holding();
    for (const endpoint of this.#bound) this.hub.unbind(endpoint);
    this.#bound.clear();
    for (const remove of this.#subs) void remove(0);
    this.#subs.clear();
  }

  #open(): void {
    if (this.#closed) throw new FanError(Code.UNAVAILABLE, "the local transport is closed");
  }

  /** What a network transport does to an envelope: bytes out, bounded decode in. */
  #copy(env: Envelope): Envelope {
    return decodeEnvelope(encodeEnvelope(env), { maxBytes: this.#maxBytes });
  }
}

function wireOf(e: FanError): WireError {
  return { code: e.code, message: e.message };
}

function unavailable(endpoint: string, env: Envelope): FanError {
  return unavailableAt(endpoint, env.service);
}

function unavailableAt(endpoint: string, service: string): FanError {
  return new FanError(Code.UNAVAILABLE, `no instance of ${service} at ${endpoint}`, { details: { endpoint } });
}

const NEVER: AbortSignal = new AbortController().signal;
