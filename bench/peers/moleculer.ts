/**
 * Moleculer cases (0.14 on Node 20; 0.15, installed as `moleculer15`, on Node 22 and later,
 * which it requires): `broker.call("pricing.quote", req)` over its Redis, AMQP (defaults
 * and tuned), NATS and TCP transporters, and a local call; `broker.emit("tick")` to three
 * services for the events case. Logger, metrics and tracing off; the parameter validator on
 * (fan validates too).
 */
import type { BrokerOptions, ServiceBroker as Broker14 } from "moleculer";
import {
  type CaseContext,
  type ClientSide,
  counters,
  type EventsCase,
  type EventsServerSide,
  type PublisherSide,
  type RpcCase,
  type ServerSide,
} from "./case.js";
import { type QuoteReq, REQUEST, work } from "./service.js";

/** The Moleculer release the issue names for this Node: 0.15 on Node 22+, else 0.14. */
const major = Number(process.versions.node.split(".")[0]);
const moleculer = (major >= 22 ? await import("moleculer15") : await import("moleculer")) as unknown as {
  ServiceBroker?: typeof Broker14;
  default?: { ServiceBroker: typeof Broker14 };
};
const ServiceBroker = (moleculer.ServiceBroker ?? moleculer.default?.ServiceBroker) as typeof Broker14;
/** The Moleculer version these cases run. */
export const MOLECULER_VERSION: string =
  (ServiceBroker as unknown as { MOLECULER_VERSION?: string }).MOLECULER_VERSION ?? "?";

type Transporter = (ctx: CaseContext, side: "server" | "client") => NonNullable<BrokerOptions["transporter"]> | null;

const base = (ctx: CaseContext, side: string, transporter: ReturnType<Transporter>): BrokerOptions => ({
  namespace: ctx.id,
  nodeID: `${side}-${ctx.id}`,
  transporter,
  logger: false,
  metrics: false,
  tracing: false,
  // Default request timeout is 0 (none); fan's calls carry a 10 s deadline, give Moleculer the same.
  requestTimeout: 10_000,
});

const pricingService = {
  name: "pricing",
  actions: {
    quote: {
      params: {
        symbol: { type: "string", max: 12 },
        quantity: { type: "number", integer: true, min: 1 },
        price: { type: "number", min: 0 },
      },
      handler: (ctx: { params: QuoteReq }) => work(ctx.params),
    },
  },
};

function rpc(name: string, medium: string, transporter: Transporter): RpcCase {
  return {
    kind: "rpc",
    name,
    medium,
    fan: false,
    serve: async (ctx): Promise<ServerSide> => {
      const broker = new ServiceBroker(base(ctx, "server", transporter(ctx, "server")));
      broker.createService(pricingService);
      await broker.start();
      return { close: () => broker.stop() };
    },
    client: async (ctx): Promise<ClientSide> => {
      const broker = new ServiceBroker(base(ctx, "client", transporter(ctx, "client")));
      await broker.start();
      await broker.waitForServices(["pricing"], 30_000);
      return { op: () => broker.call("pricing.quote", REQUEST), close: () => broker.stop() };
    },
  };
}

const redis: Transporter = (ctx) => ctx.redisUrl;
const amqp: Transporter = (ctx) => ctx.amqpUrl;
/** The tuning the issue measured: prefetch 256 and Nagle off. */
const amqpTuned: Transporter = (ctx) => ({
  type: "AMQP",
  options: { url: ctx.amqpUrl, prefetch: 256, socketOptions: { noDelay: true } },
});
const nats: Transporter = (ctx) => ctx.natsUrl;
/** TCP with static addresses (no UDP discovery): each node listens on its own port. */
const tcp: Transporter = (ctx, side) => ({
  type: "TCP",
  options: {
    udpDiscovery: false,
    port: side === "server" ? ctx.port : ctx.port2,
    urls: [`127.0.0.1:${ctx.port}/server-${ctx.id}`, `127.0.0.1:${ctx.port2}/client-${ctx.id}`],
  },
});

export const moleculerRpc: readonly RpcCase[] = [
  rpc("moleculer Redis", "redis", redis),
  rpc("moleculer AMQP (defaults)", "amqp", amqp),
  rpc("moleculer AMQP (prefetch 256, noDelay)", "amqp", amqpTuned),
  rpc("moleculer NATS", "nats", nats),
  rpc("moleculer TCP", "no broker", tcp),
  {
    kind: "rpc",
    name: "moleculer local broker.call",
    medium: "in-process",
    fan: false,
    batch: 1000,
    client: async (ctx) => {
      const broker = new ServiceBroker(base(ctx, "local", null));
      broker.createService(pricingService);
      await broker.start();
      return { op: () => broker.call("pricing.quote", REQUEST), close: () => broker.stop() };
    },
  },
];

function events(name: string, medium: string, transporter: Transporter): EventsCase {
  return {
    kind: "events",
    name,
    medium,
    fan: false,
    serve: async (ctx): Promise<EventsServerSide> => {
      const count = counters();
      const broker = new ServiceBroker(base(ctx, "server", transporter(ctx, "server")));
      for (let i = 0; i < 3; i++) {
        broker.createService({ name: `sub${i + 1}`, events: { tick: () => count.hit(i) } });
      }
      await broker.start();
      return { expect: count.expect, received: count.received, close: () => broker.stop() };
    },
    client: async (ctx): Promise<PublisherSide> => {
      const broker = new ServiceBroker(base(ctx, "client", transporter(ctx, "client")));
      await broker.start();
      await broker.waitForServices(["sub1", "sub2", "sub3"], 30_000);
      return { publish: (n) => broker.emit("tick", { n }), close: () => broker.stop() };
    },
  };
}

export const moleculerEvents: readonly EventsCase[] = [
  events("moleculer Redis emit", "redis", redis),
  events("moleculer AMQP emit (prefetch 256, noDelay)", "amqp", amqpTuned),
  events("moleculer NATS emit", "nats", nats),
  events("moleculer TCP emit", "no broker", tcp),
];
