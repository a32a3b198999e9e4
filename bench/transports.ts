/**
 * `npm run bench -- transports`: closed-loop rpc over each network transport at concurrency 1
 * and 64, beside the raw lower bound of its medium measured in the same run:
 *
 * - http: undici Pool → a bare node:http handler that parses and answers the JSON body;
 * - zmq: a zeromq DEALER → ROUTER echo with ids matched to replies;
 * - tcp: node:net length-prefixed frames, a JSON echo with ids matched to replies;
 * - amqp, redis: see the marked section at the bottom (`transportRows` does the work).
 *
 * "fan" rows are a generated-style client in one App calling a handler served by another App
 * over that transport (envelope, validation, deadlines, discovery, all of it); "transport"
 * rows call the Transport directly with a prepared envelope, to show where time goes.
 * Target: fan at concurrency 64 within 1.5x of the raw bound (ratio ≥ 0.67).
 *
 * Each transport runs in a process of its own (client and server of a rig share it); within
 * it the three rows run 5 interleaved rounds whose order rotates (bench/lib.ts `compare`).
 */
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { fileURLToPath } from "node:url";
import { type AddressInfo, connect as netConnect, createServer as netServer, type Socket } from "node:net";
import { pino } from "pino";
import { Pool } from "undici";
import { Dealer, Router } from "zeromq";
import { type AppOptions, createApp } from "../src/runtime/app/app.js";
import type { TransportsConfig } from "../src/runtime/app/infra.js";
import {
  type CallOptions,
  defineService,
  type ServiceDescriptor,
  type StructSchema,
  type TransportName,
} from "../src/runtime/index.js";
import type { Envelope, Transport, TransportFactory } from "../src/runtime/transports/transport.js";
import { httpTransport } from "../src/runtime/transports/http/index.js";
import { zmqTransport } from "../src/runtime/transports/zmq/index.js";
import { tcpTransport } from "../src/runtime/transports/tcp/index.js";
import { type BenchRow, compare, loop } from "./lib.js";
import { amqpRows, redisRows } from "./transports-brokers.js";
import { remoteTelemetryRows } from "./telemetry.js";

/** A measured operation and how to tear it down. */
export interface Rig {
  readonly op: () => Promise<unknown>;
  close(): Promise<void>;
}

/** The raw lower bound of one medium. */
export interface RawBound {
  /** Shown in the table: "undici → bare node:http". */
  readonly label: string;
  start(): Promise<Rig>;
}

interface QuoteReq {
  symbol: string;
  quantity: number;
  price: number;
}
interface Quote {
  symbol: string;
  total: number;
}

const REQUEST: QuoteReq = { symbol: "ACME", quantity: 3, price: 12.5 };
const quote = (q: QuoteReq): Quote => ({ symbol: q.symbol, total: q.quantity * q.price });

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
  transports: ["http", "amqp", "redis", "zmq", "tcp", "local"],
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
const Pricing = defineService<
  { quote(req: QuoteReq): Quote },
  { quote(req: QuoteReq, opts?: CallOptions): Promise<Quote> }
>({
  descriptor,
  createClient: (c) => ({ quote: (req, opts) => c.call("quote", req, opts) as Promise<Quote> }),
});

const silent = pino({ level: "silent" });

let rigs = 0;

/** fan end to end: a client App calling a server App over `name` (each App gets its own transport from `transports`). */
export async function fanRig(
  name: TransportName,
  transports: () => TransportsConfig,
  app: Pick<AppOptions, "telemetry"> = {},
): Promise<Rig> {
  const cluster = `bench-${name}-${process.pid}-${++rigs}`;
  const server = createApp({ cluster, discovery: "memory", logger: silent, transports: transports(), ...app }).serve(
    Pricing,
    { quote },
    { transports: [name] },
  );
  const caller = createApp({ cluster, discovery: "memory", logger: silent, transports: transports(), ...app });
  await server.start();
  await caller.start();
  const client = caller.client(Pricing, { transport: name });
  await client.quote(REQUEST);
  return {
    op: () => client.quote(REQUEST),
    close: async () => {
      await caller.stop();
      await server.stop();
    },
  };
}

/** One transport alone: a prepared envelope to a trivial Inbound, no App on either side. */
export async function transportRig(factory: () => TransportFactory): Promise<Rig> {
  const ctx = { cluster: "bench", log: silent, maxPayloadBytes: 4 * 1024 * 1024 };
  const server: Transport = factory()(ctx);
  const client: Transport = factory()(ctx);
  const served = await server.serve(descriptor, "bench-1", {
    call: async (env) => ({
      v: 1,
      id: env.id,
      kind: "reply",
      service: env.service,
      method: env.method,
      headers: {},
      payload: quote(env.payload as QuoteReq),
    }),
    push: async () => undefined,
  });
  let n = 0;
  const never = new AbortController().signal;
  const op = (): Promise<Envelope> => {
    const env: Envelope = {
      v: 1,
      id: `b${++n}`,
      kind: "call",
      service: descriptor.name,
      method: "quote",
      headers: {},
      payload: REQUEST,
    };
    return client.call(served.endpoint, env, { signal: never, deadline: Date.now() + 10_000 });
  };
  await op();
  const close = async (): Promise<void> => {
    await client.close();
    await server.close();
  };
  return { op, close };
}

