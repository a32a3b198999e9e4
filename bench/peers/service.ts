/**
 * The service every peer serves, written once for fan: one small request/reply rpc
 * (`Pricing.quote`) and, for the events case, a publisher (`Ticker.tick`) with three
 * subscribing services. The descriptors are what `fanc compile` would generate for
 *
 *   service Pricing { rpc quote(symbol: string @maxLength(12), quantity: int @min(1), price: float @min(0)): Quote }
 *   service Ticker { event tick(n: int) }
 *   service Sub1 { on Ticker.tick }  (and Sub2, Sub3)
 */
import {
  type CallOptions,
  defineService,
  type EventStream,
  type ServiceDescriptor,
  type StructSchema,
  type TransportName,
} from "../../src/runtime/index.js";

export interface QuoteReq {
  symbol: string;
  quantity: number;
  price: number;
}
export interface Quote {
  symbol: string;
  total: number;
}

/** The request every client sends and the work every server does. */
export const REQUEST: QuoteReq = { symbol: "ACME", quantity: 3, price: 12.5 };
export const work = (q: QuoteReq): Quote => ({ symbol: q.symbol, total: Math.round(q.quantity * q.price * 100) / 100 });

const ALL: TransportName[] = ["http", "amqp", "redis", "zmq", "tcp", "local"];

const input: StructSchema = {
  kind: "struct",
  name: "bench.Pricing.quote$input",
  fields: [
    { name: "symbol", schema: { kind: "string", maxLength: 12 } },
    { name: "quantity", schema: { kind: "int", min: 1 } },
    { name: "price", schema: { kind: "float", min: 0 } },
  ],
};
const output: StructSchema = {
  kind: "struct",
  name: "bench.Quote",
  fields: [
    { name: "symbol", schema: { kind: "string" } },
    { name: "total", schema: { kind: "float" } },
  ],
};

export function pricingDescriptor(transports: readonly TransportName[] = ALL): ServiceDescriptor {
  return {
    name: "bench.Pricing",
    version: "1.0.0",
    transports: [...transports],
    shards: 16,
    unique: false,
    methods: {
      quote: { name: "quote", kind: "rpc", input, output, timeoutMs: 10_000, idempotent: true, retry: 0, throws: [] },
    },
    events: {},
    states: {},
    subscriptions: [],
    depends: [],
    errors: {},
  };
}

export interface PricingHandler {
  quote(req: QuoteReq): Promise<Quote> | Quote;
}
export interface PricingClient {
  quote(req: QuoteReq, opts?: CallOptions): Promise<Quote>;
}
export const pricing = (transports: readonly TransportName[] = ALL) =>
  defineService<PricingHandler, PricingClient>({
    descriptor: pricingDescriptor(transports),
    createClient: (c) => ({ quote: (req, opts) => c.call("quote", req, opts) as Promise<Quote> }),
  });

export interface Tick {
  n: number;
}

export function tickerDescriptor(transports: readonly TransportName[]): ServiceDescriptor {
  return {
    name: "bench.Ticker",
    version: "1.0.0",
    transports: [...transports],
    shards: 16,
    unique: false,
    methods: {},
    events: {
      tick: {
        name: "tick",
        payload: { kind: "struct", name: "bench.Ticker.tick$event", fields: [{ name: "n", schema: { kind: "int" } }] },
        broadcast: false,
      },
    },
    states: {},
    subscriptions: [],
    depends: [],
    errors: {},
  };
}

export interface TickerClient {
  readonly events: { readonly tick: EventStream<Tick> };
}
export const ticker = (transports: readonly TransportName[]) =>
  defineService<Record<string, never>, TickerClient>({
    descriptor: tickerDescriptor(transports),
    createClient: (c) => ({ events: { tick: c.event("tick") as EventStream<Tick> } }),
  });

export interface SubscriberHandler {
  onTick(event: Tick): void;
}
/** Subscribing service `bench.Sub<i>`: receives every `Ticker.tick` once (one instance). */
export const subscriber = (i: number, transports: readonly TransportName[]) => {
  const source = tickerDescriptor(transports);
  return defineService<SubscriberHandler, Record<string, never>>({
    descriptor: {
      name: `bench.Sub${i}`,
      version: "1.0.0",
      transports: [...transports],
      shards: 16,
      unique: false,
      methods: {},
      events: {},
      states: {},
      subscriptions: [{ service: source.name, event: "tick", handler: "onTick", source: () => source }],
      depends: [],
      errors: {},
    },
    createClient: () => ({}),
  });
};
