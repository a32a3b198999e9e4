/**
 * The redis transport (ioredis).
 *
 * - rpc: a list per service version (`fan.{cluster}.{service}.rpc.{version}`, the service in
 *   a `{hash tag}`), popped in batches by the serving instances; replies on the caller's own
 *   pub/sub channel; cancellations on the version's cancel channel.
 * - push: a stream per service major version read by the consumer group `workers` (XREADGROUP,
 *   XACK after the handler; the entries of a consumer gone from the live-consumer set are
 *   claimed at once, XAUTOCLAIM takes idle ones after `claimIdleMs`; a dead-letter stream after
 *   `maxDeliveries`). Only services with push members get a stream.
 * - events: a stream per event (trimmed to about `eventsMaxLen` entries) with a consumer group
 *   per subscribing service, or per instance for `@broadcast`.
 *
 * No command waits in ioredis's offline queue: while Redis is away, sends wait for it until
 * their deadline and then fail with UNAVAILABLE. Durability of acknowledged pushes across a
 * Redis restart is the server's (appendonly / replicas), as configured by its operator.
 */
import { hasMethods, type ServiceDescriptor } from "../../descriptor.js";
import { Code, FanError } from "../../errors.js";
import { notSent as neverSent } from "../../call/outcome.js";
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
import {
  connect,
  disconnect,
  notSent,
  ready,
  type RedisClient,
  type RedisConnectOptions,
  type Role,
  send,
  stalled,
  unavailable,
} from "./clients.js";
import {
  consumersKey,
  deadLetterKey,
  eventKey,
  formatEndpoint,
  parseEndpoint,
  PUSH_GROUP,
  pushKey,
  subscriptionGroup,
} from "./names.js";
import { RedisPubSub } from "./pubsub.js";
import { RedisRpcClient } from "./rpc-client.js";
import { RedisRpcServer } from "./rpc-server.js";
import { pushToOwner, toOwner } from "../owner-push.js";
import { KeptPushes, keptBound } from "../kept-push.js";
import { limitsOf } from "../push-ends.js";
import { StreamConsumer, type StreamSpec } from "./streams.js";

/** Options of `createApp({ transports: { redis: {...} } })`. */
export interface RedisTransportOptions extends RedisConnectOptions {
  /** Requests popped at once by a serving instance; default 128. */
  readonly rpcBatch?: number;
  /** Calls in handlers at once per served instance; default 256. */
  readonly maxInFlight?: number;
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
  /** Entries of a consumer idle this long are taken over by another; default 15 s. */
  readonly claimIdleMs?: number;
  /** Longest blocking read; bounds how soon a loop sees a reconnection; default 1 s. */
  readonly blockMs?: number;
  /**
   * An instance drops out of the alive set (rpc) and the live-consumer set (pushes: its pending
   * entries are then claimed by another instance) this long after its last refresh; default 5 s.
   */
  readonly aliveTtlMs?: number;
  /** Approximate cap of each event stream (XADD MAXLEN ~); default 100 000. */
  readonly eventsMaxLen?: number;
  /** How long `serve` and `subscribe` wait for Redis; default 10 s. */
  readonly connectTimeoutMs?: number;
  /** How long closing a subscription waits for its handlers in flight; default 5 s. */
  readonly drainMs?: number;
}

/** The redis transport factory. */
export function redisTransport(opts: RedisTransportOptions = {}): TransportFactory {
  return (ctx) => new RedisTransport(opts, ctx);
}

interface Instance {
  readonly rpc: RedisRpcServer;
  /** Only for services with push members (no stream is created for the others). */
  readonly push: StreamConsumer | undefined;
}

/** The redis `Transport`: a shared command connection plus dedicated blocking and pub/sub ones. */
export class RedisTransport implements Transport {
  readonly name = "redis" as const;
  /** The shared, auto-pipelined command connection. */
  readonly cmd: RedisClient;
  readonly #ctx: TransportContext;
  readonly #opts: RedisTransportOptions;
  readonly #log: TransportContext["log"];
  readonly #instances = new Set<Instance>();
  /** Aborted by close: a serve or subscription still waiting for Redis gives up then, not at its deadline. */
  readonly #closing = new AbortController();
  /** Serves and subscriptions under way: close lets them settle before it disconnects (see close). */
  readonly #starting = new Set<Promise<unknown>>();
  /** Each subscription's consumer, with the deletion of its group when the group is its own. */
  readonly #subs = new Map<StreamConsumer, (() => Promise<unknown>) | undefined>();
  readonly #conns = new Set<RedisClient>();
  #rpcClient: RedisRpcClient | undefined;
  #pubsub: RedisPubSub | undefined;
  #serverSub: RedisClient | undefined;
  #seq = 0;

