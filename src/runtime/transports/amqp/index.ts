/**
 * The amqp transport (RabbitMQ through amqplib).
 *
 * - rpc: a request queue per service version (`fan.{cluster}.{service}.rpc.{version}`),
 *   a tick's calls to one queue as one batch frame, replies to the client's own queue; bounded by prefetch
 *   (messages, and the calls running at once), acked after the replies.
 * - push: a durable quorum queue per service major version (`...push.v{major}`), publisher
 *   confirms, manual ack after the handler, redelivery on failure and a dead-letter queue
 *   (`...push.v{major}.dlq`) after `maxDeliveries`.
 * - events: the topic exchange `fan.{cluster}.events`, one queue per subscribing service
 *   (per instance for `@broadcast`).
 *
 * The connection comes back by itself after a broker restart (trying each URL of a cluster in
 * turn) and every channel is reopened with its topology declared again; sends made while the
 * broker is away wait for it until their deadline, then fail with UNAVAILABLE.
 */
import type { ServiceDescriptor } from "../../descriptor.js";
import { Code, FanError } from "../../errors.js";
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
import { encodeEnvelope } from "../../codec/wire.js";
import { AmqpConnection } from "./connection.js";
import { AmqpLive } from "./live.js";
import { type AmqpSubscription, subscribeEvents } from "./events.js";
import { eventKey, eventsExchange, formatEndpoint, parseEndpoint, pushQueue } from "./names.js";
import { AmqpPublisher } from "./publisher.js";
import { AmqpRpcClient } from "./rpc-client.js";
import { AmqpServer } from "./server.js";
import { pushToOwner, toOwner } from "../owner-push.js";

/** Options of `createApp({ transports: { amqp: {...} } })`. */
export interface AmqpTransportOptions {
  /**
   * Broker URL, or the URLs of a RabbitMQ cluster's nodes, tried in turn on (re)connect; default
   * `FAN_AMQP_URL` (a comma list) when createApp reads the environment, else `amqp://127.0.0.1:5672`
   * (amqplib's default user guest/guest), as redis and nats default to the loopback broker.
   */
  readonly url?: string | readonly string[];
  /** Extra socket options for amqplib (`noDelay` is always on; `timeout`, ms of broker silence while connecting before the attempt is retried, defaults to 5000). */
  readonly socketOptions?: Readonly<Record<string, unknown>>;
  /** The connection's name in `rabbitmqctl list_connections` (default `fan {cluster} pid {pid}`). */
  readonly connectionName?: string;
  /** AMQP heartbeat, added to URLs that do not set one; default 10 s. */
  readonly heartbeatSeconds?: number;
  /**
   * Unacknowledged request messages per served instance, and the most calls of batch frames it
   * runs at once (the others wait in the instance); default 256.
   */
  readonly rpcPrefetch?: number;
  /** Unacknowledged pushes per served instance; default 64. */
  readonly pushPrefetch?: number;
  /** Unacknowledged events per subscription; default 64. */
  readonly eventPrefetch?: number;
  /** Deliveries of a push or event before it is dead-lettered; default 5. Same for every app of a cluster. */
  readonly maxDeliveries?: number;
  /**
   * First redelivery delay after a handler failure (doubles per attempt; a failure's longer
   * `details.retryAfterMs` wins, push-ends.ts); default 200 ms.
   */
  readonly retryDelayMs?: number;
  /** A request queue without consumers is deleted after this long; default 5 min. Same for every app of a cluster. */
  readonly rpcQueueExpiresMs?: number;
  /**
   * The type of the request queues: `classic` (default) lives on one node and is unusable
   * while that node is down; `quorum` is replicated across a RabbitMQ cluster so calls go on
   * when a node dies (each call written to a majority: slower). Same for every app of a
   * cluster (RabbitMQ refuses to redeclare a queue with another type). With `quorum`, calls
   * go out on a confirm channel: one the broker nacks is sent again.
   */
  readonly rpcQueueType?: "classic" | "quorum";
  /** A broadcast queue of a vanished instance is deleted after this long; default 5 min. */
  readonly broadcastExpiresMs?: number;
  /** How long `serve` and `subscribe` wait for the broker; default 10 s. */
  readonly connectTimeoutMs?: number;
  /** Reconnect backoff bounds; default 100 ms to 5 s. */
  readonly reconnectMinDelayMs?: number;
  readonly reconnectMaxDelayMs?: number;
  /** How long closing a subscription waits for its handlers in flight; default 5 s. */
  readonly drainMs?: number;
}

/** The amqp transport factory. */
export function amqpTransport(opts: AmqpTransportOptions = {}): TransportFactory {
  return (ctx) => new AmqpTransport(opts, ctx);
}

