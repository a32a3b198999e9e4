/**
 * fan cases: the client App calls `Pricing.quote` served by an App in another process, over
 * each network transport (discovery in etcd, as between real processes); in-process over
 * the local transport; events from one publisher App to three subscribing services.
 * A transport is added by one line in `NETWORK` (its options from the case context), and its
 * events by one line in `fanEvents`.
 */
import { createApp, type TransportName } from "../../src/runtime/index.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
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
import { pricing, REQUEST, subscriber, ticker, work } from "./service.js";

type Options = (ctx: CaseContext, side: "server" | "client") => object;

/** fan's network transports: name, the medium it is compared on, and its options. */
const NETWORK: ReadonlyArray<readonly [TransportName, string, Options]> = [
  ["redis", "redis", (ctx) => ({ url: ctx.redisUrl })],
  ["amqp", "amqp", (ctx) => ({ url: ctx.amqpUrl })],
  ["zmq", "no broker", () => ({})],
  ["tcp", "no broker", () => ({})],
  ["http", "no broker", () => ({})],
  ["nats", "nats", (ctx) => ({ url: ctx.natsUrl })],
];
/** http also counts on the "http" medium, against grpc-js and Connect. */
const ALSO_ON: Readonly<Record<string, readonly string[]>> = { http: ["http"] };

const app = (ctx: CaseContext, transports: Record<string, object>) =>
  createApp({
    cluster: `peers-${ctx.id}`,
    discovery: `etcd://${ctx.etcd}`,
    transports,
    logger: silentLogger(),
  });

function rpc(name: TransportName, medium: string, options: Options): RpcCase {
  const def = pricing([name]);
  return {
    kind: "rpc",
    name: `fan ${name}`,
    medium,
    fan: true,
    serve: async (ctx): Promise<ServerSide> => {
      const server = app(ctx, { [name]: options(ctx, "server") }).serve(def, { quote: work });
      await server.start();
      return { close: () => server.stop() };
    },
    client: async (ctx): Promise<ClientSide> => {
      const caller = app(ctx, { [name]: options(ctx, "client") });
      await caller.start();
      const client = caller.client(def, { transport: name });
      await untilAnswered(() => client.quote(REQUEST));
      return { op: () => client.quote(REQUEST), close: () => caller.stop() };
    },
  };
}

/** Calls until the server is discovered and answers (at most 30 s). */
async function untilAnswered(op: () => Promise<unknown>): Promise<void> {
  const end = Date.now() + 30_000;
  for (;;) {
    try {
      await op();
      return;
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const local: RpcCase = {
  kind: "rpc",
  name: "fan local",
  medium: "in-process",
  fan: true,
  batch: 1000,
  client: async () => {
    const def = pricing(["local"]);
    const a = createApp({ logger: silentLogger() }).serve(def, { quote: async (q) => work(q) });
    await a.start();
    const client = a.client(def);
    return { op: () => client.quote(REQUEST), close: () => a.stop() };
  },
};

/** The baseline of the in-process medium: the handler awaited directly. */
const direct: RpcCase = {
  kind: "rpc",
  name: "direct await handler.quote(x)",
  medium: "in-process",
  fan: false,
  batch: 1000,
  client: async () => {
    const handler = { quote: async (q: typeof REQUEST) => work(q) };
    return { op: () => handler.quote(REQUEST), close: async () => undefined };
  },
};

export const fanRpc: readonly RpcCase[] = [
  local,
  direct,
  ...NETWORK.map(([name, medium, options]) => ({ ...rpc(name, medium, options), alsoOn: ALSO_ON[name] ?? [] })),
];

/** zmq events go through an event hub: the subscribing process runs it. */
const hubOptions: Options = (ctx, side) => {
  const events = { publish: `tcp://127.0.0.1:${ctx.port}`, subscribe: `tcp://127.0.0.1:${ctx.port2}` };
  return side === "server" ? { hub: { publishPort: ctx.port, subscribePort: ctx.port2 }, events } : { events };
};

function events(name: TransportName, medium: string, options: Options): EventsCase {
  return {
    kind: "events",
    name: `fan ${name} events`,
    medium,
    fan: true,
    serve: async (ctx): Promise<EventsServerSide> => {
      const count = counters();
      const a = app(ctx, { [name]: options(ctx, "server") });
      for (let i = 0; i < 3; i++) a.serve(subscriber(i + 1, [name]), { onTick: () => count.hit(i) });
      await a.start();
      return { expect: count.expect, received: count.received, close: () => a.stop() };
    },
    client: async (ctx): Promise<PublisherSide> => {
      const a = app(ctx, { [name]: options(ctx, "client") });
      await a.start();
      const pub = a.publisher(ticker([name]));
      return { publish: (n) => pub.emit("tick", { n }), close: () => a.stop() };
    },
  };
}

export const fanEvents: readonly EventsCase[] = [
  events("redis", "redis", (ctx) => ({ url: ctx.redisUrl })),
  events("amqp", "amqp", (ctx) => ({ url: ctx.amqpUrl })),
  events("zmq", "no broker", hubOptions),
  events("nats", "nats", (ctx) => ({ url: ctx.natsUrl })),
];
