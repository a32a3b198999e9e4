/**
 * The protocol-neutral transport interface. Every transport (local, http, amqp, redis, nats, zmq)
 * implements it in its own folder under `src/runtime/transports/`, and its dependency is
 * imported only there. Transports move envelopes; the App does decoding, validation,
 * deadlines, errors and dispatch, so every transport gets the same semantics.
 */
import type { ServiceDescriptor, TransportName } from "../descriptor.js";
import type { CallSignal } from "./abort.js";
import type { FanError, WireError } from "../errors.js";

export type EnvelopeKind = "call" | "push" | "event" | "reply" | "error" | "state";

/** Headers every transport carries. Values are strings or numbers. */
export interface EnvelopeHeaders {
  /** W3C trace context. */
  traceparent?: string;
  tracestate?: string;
  /** Absolute deadline, epoch ms. */
  deadline?: number;
  /** Absolute expiry of a push, epoch ms (from `@ttl`). */
  ttl?: number;
  /** Where a reply goes, when the transport needs it in the envelope. */
  replyTo?: string;
  /**
   * The shard number of a call to a `@shard` method; broker transports send such a call to
   * the instance the endpoint names instead of the version's shared queue.
   */
  shard?: number;
  /**
   * 1 on a sharded call sent to an instance other than its shard's owner because the owner is
   * unavailable and the method allows fallback: the instance serves it instead of redirecting.
   */
  shardFallback?: number;
  /** Delivery attempt of a push or event, 1-based. */
  attempt?: number;
  [name: string]: string | number | undefined;
}

/** The message every transport carries, so a relay between transports is a copy. */
export interface Envelope {
  readonly v: 1;
  readonly id: string;
  readonly kind: EnvelopeKind;
  /** Fully qualified service name. */
  readonly service: string;
  /** Method, event or state name. */
  readonly method: string;
  /** The version of the service the caller asked for or the server runs. */
  readonly version?: string;
  readonly headers: EnvelopeHeaders;
  /**
   * The JSON wire value (calls, pushes, events, replies) or a `WireError` (kind "error").
   * In-process only: when `form` is "value", the payload is the typed value itself.
   */
  readonly payload: unknown;
  /** Never on the wire: "value" marks an unserialised in-process payload. */
  readonly form?: "wire" | "value";
}

/** What the App gives a transport to serve one service instance. Never rejects for user errors. */
export interface Inbound {
  /** Handles a call; resolves with a `reply` or `error` envelope (never rejects). */
  call(env: Envelope, signal: CallSignal): Promise<Envelope>;
  /**
   * Handles a push (`path` "call": it came on the transport's call path, a `@shard` push to its
   * owner, and takes a slot of the calls' window, not the push queue's). Resolves when the
   * handler finished without error (ack), or when the push was dropped on purpose (expired TTL,
   * undecodable: logged and counted). Rejects when it should be delivered again (handler
   * failed, app stopping).
   */
  push(env: Envelope, path?: "call"): Promise<void>;
  /**
   * Refuses a call whose deadline passed before the transport started it (a batch frame's call
   * that came late or waited for a turn): the error its caller gets, counted with the calls the
   * App refuses on arrival for the same reason. Optional (a test's stand-in has none): the
   * transport then refuses the call itself, uncounted.
   */
  expired?(env: Envelope): WireError;
}

/** A binding of one service instance on one transport. */
export interface Served {
  /** The endpoint to advertise in discovery, e.g. `http://127.0.0.1:8080`. */
  readonly endpoint: string;
  /** Stop taking new work (in-flight work is drained by the App). */
  stop(): Promise<void>;
}

/** Delivers one event; same ack semantics as `Inbound.push`. */
export type EventDelivery = (env: Envelope) => Promise<void>;

export interface EventSubscription {
  /** The publishing service. */
  readonly source: ServiceDescriptor;
  readonly event: string;
  /** The subscribing service's name: one delivery per group (load-balanced across instances). */
  readonly group: string;
  /** The subscribing instance; with `broadcast` every instance gets its own copy. */
  readonly instanceId: string;
  readonly broadcast: boolean;
  /**
   * A subscriber of no service (a client's `subscribe`, a state view, a CLI): its queues are
   * its own, deleted when it closes and expiring on the broker if its process dies. A
   * service's group (or broadcast) queue is durable: it keeps events while the service restarts.
   */
  readonly ephemeral?: boolean;
}

export interface Unsubscribe {
  close(): Promise<void>;
}

export interface SendOptions {
  readonly signal: AbortSignal;
  /** Absolute deadline, epoch ms; a send blocked past it fails with DEADLINE_EXCEEDED. */
  readonly deadline: number;
  /**
   * Another instance can take this message: a send refused at connect (provably not
   * delivered) fails at once, marked (`not-delivered.ts`), instead of being sent again here.
   */
  readonly elsewhere?: boolean;
  /**
   * Only the instance the endpoint names may take this call: broker transports send it to that
   * instance's own queue (as a `@shard` call goes), not the version's shared one. `fanc health`
   * asks one App's `fan.Health` so; direct transports (http, zmq, tcp) always reach that instance.
   */
  readonly instance?: boolean;
  /**
   * Told which instance took this call, when the transport learns it while the call runs (nats:
   * a taken notice for a call sent to its version's shared subject; `call/instance-watch.ts`).
   */
  readonly taken?: TakenSink;
}

