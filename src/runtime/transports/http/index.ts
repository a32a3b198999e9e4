/**
 * The http transport: a node:http server (one per transport, every served instance on one
 * port) and an undici Pool client. rpc is `POST /{service}/{method}` with a JSON body, usable
 * with curl:
 *
 * ```sh
 * curl -s -X POST localhost:8080/retail.wines.PublicWines/get \
 *   -H 'fan-timeout: 2000' -H 'fan-h-tenant: acme' -d '{"storeId":"s1","inventoryId":"i1"}'
 * curl -s localhost:8080/store/s1/item/i1          # an @route path
 * ```
 *
 * http carries no events: `publish` and `subscribe` fail with UNIMPLEMENTED, and the App
 * relays events through a broker transport.
 */
import type { ServiceDescriptor } from "../../descriptor.js";
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
import { HttpClient, type HttpClientOptions } from "./client.js";
import { HttpServer, type HttpServerOptions } from "./server.js";
import { noEvents } from "../no-events.js";

/** Options of `createApp({ transports: { http: {...} } })`. */
export interface HttpTransportOptions extends HttpServerOptions, HttpClientOptions {
  /** On close, how long in-flight requests may finish before connections are cut; default 1 s. */
  readonly closeGraceMs?: number;
}

/** The http transport factory. */
export function httpTransport(opts: HttpTransportOptions = {}): TransportFactory {
  return (ctx) => new HttpTransport(opts, ctx);
}

/** The http `Transport`: a lazily started server plus a client. */
export class HttpTransport implements Transport {
  readonly name = "http" as const;
  private readonly server: HttpServer;
  private readonly client: HttpClient;

  constructor(
    private readonly opts: HttpTransportOptions,
    ctx: TransportContext,
  ) {
    const log = ctx.log.child({ transport: "http" });
    this.server = new HttpServer(opts, log, ctx.maxPayloadBytes, ctx.admin);
    this.client = new HttpClient(opts, log, ctx.maxPayloadBytes);
  }

  /** Serves an instance on this transport's server (started on first use). */
  async serve(service: ServiceDescriptor, instanceId: string, inbound: Inbound): Promise<Served> {
    const endpoint = await this.server.listen();
    const remove = this.server.add(service, instanceId, inbound);
    let stopped = false;
    return {
      endpoint,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        remove();
      },
    };
  }

  /** POSTs a call to `endpoint` (`http://host:port`). */
  call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope> {
    return this.client.call(endpoint, env, opts);
  }

  /** POSTs a push; resolves on 202 (the handler finished), sending again while not acknowledged. */
  push(endpoint: string, env: Envelope, opts: SendOptions): Promise<void> {
    return this.client.push(endpoint, env, opts);
  }

  /** Always fails: http carries no events. */
  async publish(env: Envelope, _opts: SendOptions): Promise<void> {
    throw noEvents("http", `publish ${env.service}.${env.method}`);
  }

  /** Always fails: http carries no events. */
  async subscribe(sub: EventSubscription, _deliver: EventDelivery): Promise<Unsubscribe> {
    throw noEvents("http", `subscribe to ${sub.source.name}.${sub.event}`);
  }

  /** Closes the client pools and the server (in-flight requests get `closeGraceMs`). */
  async close(): Promise<void> {
    const grace = this.opts.closeGraceMs ?? 1000;
    await Promise.all([this.client.close(grace), this.server.close(grace)]);
  }
}
