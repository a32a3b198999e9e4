/**
 * `npm run bench -- local`: the cost of a call through our local transport, against a direct
 * `await handler.method(x)` and Moleculer 0.14's `broker.call` on a local service doing the same
 * work (logger, metrics and tracing off; its parameter validator on, as ours is). Moleculer runs
 * twice: with its default `requestTimeout: 0` (no deadline at all: no timer per call, about a third
 * of the CPU of a call with one) and with the 10 s timeout `bench/peers` gives it, which is what
 * fan's calls carry (their IDL `@timeout`). The issue 15 targets compare with the latter: ours at
 * least 1.2x its throughput with a p99 at most 2x its p99, and at most 2.5x the direct call's
 * time on Node 24. Everything runs in this one process: on Node 20 fan's AsyncLocalStorage turns
 * async hooks on for every promise of it, Moleculer's and the direct call's included (in
 * `bench/peers` each case has a process of its own).
 * In-process cases time batches of 200 calls (bench/lib.ts `batch`), so the harness's ~200 ns
 * per timed operation is not in their ops/s or p50; their p99 comes from a separate pass
 * timing single calls. The http rows time single calls (the harness is noise beside them).
 */
import { ServiceBroker } from "moleculer";
import { pino } from "pino";
import {
  createApp,
  defineService,
  type CallContext,
  type CallOptions,
  type ServiceDescriptor,
  type StructSchema,
} from "../src/runtime/index.js";
import { compare, type BenchRow } from "./lib.js";
import { onOffRows } from "./telemetry.js";
import type { TelemetryOptions } from "../src/runtime/telemetry/index.js";