/** The broker of an `amqp: {}` without `url` (nor `FAN_AMQP_URL`): the loopback one. */
const DEFAULT_URL = "amqp://127.0.0.1:5672";

/** Adds `heartbeat=` to a URL that has none. */
function withHeartbeat(url: string, seconds: number): string {
  if (/[?&]heartbeat=/.test(url)) return url;
  return `${url}${url.includes("?") ? "&" : "?"}heartbeat=${seconds}`;
}

/** The amqp `Transport`: one connection, shared by client and server sides. */
export class AmqpTransport implements Transport {
  readonly name = "amqp" as const;
  /** Sharded calls to an instance killed meanwhile are failed by the client (`Transport.watchInstances`). */
  readonly watchInstances = true;
  /** The managed connection (tests close it to check reconnection). */
  readonly connection: AmqpConnection;
  readonly #ctx: TransportContext;
  readonly #opts: AmqpTransportOptions;
  readonly #servers = new Set<AmqpServer>();
  readonly #subs = new Set<AmqpSubscription>();
  #client: AmqpRpcClient | undefined;
  #publisher: AmqpPublisher | undefined;

  /** The request queues' prefetch (and the frame pump's bound) and the push queue's. */
  get window(): NonNullable<Transport["window"]> {
    const o = this.#opts;
    return {
      calls: { size: o.rpcPrefetch ?? 256, option: "rpcPrefetch" },
      pushes: { size: o.pushPrefetch ?? 64, option: "pushPrefetch" },
    };
  }

  constructor(opts: AmqpTransportOptions, ctx: TransportContext) {
    this.#opts = opts;
    this.#ctx = ctx;
    const given = opts.url ?? DEFAULT_URL;
    const urls = (typeof given === "string" ? [given] : [...given]).map((u) =>
      withHeartbeat(u, opts.heartbeatSeconds ?? 10),
    );
    if (urls.length === 0) throw new FanError(Code.INVALID_ARGUMENT, "amqp transport needs at least one url");
    this.connection = new AmqpConnection({
      urls,
      socketOptions: opts.socketOptions ?? {},
      connectionName: opts.connectionName ?? `fan ${ctx.cluster} pid ${process.pid}`,
      minDelayMs: opts.reconnectMinDelayMs ?? 100,
      maxDelayMs: opts.reconnectMaxDelayMs ?? 5000,
      log: ctx.log.child({ transport: "amqp" }),
    });
  }

