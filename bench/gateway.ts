/**
 * `npm run bench -- gateway`: what the `fanc gateway` hop costs. The Till service
 * (test/gateway/fixtures/service.ts) runs in one process on redis and amqp, a gateway per
 * transport (`fanc gateway --transports redis|amqp`) in two more, and this process calls
 * `Till.peek` both ways at concurrency 1: directly over the transport with an App's client, and
 * as `POST /fan.gw.Till/peek` to the gateway with undici (one keep-alive connection).
 *
 * Floors, each in a process of its own and called the same way, so the hop can be told apart
 * from what any HTTP hop costs on this machine: a raw TCP round trip (an echo server: the
 * loopback and the two process wake-ups, no HTTP), a bare `node:http` server answering the same
 * reply (HTTP, no gateway), `GET /health` on the gateway, and the gateway with its clients
 * stubbed (`bench/gateway/stub.ts`: its own work, no transport). Controls: the bare `node:http`
 * round trip followed by the direct call, both from this process with no gateway, per
 * transport: what chaining an HTTP round trip and a transport call costs on this machine,
 * which is more than the sum of the two measured apart (docs/performance.md, "The gateway hop:
 * where the extra time is"); the gateway rows' notes give the hop against it too. Relays: a bare
 * `node:http` server in a process of its own making the same call with an App's client
 * (`bench/gateway/relay.ts`), the gateway's topology without its code.
 *
 * `FAN_BENCH_GATEWAY_BEFORE=<dir>`, a checkout of an older fan (with node_modules), adds its
 * gateway side by side in the same rounds (and its stub, if that checkout has
 * bench/gateway/stub.ts), to compare a change under the same load.
 *
 * Rounds interleaved (the order rotates), medians of 5; the load average before and after goes
 * into the notes and `meta`, since the machine is shared. Needs etcd, Redis and RabbitMQ
 * (npm run brokers). Target: the gateway adds < 0.2 ms p50.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { loadavg } from "node:os";
import { Pool } from "undici";
import { createApp } from "../src/runtime/app/app.js";
import { silentLogger } from "../src/runtime/telemetry/logging.js";
import { Till } from "../test/gateway/fixtures/generated/fan/gw.js";
import { type BenchRow, type Case, compare } from "./lib.js";

const repo = new URL("..", import.meta.url).pathname;
const ETCD = process.env.FAN_ETCD ?? "127.0.0.1:2379";
const cluster = `bench-gw-${process.pid}`;
const before = process.env.FAN_BENCH_GATEWAY_BEFORE?.replace(/\/+$/, "");

export const meta: Record<string, unknown> = {};

function load(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
}

/** Spawns a child and resolves once `ready` matches its output. */
function child(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ p: ChildProcess; out: () => string }> {
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

/** A keep-alive TCP connection to the echo floor: each op writes `msg` and waits for it back. */
async function echoClient(url: string, msg: Buffer): Promise<{ op: () => Promise<void>; close: () => void }> {
  const u = new URL(url);
  const sock: Socket = connect(Number(u.port), u.hostname);
  sock.setNoDelay(true);
  await new Promise<void>((resolve, reject) => sock.once("connect", resolve).once("error", reject));
  let got = 0;
  let waiting: (() => void) | undefined;
  sock.on("data", (d: Buffer) => {
    got += d.length;
    if (got >= msg.length && waiting !== undefined) {
      got = 0;
      const w = waiting;
      waiting = undefined;
      w();
    }
  });
  return {
    op: () =>
      new Promise<void>((resolve) => {
        waiting = resolve;
        sock.write(msg);
      }),
    close: () => sock.destroy(),
  };
}

const urlOf = (out: string): string =>
  (/listening on ((?:http|tcp):\/\/\S+)/.exec(out) as RegExpExecArray)[1] as string;

export default async function gateway(): Promise<BenchRow[]> {
  meta.loadBefore = load();
  console.log(`load average before: ${meta.loadBefore}`);
  const kids: ChildProcess[] = [];
  const apps: ReturnType<typeof createApp>[] = [];
  const pools: Pool[] = [];
  let echo: { op: () => Promise<void>; close: () => void } | undefined;
  const tsx = `${repo}node_modules/.bin/tsx`;
  try {
    const svc = await child(
      tsx,
      ["test/gateway/fixtures/service.ts"],
      { FAN_GW_TRANSPORTS: "redis,amqp", FAN_GW_CLUSTER: cluster, FAN_ETCD: ETCD },
      /"event":"ready"/,
    );
    kids.push(svc.p);
    const startGateway = async (root: string, t: string): Promise<string> => {
      const gw = await child(
        process.execPath,
        [
          `${root}/bin/fanc.mjs`,
          "gateway",
          "test/gateway/fixtures/idl",
          "--port",
          "0",
          "--transports",
          t,
          "--cluster",
          cluster,
          "--discovery",
          `etcd://${ETCD}`,
          "--log-level",
          "warn",
        ],
        {},
        /listening on http:\/\/\S+/,
      );
      kids.push(gw.p);
      return urlOf(gw.out());
    };
    const startChild = async (args: string[]): Promise<string> => {
      const c = await child(tsx, args, {}, /listening on \S+/);
      kids.push(c.p);
      return urlOf(c.out());
    };
    const urls: Record<string, string> = {};
    for (const t of ["redis", "amqp"]) {
      urls[t] = await startGateway(repo.replace(/\/+$/, ""), t);
      if (before !== undefined) urls[`before-${t}`] = await startGateway(before, t);
    }
    urls.stub = await startChild(["bench/gateway/stub.ts"]);
    if (before !== undefined && existsSync(`${before}/bench/gateway/stub.ts`))
      urls["before-stub"] = await startChild([`${before}/bench/gateway/stub.ts`]);
    urls.http = await startChild(["bench/gateway/floor.ts", "http"]);
    for (const t of ["redis", "amqp"]) urls[`relay-${t}`] = await startChild(["bench/gateway/relay.ts", t, cluster]);
    urls.tcp = await startChild(["bench/gateway/floor.ts", "tcp"]);
    const clients: Record<string, ReturnType<typeof Till.createClient>> = {};
    for (const t of ["redis", "amqp"] as const) {
      const app = createApp({
        cluster,
        discovery: `etcd://${ETCD}`,
        logger: silentLogger(),
        transports:
          t === "redis"
            ? { redis: { url: process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379" } }
            : { amqp: { url: process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672" } },
        telemetry: { healthService: false },
      });
      apps.push(app);
      await app.ready();
      clients[t] = app.client(Till, { transport: t });
    }
    const body = JSON.stringify({ by: "bench" });
    const headers = { "content-type": "application/json" };
    // One connection per target, as a browser or service keeps one alive; no pipelining (c=1).
    const pool = (key: string): Pool => {
      const p = new Pool(urls[key] as string, { connections: 1, pipelining: 1 });
      pools.push(p);
      return p;
    };
    const post = (key: string) => {
      const p = pool(key);
      return async () => {
        const r = await p.request({ path: "/fan.gw.Till/peek", method: "POST", body, headers });
        if (r.statusCode !== 200) throw new Error(`${key} answered ${r.statusCode}: ${await r.body.text()}`);
        await r.body.json();
      };
    };
    // The echo carries as many bytes as the POST above does on the wire, both ways.
    echo = await echoClient(
      urls.tcp as string,
      Buffer.from(
        `POST /fan.gw.Till/peek HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: keep-alive\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      ),
    );
    const health = pool("redis");
    // Controls: an HTTP round trip, then the direct call, one after the other from this process.
    const httpThen = (call: () => Promise<unknown> | undefined) => {
      const http = post("http");
      return async () => {
        await http();
        await call();
      };
    };
    const cases: Case[] = [
      { name: "redis direct (App client)", op: () => clients.redis?.peek({ by: "bench" }) },
      { name: "gateway -> redis (HTTP POST)", op: post("redis") },
      ...(before !== undefined ? [{ name: "gateway before -> redis (HTTP POST)", op: post("before-redis") }] : []),
      { name: "amqp direct (App client)", op: () => clients.amqp?.peek({ by: "bench" }) },
      { name: "gateway -> amqp (HTTP POST)", op: post("amqp") },
      ...(before !== undefined ? [{ name: "gateway before -> amqp (HTTP POST)", op: post("before-amqp") }] : []),
      { name: "gateway, clients stubbed (own process: its work + HTTP)", op: post("stub") },
      ...(urls["before-stub"] !== undefined
        ? [{ name: "gateway before, clients stubbed", op: post("before-stub") }]
        : []),
      {
        name: "gateway GET /health (HTTP, no call)",
        op: async () => {
          const r = await health.request({ path: "/health", method: "GET" });
          await r.body.text();
        },
      },
      { name: "floor: bare node:http server, same reply", op: post("http") },
      {
        name: "control: bare node:http POST, then redis direct (no gateway)",
        op: httpThen(() => clients.redis?.peek({ by: "bench" })),
      },
      {
        name: "control: bare node:http POST, then amqp direct (no gateway)",
        op: httpThen(() => clients.amqp?.peek({ by: "bench" })),
      },
      { name: "relay: bare node:http server calling redis (no gateway code)", op: post("relay-redis") },
      { name: "relay: bare node:http server calling amqp (no gateway code)", op: post("relay-amqp") },
      { name: "floor: raw TCP round trip, same bytes", op: echo.op },
    ];
    const rows = await compare(cases, { concurrency: 1, durationMs: 1000, rounds: 5, warmupOps: 300 });
    meta.loadAfter = load();
    meta.node = process.version;
    console.log(`load average after: ${meta.loadAfter}`);
    const p50 = (name: string): number => rows.find((r) => r.case.startsWith(name))?.p50Ms ?? Number.NaN;
    return rows.map((r) => {
      const t = /-> (redis|amqp)/.exec(r.case)?.[1];
      const added = t === undefined ? undefined : r.p50Ms - p50(`${t} direct`);
      // Against the control: what the gateway adds beyond an HTTP round trip chained with the call.
      const beyond = t === undefined ? undefined : r.p50Ms - p50(`control: bare node:http POST, then ${t}`);
      const overRelay = t === undefined ? undefined : r.p50Ms - p50(`relay: bare node:http server calling ${t}`);
      const note =
        added === undefined
          ? undefined
          : `hop adds ${added.toFixed(3)} ms p50 (target < 0.2), ${(beyond as number).toFixed(3)} ms over HTTP floor then direct, ${(overRelay as number).toFixed(3)} over a bare relay; load ${meta.loadBefore} / ${meta.loadAfter}`;
      return note === undefined ? r : { ...r, note };
    });
  } finally {
    echo?.close();
    await Promise.allSettled(pools.map((p) => p.close()));
    await Promise.allSettled(apps.map((a) => a.stop()));
    for (const k of kids) k.kill("SIGTERM");
  }
}