/** Rows of one transport: raw bound, transport alone and fan end to end, at concurrency 1 and 64. */
export async function transportRows(
  name: TransportName,
  raw: RawBound,
  factory: () => TransportFactory,
  transports: () => TransportsConfig,
): Promise<BenchRow[]> {
  const rigs = [await raw.start(), await transportRig(factory), await fanRig(name, transports)];
  const [rawRig, bare, fan] = rigs as [Rig, Rig, Rig];
  const rows: BenchRow[] = [];
  try {
    for (const concurrency of [1, 64]) {
      // Warm up at the measured concurrency: connections opened, code paths compiled.
      for (const r of rigs) await loop(r.op, { concurrency, durationMs: 300, warmupOps: 0 });
      const measured = await compare(
        [
          { name: `${name} c=${concurrency} raw: ${raw.label}`, op: rawRig.op },
          { name: `${name} c=${concurrency} transport alone`, op: bare.op },
          {
            name: `${name} c=${concurrency} fan end to end`,
            op: fan.op,
            note: concurrency === 64 ? "target: ratio ≥ 0.67 (within 1.5x of raw)" : "",
          },
        ],
        { concurrency, durationMs: 1000, rounds: 5, warmupOps: 0 },
      );
      rows.push(...measured);
    }
  } finally {
    for (const r of rigs) await r.close();
  }
  return rows;
}

// --- raw bounds ------------------------------------------------------------------------------