  /** The rpc loop's `maxInFlight` and the push stream's `pushPrefetch`. */
  get window(): NonNullable<Transport["window"]> {
    const o = this.#opts;
    return {
      calls: { size: o.maxInFlight ?? 256, option: "maxInFlight" },
      pushes: { size: o.pushPrefetch ?? 64, option: "pushPrefetch" },
    };
  }

  constructor(opts: RedisTransportOptions, ctx: TransportContext) {
    this.#opts = opts;
    this.#ctx = ctx;
    this.#log = ctx.log.child({ transport: "redis" });
    this.cmd = this.#connect("cmd");
  }

  #connect(role: Role): RedisClient {
    const c = connect(this.#opts, role, `fan:${this.#ctx.cluster}:${role}:${process.pid}:${++this.#seq}`, this.#log);
    this.#conns.add(c);
    return c;
  }

  /** State updates: PUBLISH/SUBSCRIBE (pubsub.ts) instead of a stream and a consumer group per watcher. */
  readonly volatile = {
    publish: (env: Envelope, opts: SendOptions): Promise<void> => this.#live.publish(env, opts),
    subscribe: (sub: EventSubscription, deliver: EventDelivery): Promise<Unsubscribe> =>
      this.#live.subscribe(sub, deliver, Date.now() + (this.#opts.connectTimeoutMs ?? 10_000)),
  };

