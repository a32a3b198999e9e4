/**
 * `npm run bench -- gateway`: what the `fanc gateway` hop costs. The Till service
 * (test/gateway/fixtures/service.ts) runs in one process on redis and amqp, a gateway per
 * transport (`fanc gateway --transports redis|amqp`) in two more, and this process calls
 * `Till.peek` both ways at concurrency 1: directly over the transport with an App's client, and
 * as `POST /fan.gw.Till/peek` to the gateway with undici (keep-alive). `GET /health` on the
 * gateway is the HTTP hop alone (no downstream call). Rounds interleaved, medians reported;
 * the load average is printed before and after, since the machine is shared.
 *
 * Needs etcd, Redis and RabbitMQ (npm run brokers). Target: the gateway adds < 0.2 ms p50.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { loadavg } from "node:os";
import { pino } from "pino";
import { Pool } from "undici";
import { loadIdl } from "../src/cli/call.js";
import { Catalog } from "../src/gateway/catalog.js";
import { Cors } from "../src/gateway/cors.js";
import { GatewayServer } from "../src/gateway/server.js";
import type { App } from "../src/runtime/app/app.js";
import { createApp } from "../src/runtime/app/app.js";
import { silentLogger } from "../src/runtime/telemetry/logging.js";
import { Till } from "../test/gateway/fixtures/generated/fan/gw.js";
import { type BenchRow, compare } from "./lib.js";

const repo = new URL("..", import.meta.url).pathname;
const ETCD = process.env.FAN_ETCD ?? "127.0.0.1:2379";
const cluster = `bench-gw-${process.pid}`;

function load(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
}

/** A gateway in this process whose clients answer `peek` at once: its own work per request. */
async function stubbedGateway(): Promise<{ url: string; close: () => Promise<void> }> {
  const schemas = await loadIdl(`${repo}test/gateway/fixtures/idl`);
  const ds = schemas.services().map((s) => schemas.descriptor(s));
  const stub = {
    call: async () => ({ total: 1, by: "bench" }),
    push: async () => undefined,
    event: () => ({ subscribe: () => Promise.reject(new Error("stub")) }),
    state: () => {
      throw new Error("stub");
    },
  };
  const app = { transportNames: () => [] } as unknown as App;
  const server = new GatewayServer({ app, catalog: new Catalog(schemas.model, ds, () => stub as never), cors: new Cors(undefined), log: pino({ level: "silent" }) });
  return { url: await server.listen(0), close: () => server.close() };
}

/** Spawns a child and resolves once `ready` matches its output. */
function child(cmd: string, args: string[], env: Record<string, string>, ready: RegExp): Promise<{ p: ChildProcess; out: () => string }> {
  const p = spawn(cmd, args, { cwd: repo, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  p.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  p.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(" ")} did not start: ${out}`)), 120_000);
    const check = setInterval(() => {
      if (ready.test(out)) {
        clearTimeout(timer);
        clearInterval(check);
        resolve({ p, out: () => out });
      } else if (p.exitCode !== null) {
        clearTimeout(timer);
        clearInterval(check);
        reject(new Error(`${args.join(" ")} exited ${p.exitCode}: ${out}`));
      }
    }, 50);
  });
}

export default async function gateway(): Promise<BenchRow[]> {
  console.log(`load average before: ${load()}`);
  const kids: ChildProcess[] = [];
  const apps: ReturnType<typeof createApp>[] = [];
  const pools: Pool[] = [];
  const stubbed = await stubbedGateway();
  try {
    const svc = await child(`${repo}node_modules/.bin/tsx`, ["test/gateway/fixtures/service.ts"], { FAN_GW_TRANSPORTS: "redis,amqp", FAN_GW_CLUSTER: cluster, FAN_ETCD: ETCD }, /"event":"ready"/);
    kids.push(svc.p);
    const urls: Record<string, string> = {};
    for (const t of ["redis", "amqp"]) {
      const gw = await child(
        process.execPath,
        ["bin/fanc.mjs", "gateway", "test/gateway/fixtures/idl", "--port", "0", "--transports", t, "--cluster", cluster, "--discovery", `etcd://${ETCD}`, "--log-level", "warn"],
        {},
        /listening on http:\/\/\S+/,
      );
      kids.push(gw.p);
      urls[t] = (/listening on (http:\/\/\S+)/.exec(gw.out()) as RegExpExecArray)[1] as string;
    }
    const clients: Record<string, ReturnType<typeof Till.createClient>> = {};
    for (const t of ["redis", "amqp"] as const) {
      const app = createApp({
        cluster,
        discovery: `etcd://${ETCD}`,
        logger: silentLogger(),
        transports: t === "redis" ? { redis: { url: process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379" } } : { amqp: { url: process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672" } },
        telemetry: { healthService: false },
      });
      apps.push(app);
      await app.ready();
      clients[t] = app.client(Till, { transport: t });
    }
    const body = JSON.stringify({ by: "bench" });
    urls.stub = stubbed.url;
    const viaGateway = (t: string) => {
      const pool = new Pool(urls[t] as string, { connections: 4, pipelining: 1 });
      pools.push(pool);
      return async () => {
        const r = await pool.request({ path: "/fan.gw.Till/peek", method: "POST", body, headers: { "content-type": "application/json" } });
        if (r.statusCode !== 200) throw new Error(`gateway answered ${r.statusCode}: ${await r.body.text()}`);
        await r.body.json();
      };
    };
    const health = new Pool(urls.redis as string, { connections: 1 });
    pools.push(health);
    const rows = await compare(
      [
        { name: "redis direct (App client)", op: () => clients.redis?.peek({ by: "bench" }) },
        { name: "gateway -> redis (HTTP POST)", op: viaGateway("redis") },
        { name: "amqp direct (App client)", op: () => clients.amqp?.peek({ by: "bench" }) },
        { name: "gateway -> amqp (HTTP POST)", op: viaGateway("amqp") },
        { name: "gateway in-process, clients stubbed (its own work + HTTP)", op: viaGateway("stub") },
        {
          name: "gateway GET /health (the HTTP hop alone)",
          op: async () => {
            const r = await health.request({ path: "/health", method: "GET" });
            await r.body.text();
          },
        },
      ],
      { concurrency: 1, durationMs: 1000, rounds: 5, warmupOps: 300 },
    );
    const after = load();
    console.log(`load average after: ${after}`);
    const p50 = (name: string): number => rows.find((r) => r.case.startsWith(name))?.p50Ms ?? Number.NaN;
    return rows.map((r) => {
      const t = r.case.startsWith("gateway -> redis") ? "redis" : r.case.startsWith("gateway -> amqp") ? "amqp" : undefined;
      const added = t === undefined ? undefined : r.p50Ms - p50(`${t} direct`);
      const note = added === undefined ? undefined : `hop adds ${added.toFixed(3)} ms p50 (target < 0.2); load ${after}`;
      return note === undefined ? r : { ...r, note };
    });
  } finally {
    await Promise.allSettled(pools.map((p) => p.close()));
    await stubbed.close();
    await Promise.allSettled(apps.map((a) => a.stop()));
    for (const k of kids) k.kill("SIGTERM");
  }
}
