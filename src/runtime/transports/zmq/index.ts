/**
 * The zmq transport (zeromq v6): rpc and pushes over DEALER/ROUTER, events over PUB/SUB
 * through an event hub. Brokerless: an instance's endpoint is its ROUTER,
 * `tcp://127.0.0.1:5555`, and pushes are at-least-once by the sender (acknowledged when the
 * handler finished, sent again after a nack), not by a queue.
 *
 * ```ts
 * createApp({ transports: { zmq: { port: 5555, events: { publish: "tcp://hub:5571", subscribe: "tcp://hub:5572" } } } });
 * ```
 */
import type { ServiceDescriptor } from "../../descriptor.js";
import { Code, FanError } from "../../errors.js";
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
import { ZmqClient, type ZmqClientOptions } from "./client.js";
import { EventBus, type EventStats } from "./events.js";
import { type EventHub, type EventHubEndpoints, type EventHubOptions, startEventHub } from "./hub.js";
import { ZmqServer, type ZmqServerOptions } from "./server.js";

export { startEventHub, type EventHub, type EventHubEndpoints, type EventHubOptions } from "./hub.js";
export type { EventStats } from "./events.js";

/** Options of `createApp({ transports: { zmq: {...} } })`. */
export interface ZmqTransportOptions extends ZmqServerOptions, ZmqClientOptions {
  /** The event hub to publish and subscribe through; without it (or `hub`), events fail with FAILED_PRECONDITION. */
  readonly events?: EventHubEndpoints;
  /** Run an event hub inside this transport (started with the first event use); `events` then defaults to it. */
  readonly hub?: EventHubOptions;
  /** On close, how long in-flight requests may finish first; default 1 s. */
  readonly closeGraceMs?: number;
}

/** The zmq transport factory. */
export function zmqTransport(opts: ZmqTransportOptions = {}): TransportFactory {
  return (ctx) => new ZmqTransport(opts, ctx);
}

/** The zmq `Transport`. */
export class ZmqTransport implements Transport {
  readonly name = "zmq" as const;
  private readonly server: ZmqServer;
  private readonly client: ZmqClient;
  private bus: Promise<EventBus> | undefined;
  private busNow: EventBus | undefined;
  private hub: EventHub | undefined;
  /** Set by close(): a later publish or subscribe must not start (and leave bound) a new hub. */
  private closed = false;

  constructor(
    private readonly opts: ZmqTransportOptions,
    private readonly ctx: TransportContext,
  ) {
    const log = ctx.log.child({ transport: "zmq" });
    this.server = new ZmqServer(opts, log, ctx.maxPayloadBytes);
    this.client = new ZmqClient(opts, log, ctx.maxPayloadBytes);
  }

  /** Serves an instance on this transport's ROUTER (bound on first use). */
  async serve(service: ServiceDescriptor, _instanceId: string, inbound: Inbound): Promise<Served> {
    const endpoint = await this.server.listen();
    const remove = this.server.add(service, inbound);
    let stopped = false;
    return {
      endpoint,
      stop: async () => {
        if (!stopped) remove();
        stopped = true;
      },
    };
  }

  /** Sends a call over the endpoint's DEALER. */
  call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope> {
    return this.client.call(endpoint, env, opts);
  }

  /** False while the connection to `endpoint` is known down. */
  reachable(endpoint: string): boolean {
    return this.client.reachable(endpoint);
  }

  /**
   * While the first connection to `endpoint` is being made: the error a call or push waiting for
   * it gets at its deadline, naming the endpoint (`Transport.stalled`; outages here are per peer).
   */
  stalled(_kind: "call" | "push", endpoint: string): FanError | undefined {
    return this.client.stalled(endpoint);
  }

  /** Sends a push; resolves once acknowledged. */
  push(endpoint: string, env: Envelope, opts: SendOptions): Promise<void> {
    return this.client.push(endpoint, env, opts);
  }

  /** Publishes through the event hub. */
  async publish(env: Envelope, opts: SendOptions): Promise<void> {
    await (await this.events()).publish(env, opts);
  }

  /** Subscribes through the event hub. */
  async subscribe(sub: EventSubscription, deliver: EventDelivery): Promise<Unsubscribe> {
    return (await this.events()).subscribe(sub, deliver);
  }

  /** State updates: one message per update on a topic every watcher subscribes (events.ts). */
  readonly volatile = {
    publish: async (env: Envelope, opts: SendOptions): Promise<void> => (await this.events()).publishLive(env, opts),
    subscribe: async (sub: EventSubscription, deliver: EventDelivery): Promise<Unsubscribe> =>
      (await this.events()).subscribeLive(sub, deliver),
  };

  /** What events lost, failed or could not decode on this transport. */
  eventStats(): EventStats {
    return { ...(this.busNow?.stats ?? { lost: 0, failed: 0, malformed: 0 }) };
  }

  /**
   * The event bus, made on first use. A failed start (the hub's port taken, say) is not kept:
   * the next publish or subscribe tries again, so a hub whose port was freed since binds then.
   */
  private events(): Promise<EventBus> {
    if (this.bus !== undefined) return this.bus;
    if (this.closed) return Promise.reject(new FanError(Code.UNAVAILABLE, "zmq transport closed"));
    const bus = this.startBus();
    this.bus = bus;
    bus.catch(() => {
      if (this.bus === bus) this.bus = undefined;
    });
    return bus;
  }

  private async startBus(): Promise<EventBus> {
    let endpoints = this.opts.events;
    let hub: EventHub | undefined;
    if (this.opts.hub !== undefined) {
      hub = await startEventHub(this.opts.hub);
      endpoints ??= hub;
    }
    if (endpoints === undefined) {
      throw new FanError(
        Code.FAILED_PRECONDITION,
        "zmq events need an event hub: zmqTransport({ events: { publish, subscribe } }) or { hub: {} }, " +
          "or FAN_ZMQ_EVENTS_PUBLISH and FAN_ZMQ_EVENTS_SUBSCRIBE set to the hub's endpoints",
      );
    }
    try {
      const bus = new EventBus(
        endpoints,
        this.ctx.cluster,
        this.ctx.log.child({ transport: "zmq" }),
        this.ctx.maxPayloadBytes,
      );
      this.hub = hub;
      this.busNow = bus;
      return bus;
    } catch (e) {
      await hub?.close();
      throw e;
    }
  }

  /** Closes sockets (linger 0); in-flight requests get `closeGraceMs`. */
  async close(): Promise<void> {
    this.closed = true;
    this.client.close();
    await this.server.close(this.opts.closeGraceMs ?? 1000);
    const bus = await this.bus?.catch(() => undefined);
    bus?.close();
    await this.hub?.close();
  }
}