  get #log() {
    return this.connection.opts.log;
  }

  /** The rpc client, created on first call. */
  get #rpc(): AmqpRpcClient {
    this.#client ??= new AmqpRpcClient(
      this.connection,
      this.#ctx.cluster,
      this.#log,
      this.#ctx.maxPayloadBytes,
      this.#opts.rpcQueueType === "quorum",
    );
    return this.#client;
  }

  #live: AmqpLive | undefined;

  /** State updates: transient messages to auto-deleted queues without acks (live.ts), not quorum queues. */
  readonly volatile = {
    publish: (env: Envelope, opts: SendOptions): Promise<void> => this.#lives.publish(env, this.#encode(env), opts),
    subscribe: (sub: EventSubscription, deliver: EventDelivery): Promise<Unsubscribe> =>
      this.#lives.subscribe(sub, deliver, Date.now() + (this.#opts.connectTimeoutMs ?? 10_000)),
  };

  get #lives(): AmqpLive {
    this.#live ??= new AmqpLive(this.connection, this.#ctx.cluster, this.#log, this.#ctx.maxPayloadBytes);
    return this.#live;
  }

  /** The confirm channel for pushes and events, created on first use. */
  get publisher(): AmqpPublisher {
    this.#publisher ??= new AmqpPublisher(this.connection, this.#ctx.cluster);
    return this.#publisher;
  }

  /** Declares the instance's queues and consumes them; the endpoint names cluster, service and version. */
  async serve(service: ServiceDescriptor, instanceId: string, inbound: Inbound): Promise<Served> {
    const o = this.#opts;
    const server = new AmqpServer(this.connection, this.#ctx.cluster, service, instanceId, inbound, {
      rpcPrefetch: o.rpcPrefetch ?? 256,
      pushPrefetch: o.pushPrefetch ?? 64,
      maxDeliveries: o.maxDeliveries ?? 5,
      onDeadLetter: (env: Envelope | undefined) => this.#ctx.deadLetter?.(env?.service ?? "?", env?.method ?? "?"),
      retryDelayMs: o.retryDelayMs ?? 200,
      rpcQueueExpiresMs: o.rpcQueueExpiresMs ?? 300_000,
      rpcQueueType: o.rpcQueueType ?? "classic",
      maxBytes: this.#ctx.maxPayloadBytes,
      connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
      log: this.#log,
    });
    const served = await server.start();
    this.#servers.add(server);
    return served;
  }

  /**
   * While calls (or pushes) cannot leave: the error one waiting gets at its deadline
   * (`Transport.stalled`), from the channel it waits on: a push's is the publisher's, a @shard
   * push to its owner's the rpc client's (an app that only pushes has no rpc client).
   */
  stalled(kind: "call" | "push", endpoint: string, headers: EnvelopeHeaders): FanError | undefined {
    return kind === "push" && !toOwner(headers, parseEndpoint(endpoint))
      ? this.#publisher?.stalled()
      : this.#client?.stalled();
  }

  /** Sends a call and waits for its reply. */
  call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope> {
    return this.#rpc.call(endpoint, env, opts);
  }

  /** The service major's push queue, for pushes while no instance is registered (Transport). */
  queueEndpoint(service: string, version: string): string {
    return formatEndpoint({ cluster: this.#ctx.cluster, service, version });
  }

  /** The amqp queue a service major's pushes wait in (Transport). */
  pushQueueName(endpoint: string): string {
    return pushQueue(parseEndpoint(endpoint));
  }

  /** Sends a push to the service's durable queue; resolves when the broker confirmed it. */
  async push(endpoint: string, env: Envelope, opts: SendOptions): Promise<void> {
    const addr = parseEndpoint(endpoint);
    // A @shard push goes to its owner's own queue and is acknowledged by the owner (owner-push.ts).
    if (toOwner(env.headers, addr)) return pushToOwner((e) => this.#rpc.call(endpoint, e, opts), env, opts);
    const body = this.#encode(env);
    const ttl = env.headers.ttl;
    const expiration = typeof ttl === "number" ? { expiration: String(Math.max(1, Math.ceil(ttl - Date.now()))) } : {};
    await this.publisher.publish(
      {
        exchange: "",
        routingKey: pushQueue(addr),
        body,
        props: { persistent: true, contentType: "application/json", ...expiration },
        mandatory: true,
        what: `push ${env.service}.${env.method}`,
      },
      opts,
    );
  }

  /** Publishes an event to the topic exchange; resolves when the broker confirmed it. */
  async publish(env: Envelope, opts: SendOptions): Promise<void> {
    const body = this.#encode(env);
    await this.publisher.publish(
      {
        exchange: eventsExchange(this.#ctx.cluster),
        routingKey: eventKey(env.service, env.method),
        body,
        props: { persistent: true, contentType: "application/json" },
        mandatory: false,
        what: `event ${env.service}.${env.method}`,
      },
      opts,
    );
  }

  #encode(env: Envelope): Buffer {
    const body = encodeEnvelope(env);
    const max = this.#ctx.maxPayloadBytes;
    if (body.length > max)
      throw new FanError(Code.RESOURCE_EXHAUSTED, `message of ${body.length} bytes exceeds the limit of ${max}`);
    return body;
  }

  /** Binds the subscription's queue to the event and consumes it. */
  async subscribe(sub: EventSubscription, deliver: EventDelivery): Promise<Unsubscribe> {
    const o = this.#opts;
    const inner = await subscribeEvents(this.connection, this.#ctx.cluster, sub, deliver, {
      prefetch: o.eventPrefetch ?? 64,
      maxDeliveries: o.maxDeliveries ?? 5,
      onDeadLetter: (env: Envelope | undefined) => this.#ctx.deadLetter?.(env?.service ?? "?", env?.method ?? "?"),
      retryDelayMs: o.retryDelayMs ?? 200,
      broadcastExpiresMs: o.broadcastExpiresMs ?? 300_000,
      maxBytes: this.#ctx.maxPayloadBytes,
      connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
      drainMs: o.drainMs ?? 5000,
      log: this.#log,
    });
    this.#subs.add(inner);
    return {
      close: async () => {
        this.#subs.delete(inner);
        await inner.close();
      },
    };
  }

  /**
   * Closes channels and the connection without waiting for handlers (the App drains before
   * it closes): unacknowledged pushes and events return to their queues, calls in flight on
   * the client side fail with UNAVAILABLE.
   */
  async close(): Promise<void> {
    await Promise.all([...this.#subs].map((s) => s.kill()));
    this.#subs.clear();
    await Promise.all([...this.#servers].map((s) => s.close(1000)));
    this.#servers.clear();
    this.#client?.close();
    this.#publisher?.close();
    await this.#live?.close();
    await this.connection.close();
  }
}