  get #live(): RedisPubSub {
    this.#pubsub ??= new RedisPubSub(
      this.cmd,
      () => this.#connect("sub"),
      this.#ctx.cluster,
      this.#log,
      this.#ctx.maxPayloadBytes,
    );
    return this.#pubsub;
  }

  get #rpc(): RedisRpcClient {
    this.#rpcClient ??= new RedisRpcClient(
      this.cmd,
      this.#connect("sub"),
      this.#ctx.cluster,
      this.#log,
      this.#ctx.maxPayloadBytes,
    );
    return this.#rpcClient;
  }

  #stream(
    key: string,
    group: string,
    consumer: string,
    startId: "0" | "$",
    deleteOnAck: boolean,
    prefetch: number,
  ): StreamSpec {
    const o = this.#opts;
    return {
      key,
      group,
      consumer,
      startId,
      deleteOnAck,
      prefetch,
      maxDeliveries: o.maxDeliveries ?? 5,
      blockMs: o.blockMs ?? 1000,
      claimIdleMs: o.claimIdleMs ?? 15_000,
      retryDelayMs: o.retryDelayMs ?? 200,
      maxBytes: this.#ctx.maxPayloadBytes,
      log: this.#log,
      onDeadLetter: (env) => this.#ctx.deadLetter?.(env?.service ?? "?", env?.method ?? "?"),
    };
  }

  /** Starts the instance's rpc loop and push consumer; the endpoint names cluster, service and version. */
  async serve(service: ServiceDescriptor, instanceId: string, inbound: Inbound): Promise<Served> {
    const o = this.#opts;
    const addr = { cluster: this.#ctx.cluster, service: service.name, version: service.version };
    const deadline = Date.now() + (o.connectTimeoutMs ?? 10_000);
    this.#serverSub ??= this.#connect("sub");
    const rpc = new RedisRpcServer(
      this.cmd,
      this.#connect("block"),
      this.#serverSub,
      addr.cluster,
      service,
      instanceId,
      inbound,
      {
        batch: o.rpcBatch ?? 128,
        maxInFlight: o.maxInFlight ?? 256,
        blockMs: o.blockMs ?? 1000,
        aliveTtlMs: o.aliveTtlMs ?? 5000,
        maxBytes: this.#ctx.maxPayloadBytes,
        log: this.#log,
      },
    );
    let push: StreamConsumer | undefined;
    if (hasMethods(service, "push")) {
      const key = pushKey(addr);
      const spec = {
        ...this.#stream(key, PUSH_GROUP, instanceId, "0", true, o.pushPrefetch ?? 64),
        liveness: { key: consumersKey(key), ttlMs: o.aliveTtlMs ?? 5000 },
        ...limitsOf(service, o.maxDeliveries ?? 5),
      };
      // A push refused for the instance's state is kept, not counted as a delivery (kept-push.ts).
      const kept = new KeptPushes((env) => inbound.push(env), spec.retryDelayMs, keptBound(spec.prefetch), this.#log);
      push = new StreamConsumer(this.cmd, this.#connect("block"), spec, kept.deliver);
    }
    const instance = { rpc, push };
    try {
      await this.#track(
        Promise.all([rpc.start(deadline, this.#closing.signal), push?.start(deadline, this.#closing.signal)]),
      );
    } catch (e) {
      await Promise.all([rpc.stop(), push?.close()]);
      throw unavailable(`cannot serve ${service.name} over redis`, e);
    }
    this.#instances.add(instance);
    return { endpoint: formatEndpoint({ ...addr, instance: instanceId }), stop: () => this.#stopInstance(instance) };
  }

  async #stopInstance(i: Instance): Promise<void> {
    await Promise.all([i.rpc.stop(), i.push?.stop()]);
  }

  /**
   * While calls (or pushes) cannot leave: the error one waiting gets at its deadline
   * (`Transport.stalled`), from the connections it waits on: a push is an XADD on the command
   * connection, a @shard push to its owner a call (an app that only pushes has no rpc client).
   */
  stalled(kind: "call" | "push", endpoint: string, headers: EnvelopeHeaders): FanError | undefined {
    return kind === "push" && !toOwner(headers, parseEndpoint(endpoint))
      ? stalled(this.cmd)
      : this.#rpcClient?.stalled();
  }

  /** Sends a call and waits for its reply. */
  call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope> {
    return this.#rpc.call(endpoint, env, opts);
  }

  /** The service major's push stream, for pushes while no instance is registered (Transport). */
  queueEndpoint(service: string, version: string): string {
    return formatEndpoint({ cluster: this.#ctx.cluster, service, version });
  }

  /** The redis stream a service major's pushes wait in (Transport). */
  pushQueueName(endpoint: string): string {
    return pushKey(parseEndpoint(endpoint));
  }

  /** Appends a push to the service's stream; resolves when Redis has it. */
  async push(endpoint: string, env: Envelope, opts: SendOptions): Promise<void> {
    const addr = parseEndpoint(endpoint);
    // A @shard push goes to its owner's own list and is acknowledged by the owner (owner-push.ts).
    if (toOwner(env.headers, addr)) return pushToOwner((e) => this.#rpc.call(endpoint, e, opts), env, opts);
    const key = pushKey(addr);
    await this.#append(key, this.#encode(env), opts, []);
  }

  /** Appends an event to its stream; resolves when Redis has it. */
  async publish(env: Envelope, opts: SendOptions): Promise<void> {
    const key = eventKey(this.#ctx.cluster, env.service, env.method);
    await this.#append(key, this.#encode(env), opts, ["MAXLEN", "~", this.#opts.eventsMaxLen ?? 100_000]);
  }

  #encode(env: Envelope): Buffer {
    const body = encodeEnvelope(env);
    const max = this.#ctx.maxPayloadBytes;
    if (body.length > max)
      throw new FanError(Code.RESOURCE_EXHAUSTED, `message of ${body.length} bytes exceeds the limit of ${max}`);
    return body;
  }

  /**
   * XADDs, waiting for Redis (bounded by the deadline) while it is away; an XADD whose outcome
   * is unknown is sent again (at least once), never dropped silently.
   */
  async #append(key: string, body: Buffer, opts: SendOptions, trim: (string | number)[]): Promise<void> {
    // Whether an XADD may have reached Redis: until one has, every failure says the message never left.
    let maybe = false;
    const fail = (e: FanError): FanError => (maybe ? e : neverSent(e));
    for (;;) {
      if (opts.signal.aborted) throw fail(new FanError(Code.CANCELLED, "cancelled"));
      await ready(this.cmd, opts.deadline, opts.signal).catch((e: unknown) => {
        throw fail(FanError.from(e, Code.UNAVAILABLE));
      });
      try {
        await send(this.cmd, "XADD", [key, ...trim, "*", "e", body]);
        return;
      } catch (e) {
        maybe ||= !notSent(e);
        if (opts.deadline <= Date.now()) throw fail(unavailable("redis lost before the message was stored", e));
        if (!notSent(e) && this.cmd.status === "ready") throw neverSent(unavailable("redis refused the message", e));
      }
    }
  }

  /** Creates the subscription's consumer group (new events only) and reads it. */
  async subscribe(sub: EventSubscription, deliver: EventDelivery): Promise<Unsubscribe> {
    const o = this.#opts;
    const key = eventKey(this.#ctx.cluster, sub.source.name, sub.event);
    const group = subscriptionGroup(sub);
    const consumer = new StreamConsumer(
      this.cmd,
      this.#connect("block"),
      this.#stream(key, group, sub.instanceId, "$", false, o.eventPrefetch ?? 64),
      deliver,
    );
    const own = sub.broadcast || sub.ephemeral === true;
    const destroy = own ? () => send(this.cmd, "XGROUP", ["DESTROY", key, group]).catch(() => undefined) : undefined;
    try {
      await this.#track(consumer.start(Date.now() + (o.connectTimeoutMs ?? 10_000), this.#closing.signal));
    } catch (e) {
      await consumer.close();
      // Closed while the group was being created: nobody will unsubscribe, so a group of its
      // own (broadcast, ephemeral) is deleted here or it stays in Redis for good.
      if (this.#closing.signal.aborted) await destroy?.();
      throw unavailable(`cannot subscribe to ${sub.source.name}.${sub.event} over redis`, e);
    }
    this.#subs.set(consumer, destroy);
    return {
      close: async () => {
        this.#subs.delete(consumer);
        await consumer.stop();
        const until = Date.now() + (o.drainMs ?? 5000);
        while (consumer.busy > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
        await consumer.close();
        await destroy?.();
      },
    };
  }

  /** The dead-letter stream of a push stream or event stream (for tools and tests). */
  static deadLetterKey(stream: string): string {
    return deadLetterKey(stream);
  }

  /**
   * A serve's or subscription's start, which close waits for (see close); one that finishes
   * after close began fails with the close's reason, close having stopped only what it knew of.
   */
  #track<T>(p: Promise<T>): Promise<T> {
    const checked = p.then((v) => {
      this.#closing.signal.throwIfAborted();
      return v;
    });
    const settled: Promise<unknown> = checked.then(
      () => this.#starting.delete(settled),
      () => this.#starting.delete(settled),
    );
    this.#starting.add(settled);
    return checked;
  }

  /** Closes every loop and connection without waiting for handlers (the App drains first). */
  async close(): Promise<void> {
    this.#closing.abort(new FanError(Code.UNAVAILABLE, "redis transport closed"));
    // A serve or subscription past its wait for Redis has commands in flight (a consumer group
    // being created, the instance announced): disconnecting now would leave what Redis already
    // did behind. Waits still for the connection end at once (the signal above); the rest get
    // a round trip, bounded in case Redis does not answer.
    if (this.#starting.size > 0) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.#starting]),
        new Promise((r) => (t = setTimeout(r, 1000))),
      ]);
      clearTimeout(t);
    }
    const loops: Promise<unknown>[] = [];
    for (const i of this.#instances) loops.push(i.rpc.stop(), i.rpc.close(1000), i.push?.close() ?? Promise.resolve());
    // A subscription still open was never unsubscribed (a stop that ended the App's start
    // while it was subscribing): a group of its own would stay in Redis for good.
    for (const [c, destroy] of this.#subs) loops.push(c.close().then(() => destroy?.()));
    this.#instances.clear();
    this.#subs.clear();
    await Promise.all(loops);
    this.#rpcClient?.close();
    this.#pubsub?.close();
    for (const c of this.#conns) disconnect(c);
  }
}