/** undici Pool (same settings as the transport) → a bare node:http handler parsing and answering JSON. */
export const rawHttp: RawBound = {
  label: "undici → bare node:http",
  async start() {
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = JSON.stringify(quote(JSON.parse(Buffer.concat(chunks).toString("utf8")) as QuoteReq));
        res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
      });
    });
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, {
      connections: 128,
      pipelining: 1,
      keepAliveTimeout: 30_000,
    });
    const body = JSON.stringify(REQUEST);
    return {
      op: async () => {
        const res = await pool.request({
          path: "/bench.Pricing/quote",
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        return JSON.parse(await res.body.text());
      },
      close: async () => {
        await pool.close();
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  },
};

/**
 * A zeromq DEALER → ROUTER echo, replies matched to requests by id (JSON both ways), batched
 * the way the zmq transport batches (writer.ts, frames.ts): the first request of a turn is
 * sent at once, the ones queued meanwhile go out together as one multipart message of
 * `[id, body]` pairs, and the ROUTER answers each received message with one message of
 * `[peer, id, reply, ...]`. Without this the baseline paid one native send per call while fan
 * paid one per batch, and the ratio compared batching, not overhead.
 */
export const rawZmq: RawBound = {
  label: "zeromq DEALER → ROUTER echo, batched like the transport",
  async start() {
    const router = new Router({ linger: 0 });
    await router.bind("tcp://127.0.0.1:*");
    void (async () => {
      for await (const frames of router) {
        const out: Array<Buffer | string> = [frames[0] as Buffer];
        for (let i = 1; i + 1 < frames.length; i += 2) {
          out.push(frames[i] as Buffer, JSON.stringify(quote(JSON.parse(String(frames[i + 1])) as QuoteReq)));
        }
        await router.send(out);
      }
    })().catch(() => undefined);
    const dealer = new Dealer({ linger: 0 });
    dealer.connect(router.lastEndpoint as string);
    const pending = new Map<string, (v: unknown) => void>();
    void (async () => {
      for await (const frames of dealer) {
        for (let i = 0; i + 1 < frames.length; i += 2)
          pending.get(String(frames[i]))?.(JSON.parse(String(frames[i + 1])));
      }
    })().catch(() => undefined);
    let queued: string[] = [];
    let busy = false;
    let turn = false;
    const drain = (): void => {
      if (busy || turn || queued.length === 0) return;
      const batch = queued;
      queued = [];
      send(batch);
    };
    const send = (frames: string[]): void => {
      busy = true;
      void dealer.send(frames).then(() => {
        busy = false;
        drain();
      });
    };
    let n = 0;
    const body = JSON.stringify(REQUEST);
    return {
      op: () =>
        new Promise((resolve) => {
          const id = String(++n);
          pending.set(id, (v) => {
            pending.delete(id);
            resolve(v);
          });
          if (!busy && !turn) {
            turn = true;
            process.nextTick(() => {
              turn = false;
              drain();
            });
            send([id, body]);
          } else queued.push(id, body);
        }),
      close: async () => {
        dealer.close();
        router.close();
      },
    };
  },
};

/**
 * node:net with 4-byte length-prefixed frames `[length][id u32][JSON]`, a JSON echo on the
 * server, replies matched by id; each side writes what one turn queued as one buffer (flushed
 * on `process.nextTick`), the way the tcp transport coalesces (tcp/frames.ts).
 */
export const rawTcp: RawBound = {
  label: "node:net length-prefixed JSON echo, coalesced per turn",
  async start() {
    const coalescer = (socket: Socket) => {
      let parts: Buffer[] = [];
      let scheduled = false;
      const flush = (): void => {
        scheduled = false;
        const b = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
        parts = [];
        socket.write(b);
      };
      return (id: number, json: string): void => {
        const body = Buffer.from(json);
        const f = Buffer.allocUnsafe(8 + body.length);
        f.writeUInt32BE(4 + body.length, 0);
        f.writeUInt32BE(id, 4);
        body.copy(f, 8);
        parts.push(f);
        if (!scheduled) {
          scheduled = true;
          process.nextTick(flush);
        }
      };
    };
    const reader = (onFrame: (id: number, body: Buffer) => void) => {
      let buf: Buffer = Buffer.alloc(0);
      return (chunk: Buffer): void => {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        let off = 0;
        while (buf.length - off >= 8) {
          const len = buf.readUInt32BE(off);
          if (buf.length - off < 4 + len) break;
          onFrame(buf.readUInt32BE(off + 4), buf.subarray(off + 8, off + 4 + len));
          off += 4 + len;
        }
        buf = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
      };
    };
    const server = netServer({ noDelay: true }, (socket) => {
      const send = coalescer(socket);
      socket.on(
        "data",
        reader((id, body) => send(id, JSON.stringify(quote(JSON.parse(body.toString()) as QuoteReq)))),
      );
      socket.on("error", () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const socket = netConnect({ port, host: "127.0.0.1", noDelay: true });
    await new Promise<void>((r) => socket.once("connect", () => r()));
    const pending = new Map<number, (v: unknown) => void>();
    socket.on(
      "data",
      reader((id, body) => {
        const done = pending.get(id);
        pending.delete(id);
        done?.(JSON.parse(body.toString()));
      }),
    );
    const send = coalescer(socket);
    const body = JSON.stringify(REQUEST);
    let n = 0;
    return {
      op: () =>
        new Promise((resolve) => {
          const id = ++n >>> 0;
          pending.set(id, resolve);
          send(id, body);
        }),
      close: async () => {
        socket.destroy();
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  },
};

// --- the table -------------------------------------------------------------------------------

/** Each transport's rows in one section; every section runs in a process of its own. */
const SECTIONS: Readonly<Record<string, () => Promise<BenchRow[]>>> = {
  http: () =>
    transportRows(
      "http",
      rawHttp,
      () => httpTransport(),
      () => ({ http: httpTransport() }),
    ),
  zmq: () =>
    transportRows(
      "zmq",
      rawZmq,
      () => zmqTransport(),
      () => ({ zmq: zmqTransport() }),
    ),
  tcp: () =>
    transportRows(
      "tcp",
      rawTcp,
      () => tcpTransport(),
      () => ({ tcp: tcpTransport() }),
    ),
  // --- amqp and redis rows (raw bounds and rows in bench/transports-brokers.ts) ---
  amqp: amqpRows,
  redis: redisRows,
  // --- telemetry on against off, no SDK and with the SDK (bench/telemetry.ts) ---
  telemetry: () => remoteTelemetryRows(fanRig),
};

/**
 * Runs one section in a child process (`node --import tsx bench/transports.ts --section=NAME`),
 * so no transport measures in a heap, event loop or JIT state that another one left behind.
 */
function inChild(section: string): Promise<BenchRow[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), `--section=${section}`], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("ROWS "));
      if (code !== 0 || line === undefined)
        reject(new Error(`transports section ${section} exited with ${code}:\n${out}`));
      else
        resolve(
          (JSON.parse(line.slice(5)) as BenchRow[]).map((r) => ({
            ...r,
            p50Ms: r.p50Ms ?? Number.NaN,
            p99Ms: r.p99Ms ?? Number.NaN,
          })),
        );
    });
  });
}

export default async function transports(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const section of Object.keys(SECTIONS)) rows.push(...(await inChild(section)));
  return rows;
}

const section = process.argv.find((a) => a.startsWith("--section="))?.slice(10);
if (section !== undefined && process.argv[1] === fileURLToPath(import.meta.url)) {
  const run = SECTIONS[section];
  if (run === undefined) throw new Error(`no transports section "${section}"`);
  const rows = await run();
  process.stdout.write(`ROWS ${JSON.stringify(rows)}\n`);
  process.exit(0);
}
