/**
 * The nats transport (NATS with JetStream, through `@nats-io/transport-node` and
 * `@nats-io/jetstream`).
 *
 * - rpc: core NATS request/reply. A subject per service version
 *   (`fan.{cluster}.rpc.{service}.{version}`) whose instances share calls in the queue group
 *   `rpc`, a subject per instance for sharded calls, replies on the caller's own subjects,
 *   cancellations on the version's cancel subject. A call nobody serves fails at once with
 *   UNAVAILABLE (NATS's "no responders").
 * - push: a work-queue stream per service major version, read through the durable consumer
 *   `workers` by every instance; acknowledged after the handler, sent back with a backoff when it
 *   fails, dead-lettered after `maxDeliveries` to the cluster's dead-letter stream.
 * - events: a stream per publishing service (interest retention) and a durable consumer per
 *   subscribing service and event (per instance for `@broadcast`), with the same acks,
 *   redelivery and dead letters as pushes.
 *
 * The connection comes back by itself after a server restart; sends made while NATS is away wait
 * for it until their deadline, then fail with UNAVAILABLE. Acknowledged pushes are as durable as
 * the server's JetStream storage (file storage; replicas on a NATS cluster: `replicas`).
 */
import type { JsMsg } from "@nats-io/jetstream";
import { hasMethods, type ServiceDescriptor } from "../../descriptor.js";
import type { FanError } from "../../errors.js";
import { encodeEnvelope } from "../../codec/wire.js";
import type {
  Envelope,
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
import { pushToOwner } from "../owner-push.js";
import { KeptPushes, keptBound } from "../kept-push.js";
import { limitsOf } from "../push-ends.js";
import { NatsLink, type NatsConnectOptions, unavailable } from "./connection.js";
import {
  deadLetterStream,
  deadLetterSubject,
  eventStream,
  eventSubject,
  formatEndpoint,
  parseEndpoint,
  PUSH_CONSUMER,
  pushStream,
  pushSubject,
  type StreamName,
  subscriptionConsumer,
} from "./names.js";
import { NatsRpcClient, payloadLimit, tooLarge } from "./rpc-client.js";
import { NatsRpcServer } from "./rpc-server.js";
import { JetStreamSide } from "./streams.js";
import { WorkConsumer, type WorkSpec } from "./work.js";

/** Options of `createApp({ transports: { nats: {...} } })`. */
export interface NatsTransportOptions extends NatsConnectOptions {
  /** Unacknowledged pushes per served instance; default 64. */
  readonly pushPrefetch?: number;
  /** Unacknowledged events per subscription; default 64. */
  readonly eventPrefetch?: number;
  /** Deliveries of a push or event before it is dead-lettered; default 5. */
  readonly maxDeliveries?: number;
  /**
   * First redelivery delay after a handler failure (doubles per attempt; a failure's longer
   * `details.retryAfterMs` wins, push-ends.ts); default 200 ms.
   */
  readonly retryDelayMs?: number;
  /**
   * A push or event handed to an instance that neither acknowledges it nor reports progress for
   * this long (it died) goes to another; default 15 s. Same for every app of a cluster.
   */
  readonly ackWaitMs?: number;
  /** How long one pull waits for messages (at least 1 s); default 1 s. */
  readonly fetchMs?: number;
  /** A broadcast subscription's consumer is deleted this long after its instance vanished; default 5 min. */
  readonly broadcastExpiresMs?: number;
  /** Replicas of every stream the transport declares (3 on a NATS cluster); default 1. */
  readonly replicas?: number;
  /** Events kept per publishing service's stream; default 100 000. */
  readonly eventsMaxMsgs?: number;
  /** Dead letters kept per cluster; default 100 000. */
  readonly deadLettersMaxMsgs?: number;
  /** How long `serve` and `subscribe` wait for NATS; default 10 s. */
  readonly connectTimeoutMs?: number;
  /** How long closing a subscription waits for its handlers in flight; default 5 s. */
  readonly drainMs?: number;
}

/** The nats transport factory. */
export function natsTransport(opts: NatsTransportOptions = {}): TransportFactory {
  return (ctx) => new NatsTransport(opts, ctx);
}

interface Instance {
  readonly rpc: NatsRpcServer;
  /** Only for services with push members (no stream is declared for the others). */
  readonly push: WorkConsumer | undefined;
}

/** The nats `Transport`: one connection for client and server sides. */
export class NatsTransport implements Transport {
  readonly name = "nats" as const;
  /**
   * Calls to an instance killed meanwhile are failed by the client (`Transport.watchInstances`):
   * sharded ones, and the others once a taken notice named their instance (rpc-server.ts).
   */
  readonly watchInstances = true;
  /** The managed connection (tests watch it across server restarts). */
  readonly link: NatsLink;
  readonly #ctx: TransportContext;
  readonly #opts: NatsTransportOptions;
  readonly #log: TransportContext["log"];
  readonly #jets: JetStreamSide;
  readonly #instances = new Set<Instance>();
  readonly #subs = new Set<WorkConsumer>();
  #rpcClient: NatsRpcClient | undefined;

  /** The push stream's `pushPrefetch`; calls come on a subscription that takes every one at once. */
  get window(): NonNullable<Transport["window"]> {
    return { pushes: { size: this.#opts.pushPrefetch ?? 64, option: "pushPrefetch" } };
  }

  constructor(opts: NatsTransportOptions, ctx: TransportContext) {
    this.#opts = opts;
    this.#ctx = ctx;
    this.#log = ctx.log.child({ transport: "nats" });
    this.link = new NatsLink(opts, `fan ${ctx.cluster} pid ${process.pid}`, this.#log);
    this.#jets = new JetStreamSide(
      this.link,
      {
        replicas: opts.replicas ?? 1,
        eventsMaxMsgs: opts.eventsMaxMsgs ?? 100_000,
        deadLettersMaxMsgs: opts.deadLettersMaxMsgs ?? 100_000,
      },
      this.#log,
    );
  }

  get #rpc(): NatsRpcClient {
    this.#rpcClient ??= new NatsRpcClient(this.link, this.#ctx.cluster, this.#log, this.#ctx.maxPayloadBytes);
    return this.#rpcClient;
  }

  #work(
    stream: StreamName,
    kind: "push" | "event",
    consumer: string,
    extra: Pick<WorkSpec, "deliverNew" | "prefetch"> & Partial<Pick<WorkSpec, "filter" | "inactiveMs">>,
  ): WorkSpec {
    const o = this.#opts;
    const cluster = this.#ctx.cluster;
    return {
      stream,
      kind,
      consumer,
      ...extra,
      maxDeliveries: o.maxDeliveries ?? 5,
      retryDelayMs: o.retryDelayMs ?? 200,
      ackWaitMs: o.ackWaitMs ?? 15_000,
      fetchMs: Math.max(1000, o.fetchMs ?? 1000),
      maxBytes: this.#ctx.maxPayloadBytes,
      log: this.#log,
      deadLetters: `stream ${deadLetterStream(cluster).name}, subject ${deadLetterSubject(cluster, stream.name, consumer)}`,
      deadLetter: (m: JsMsg, reason: string) =>
        this.#jets.publish(
          deadLetterSubject(cluster, stream.name, consumer),
          m.data,
          `dlq-${stream.name}-${consumer}-${m.seq}`,
          { name: deadLetterStream(cluster), kind: "dlq" },
          { signal: new AbortController().signal, deadline: Date.now() + 30_000 },
          { "Fan-Reason": reason.replace(/[\r\n]+/g, " ").slice(0, 500), "Fan-Source": `${stream.name}#${m.seq}` },
        ),
      onDeadLetter: (env: Envelope | undefined) => this.#ctx.deadLetter?.(env?.service ?? "?", env?.method ?? "?"),
    };
  }

  /** Subscribes the instance's rpc subjects and reads its pushes; the endpoint names cluster, service, version and instance. */
  async serve(service: ServiceDescriptor, instanceId: string, inbound: Inbound): Promise<Served> {
    const o = this.#opts;
    const addr = { cluster: this.#ctx.cluster, service: service.name, version: service.version, instance: instanceId };
    const deadline = Date.now() + (o.connectTimeoutMs ?? 10_000);
    const rpc = new NatsRpcServer(this.link, addr, service, inbound, this.#ctx.maxPayloadBytes, this.#log);
    const prefetch = o.pushPrefetch ?? 64;
    // A push refused for the instance's state is kept, not counted as a delivery (kept-push.ts).
    const kept = new KeptPushes((env) => inbound.push(env), o.retryDelayMs ?? 200, keptBound(prefetch), this.#log);
    const push = hasMethods(service, "push")
      ? new WorkConsumer(
          this.link,
          this.#jets,
          {
            ...this.#work(pushStream(addr), "push", PUSH_CONSUMER, { deliverNew: false, prefetch }),
            ...limitsOf(service, o.maxDeliveries ?? 5),
          },
          kept.deliver,
        )
      : undefined;
    try {
      const nc = await this.link.ready(deadline);
      await rpc.start(nc);
      await push?.start(deadline);
    } catch (e) {
      await Promise.all([rpc.close(0), push?.close()]);
      throw unavailable(`cannot serve ${service.name} over nats`, e);
    }
    const instance = { rpc, push };
    this.#instances.add(instance);
    return { endpoint: formatEndpoint(addr), stop: () => this.#stopInstance(instance) };
  }

  async #stopInstance(i: Instance): Promise<void> {
    await Promise.all([i.rpc.stop(), i.push?.stop()]);
  }

  /** While calls cannot leave: the error a call waiting gets at its deadline (`Transport.stalled`). */
  stalled(): FanError | undefined {
    return this.link.stalled();
  }

  /** Sends a call and waits for its reply. */
  call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope> {
    return this.#rpc.call(endpoint, env, opts);
  }

  /** The service major's push stream, for pushes while no instance is registered (Transport). */
  queueEndpoint(service: string, version: string): string {
    return formatEndpoint({ cluster: this.#ctx.cluster, service, version });
  }

  /** The JetStream stream a service major's pushes wait in (Transport). */
  pushQueueName(endpoint: string): string {
    return pushStream(parseEndpoint(endpoint)).name;
  }

  /** Stores a push in the service's stream; resolves on the PubAck. */
  async push(endpoint: string, env: Envelope, opts: SendOptions): Promise<void> {
    const addr = parseEndpoint(endpoint);
    // A @shard push goes to its owner's own subject and is acknowledged by the owner (owner-push.ts),
    // not to the shared push stream, where any instance would take it.
    if (env.headers.shard !== undefined && addr.instance !== undefined)
      return pushToOwner((e) => this.#rpc.call(endpoint, e, opts), env, opts);
    await this.#jets.publish(
      pushSubject(addr),
      this.#encode(env),
      env.id,
      { name: pushStream(addr), kind: "push" },
      opts,
    );
  }

  /** Stores an event in its service's stream; resolves on the PubAck. */
  async publish(env: Envelope, opts: SendOptions): Promise<void> {
    const c = this.#ctx.cluster;
    await this.#jets.publish(
      eventSubject(c, env.service, env.method),
      this.#encode(env),
      env.id,
      { name: eventStream(c, env.service), kind: "event" },
      opts,
    );
  }

  #encode(env: Envelope): Buffer {
    const body = encodeEnvelope(env);
    const max = this.#ctx.maxPayloadBytes;
    const nc = this.link.nc;
    const limit = nc === undefined ? max : payloadLimit(nc, max);
    if (body.length > limit) throw tooLarge("message", body.length, limit, max);
    return body;
  }

  /** Declares the subscription's durable consumer (new events only) and reads it. */
  async subscribe(sub: EventSubscription, deliver: EventDelivery): Promise<Unsubscribe> {
    const o = this.#opts;
    const c = this.#ctx.cluster;
    const stream = eventStream(c, sub.source.name);
    const name = subscriptionConsumer(sub);
    // A broadcast or a client's (ephemeral) subscription is nobody else's: it expires when its
    // process is gone, and closing deletes it (a durable one left behind would hold every event).
    const ephemeral = sub.broadcast || sub.ephemeral === true;
    const consumer = new WorkConsumer(
      this.link,
      this.#jets,
      this.#work(stream, "event", name, {
        deliverNew: true,
        prefetch: o.eventPrefetch ?? 64,
        filter: eventSubject(c, sub.source.name, sub.event),
        ...(ephemeral ? { inactiveMs: o.broadcastExpiresMs ?? 300_000 } : {}),
      }),
      deliver,
    );
    try {
      await consumer.start(Date.now() + (o.connectTimeoutMs ?? 10_000));
    } catch (e) {
      await consumer.close();
      throw unavailable(`cannot subscribe to ${sub.source.name}.${sub.event} over nats`, e);
    }
    this.#subs.add(consumer);
    return {
      close: async () => {
        this.#subs.delete(consumer);
        await consumer.stop();
        const until = Date.now() + (o.drainMs ?? 5000);
        while (consumer.busy > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
        await consumer.close();
        if (ephemeral) await this.#jets.deleteConsumer(stream.name, name);
      },
    };
  }

  /** Closes every consumer and the connection without waiting for handlers (the App drains first). */
  async close(): Promise<void> {
    const loops: Promise<unknown>[] = [];
    for (const i of this.#instances) loops.push(i.rpc.close(1000), i.push?.close() ?? Promise.resolve());
    for (const c of this.#subs) loops.push(c.close());
    this.#instances.clear();
    this.#subs.clear();
    await Promise.all(loops);
    this.#rpcClient?.close();
    await this.link.close();
  }
}