interface QuoteReq {
  symbol: string;
  quantity: number;
  price: number;
}
interface Quote {
  symbol: string;
  total: number;
}

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
const descriptor: ServiceDescriptor = {
  name: "bench.Pricing",
  version: "1.0.0",
  transports: ["local"],
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
interface PricingHandler {
  quote(req: QuoteReq, ctx: CallContext): Promise<Quote> | Quote;
}
interface PricingClient {
  quote(req: QuoteReq, opts?: CallOptions): Promise<Quote>;
}
const Pricing = defineService<PricingHandler, PricingClient>({
  descriptor,
  createClient: (c) => ({ quote: (req, opts) => c.call("quote", req, opts) as Promise<Quote> }),
});

/** Calls per timed batch for in-process cases. */
const IN_PROCESS_BATCH = 200;

/** The work every case does: a little arithmetic and a fresh result object. */
function work({ symbol, quantity, price }: QuoteReq): Quote {
  return { symbol, total: Math.round(quantity * price * 100) / 100 };
}

class PricingImpl implements PricingHandler {
  async quote(req: QuoteReq): Promise<Quote> {
    return work(req);
  }
}

export default async function bench(): Promise<BenchRow[]> {
  const handler = new PricingImpl();
  const app = createApp({ logger: pino({ level: "silent" }) }).serve(Pricing, handler);
  await app.start();
  const client = app.client(Pricing);
  // The same call through the wire encoding (the local transport's serialising mode), for reference.
  const wireApp = createApp({ logger: pino({ level: "silent" }), transports: { local: { serialize: true } } }).serve(
    Pricing,
    new PricingImpl(),
  );
  await wireApp.start();
  const wireClient = wireApp.client(Pricing);
  // The policy chain (breakers, retries, budget; src/runtime/policy/) off, for the on/off ratio.
  const bareApp = createApp({ logger: pino({ level: "silent" }), policy: false }).serve(Pricing, new PricingImpl());
  await bareApp.start();
  const bareClient = bareApp.client(Pricing);
  // A remote call (http between two Apps, discovery shared in memory) with the chain on and off.
  const cluster = `bench-${process.pid}`;
  const httpServer = createApp({
    cluster,
    discovery: "memory",
    logger: pino({ level: "silent" }),
    transports: { http: {} },
  }).serve({ ...Pricing, descriptor: { ...descriptor, transports: ["http", "local"] } }, new PricingImpl(), {
    transports: ["http"],
  });
  await httpServer.start();
  const httpOn = createApp({
    cluster,
    discovery: "memory",
    logger: pino({ level: "silent" }),
    transports: { http: {} },
  });
  const httpOff = createApp({
    cluster,
    discovery: "memory",
    logger: pino({ level: "silent" }),
    transports: { http: {} },
    policy: false,
  });
  await Promise.all([httpOn.start(), httpOff.start()]);
  const remoteOn = httpOn.client(Pricing, { transport: "http" });
  const remoteOff = httpOff.client(Pricing, { transport: "http" });

  const broker = new ServiceBroker({
    logger: false,
    metrics: false,
    tracing: false,
    transporter: null,
    nodeID: "bench",
  });
  broker.createService({
    name: "pricing",
    actions: {
      quote: {
        params: {
          symbol: { type: "string", max: 12 },
          quantity: { type: "number", integer: true, min: 1 },
          price: { type: "number", min: 0 },
        },
        handler: async (ctx: { params: QuoteReq }) => work(ctx.params),
      },
    },
  });
  await broker.start();
  // The same, with the deadline fan's calls carry (as bench/peers runs it).
  const timed = new ServiceBroker({
    logger: false,
    metrics: false,
    tracing: false,
    transporter: null,
    nodeID: "bench-timed",
    requestTimeout: 10_000,
  });
  timed.createService({
    name: "pricing",
    actions: {
      quote: {
        params: {
          symbol: { type: "string", max: 12 },
          quantity: { type: "number", integer: true, min: 1 },
          price: { type: "number", min: 0 },
        },
        handler: async (ctx: { params: QuoteReq }) => work(ctx.params),
      },
    },
  });
  await timed.start();

  const req: QuoteReq = { symbol: "WINE", quantity: 3, price: 12.5 };
  const check = await client.quote(req);
  if (check.total !== 37.5) throw new Error(`local call returned ${JSON.stringify(check)}`);

  const rows = await compare(
    [
      { name: "direct await handler.quote(x)", batch: IN_PROCESS_BATCH, op: () => handler.quote(req) },
      {
        name: "fan local client.quote(x)",
        batch: IN_PROCESS_BATCH,
        op: () => client.quote(req),
        note: "target on Node 24: time ≤ 2.5x direct (ratio ≥ 0.4)",
      },
      {
        name: "moleculer broker.call, no timeout",
        batch: IN_PROCESS_BATCH,
        op: () => broker.call("pricing.quote", req),
      },
      {
        name: "moleculer broker.call, 10 s timeout",
        batch: IN_PROCESS_BATCH,
        op: () => timed.call("pricing.quote", req),
      },
      { name: "fan local, serialised (reference)", batch: IN_PROCESS_BATCH, op: () => wireClient.quote(req) },
      { name: "fan local, policy chain off", batch: IN_PROCESS_BATCH, op: () => bareClient.quote(req) },
      { name: "fan http call, policy chain on", op: () => remoteOn.quote(req) },
      { name: "fan http call, policy chain off", op: () => remoteOff.quote(req) },
    ],
    { rounds: 5, durationMs: 600, warmupOps: 20_000 },
  );
  await broker.stop();
  await timed.stop();
  await app.stop();
  await wireApp.stop();
  await bareApp.stop();
  await Promise.all([httpOn.stop(), httpOff.stop()]);
  await httpServer.stop();

  const [direct, ours, mol, molTimed, wire, bare, rOn, rOff] = rows as [
    BenchRow,
    BenchRow,
    BenchRow,
    BenchRow,
    BenchRow,
    BenchRow,
    BenchRow,
    BenchRow,
  ];
  const vs = (m: BenchRow) =>
    `ours is ${(ours.opsPerSec / m.opsPerSec).toFixed(2)}x its throughput, p99 ${(ours.p99Ms / m.p99Ms).toFixed(2)}x its p99`;
  const slowdown = direct.opsPerSec / ours.opsPerSec;
  return [
    direct,
    { ...ours, note: `${slowdown.toFixed(2)}x the direct call's time (target ≤ 2.5x on Node 24)` },
    { ...mol, note: `${vs(mol)} (a call without any deadline; reference)` },
    { ...molTimed, note: `${vs(molTimed)} (targets ≥ 1.2x and ≤ 2x)` },
    { ...wire, note: "encode, bytes, bounded decode, both ways" },
    { ...bare, note: `the chain on costs ${pct(ours.p50Ms, bare.p50Ms)} p50 in process` },
    rOn,
    { ...rOff, note: `the chain on costs ${pct(rOn.p50Ms, rOff.p50Ms)} p50 on a remote call (target < 10%)` },
    ...(await localTelemetryRows()),
  ];
}

/** Telemetry on against off for the in-process call, no SDK and with the SDK (bench/telemetry.ts). */
export async function localTelemetryRows(): Promise<BenchRow[]> {
  const req: QuoteReq = { symbol: "WINE", quantity: 3, price: 12.5 };
  const make = async (telemetry: TelemetryOptions | false) => {
    const app = createApp({ logger: pino({ level: "silent" }), telemetry }).serve(Pricing, new PricingImpl());
    await app.start();
    const client = app.client(Pricing);
    return { op: () => client.quote(req), close: () => app.stop() };
  };
  return onOffRows(
    "local",
    make,
    { rounds: 5, durationMs: 600, warmupOps: 20_000, batch: IN_PROCESS_BATCH },
    "",
    50_000,
  );
}

function pct(on: number, off: number): string {
  const d = (on / off - 1) * 100;
  return `${d >= 0 ? "+" : ""}${d.toFixed(1)}%`;
}