/** Where a transport says which instance took a call still running (`SendOptions.taken`). */
export interface TakenSink {
  taken(instanceId: string): void;
}

/**
 * A transport, server and client side. Implementations throw `FanError` with
 * `UNAVAILABLE` (cannot reach), `DEADLINE_EXCEEDED` (no answer in time), `CANCELLED`
 * (signal aborted) or `RESOURCE_EXHAUSTED` (too large) for transport-level failures.
 */
export interface Transport {
  readonly name: TransportName;

  /** Serve one service instance; returns its endpoint. */
  serve(service: ServiceDescriptor, instanceId: string, inbound: Inbound): Promise<Served>;

  /**
   * How much work of one served instance the transport takes in at once before it takes no
   * more, per path: `calls` (calls, and `@shard` pushes to their owner) and `pushes` (from the
   * push queue). Undefined: no bound. Calls and pushes held while an `onShards` runs may take
   * only part of each (ownership.ts `HoldWindow`), so they never stop the rest.
   */
  readonly window?: { readonly calls?: TransportWindow; readonly pushes?: TransportWindow };

  /**
   * True when the transport cannot see an instance it sent a call to die (a broker between them:
   * nats, amqp): the client then fails its sharded calls in flight once discovery says their
   * instance is gone (`call/instance-watch.ts`), and its other calls likewise once the transport
   * said which instance took them (`SendOptions.taken`: nats). Direct transports (http, tcp, zmq)
   * fail them when the connection drops; redis watches its alive set itself.
   */
  readonly watchInstances?: boolean;

  /** Send a call to an endpoint; resolves with the `reply` or `error` envelope. */
  call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope>;

  /**
   * While calls cannot leave (the connection to the broker is not up): the error a call waiting
   * for it gets at its deadline, naming the server and what is known of the outage; undefined
   * while calls can leave. A call whose deadline passes first (the client's deadline wheel) fails
   * with this, so the error names what it waited for whichever timer fires first. What is
   * waiting, to answer for the path it took and no other: `kind` (a push's backstop asks about
   * the path pushes take, which may be up while the calls' is not; an app that only pushes has
   * no call path at all), the `endpoint` it was sent to and its `headers` (a `@shard` push to
   * its owner travels as a call on amqp and redis: owner-push.ts `toOwner`).
   */
  stalled?(kind: "call" | "push", endpoint: string, headers: EnvelopeHeaders): FanError | undefined;

  /** Send a push; resolves once the transport has durably accepted it. */
  push(endpoint: string, env: Envelope, opts: SendOptions): Promise<void>;

  /**
   * The endpoint of the queue a service's pushes of `version`'s major wait in, for transports
   * whose push queue outlives its consumers (amqp, redis, nats): a push made while no instance of
   * the service is registered goes there (call/parked.ts) and waits for the first that starts.
   */
  queueEndpoint?(service: string, version: string): string;

  /** The broker's own name of the push queue at `endpoint` (an amqp queue, a redis stream, a nats stream), for logs. */
  pushQueueName?(endpoint: string): string;

  /** Publish an event of `env.service`/`env.method` to every subscribing group. */
  publish(env: Envelope, opts: SendOptions): Promise<void>;

  /** Receive events; resolves once the subscription is in place (no event published after it is missed). */
  subscribe(sub: EventSubscription, deliver: EventDelivery): Promise<Unsubscribe>;

  /**
   * False while the connection to `endpoint` is known to be down (it dropped or refused, and
   * has not come back): callers pick another instance. Undefined: the transport cannot tell.
   */
  reachable?(endpoint: string): boolean;

  /**
   * A lossy fan-out, for replicated-state updates: no storage, no acknowledgements; a
   * subscriber gets what is published while it is subscribed (redis PUBLISH/SUBSCRIBE). States
   * number their updates and resync on a gap, so they need no more. A transport without it
   * carries state updates as broadcast events.
   */
  readonly volatile?: {
    publish(env: Envelope, opts: SendOptions): Promise<void>;
    subscribe(sub: EventSubscription, deliver: EventDelivery): Promise<Unsubscribe>;
  };

  /** Close connections and sockets; never hangs. */
  close(): Promise<void>;
}

/** One bound of a transport's `window`: its size and the option that sets it (`maxInFlight`). */
export interface TransportWindow {
  readonly size: number;
  readonly option: string;
}

/** Creates a transport for an App; options come from `createApp({ transports: { name: opts } })`. */
export type TransportFactory = (ctx: TransportContext) => Transport;

export interface TransportContext {
  readonly cluster: string;
  readonly log: import("pino").Logger;
  /** Max decoded payload size in bytes (default 4 MiB). */
  readonly maxPayloadBytes: number;
  /** The App's `GET /metrics`, `/health` and `/ready` answers (the http transport serves them). */
  readonly admin?: import("../telemetry/index.js").AdminHook;
  /** Reports a push or event moved to a dead-letter queue or stream (counted in the App's metrics). */
  readonly deadLetter?: (service: string, method: string) => void;
}
