/**
 * The tcp transport: rpc and pushes as length-prefixed frames over one persistent node:net
 * connection per peer (frames.ts), with no broker and no native dependency. Brokerless like
 * zmq: an instance's endpoint is its server, `tcp://127.0.0.1:5556`, and pushes are
 * at-least-once by the sender (acknowledged when the handler finished, sent again after a
 * nack), not by a queue.
 *
 * tcp carries no events: `publish` and `subscribe` fail with UNIMPLEMENTED, and the App relays
 * events through a transport that carries them (amqp, redis, nats, zmq).
 *
 * ```ts
 * createApp({ transports: { tcp: { port: 5556 }, redis: { url } } }); // redis carries the events
 * ```
 */
import type { ServiceDescriptor } from "../../descriptor.js";
import type { FanError } from "../../errors.js";
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
import { TcpClient, type TcpClientOptions } from "./client.js";
import { TcpServer, type TcpServerOptions } from "./server.js";
import { noEvents } from "../no-events.js";

/** Options of `createApp({ transports: { tcp: {...} } })`. */
export interface TcpTransportOptions extends TcpServerOptions, TcpClientOptions {
  /** On close, how long in-flight requests may finish first; default 1 s. */
  readonly closeGraceMs?: number;
}

/** The tcp transport factory. */
export function tcpTransport(opts: TcpTransportOptions = {}): TransportFactory {
  return (ctx) => new TcpTransport(opts, ctx);
}

/** The tcp `Transport`: a lazily started server plus a client. */
export class TcpTransport implements Transport {
  readonly name = "tcp" as const;
  private readonly server: TcpServer;
  private readonly client: TcpClient;

  constructor(
    private readonly opts: TcpTransportOptions,
    ctx: TransportContext,
  ) {
    const log = ctx.log.child({ transport: "tcp" });
    this.server = new TcpServer(opts, log, ctx.maxPayloadBytes);
    this.client = new TcpClient(opts, log, ctx.maxPayloadBytes);
  }

  /** Serves an instance on this transport's server (listening from the first use). */
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

  /** Sends a call over the endpoint's connection. */
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

  /** Sends a push; resolves once acknowledged (the handler finished). */
  push(endpoint: string, env: Envelope, opts: SendOptions): Promise<void> {
    return this.client.push(endpoint, env, opts);
  }

  /** Always fails: tcp carries no events. */
  async publish(env: Envelope, _opts: SendOptions): Promise<void> {
    throw noEvents("tcp", `publish ${env.service}.${env.method}`);
  }

  /** Always fails: tcp carries no events. */
  async subscribe(sub: EventSubscription, _deliver: EventDelivery): Promise<Unsubscribe> {
    throw noEvents("tcp", `subscribe to ${sub.source.name}.${sub.event}`);
  }

  /** Closes connections; in-flight requests get `closeGraceMs`. */
  async close(): Promise<void> {
    this.client.close();
    await this.server.close(this.opts.closeGraceMs ?? 1000);
  }
}
