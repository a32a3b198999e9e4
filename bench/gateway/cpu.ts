/**
 * CPU time and system calls per relayed request in a `fanc gateway` process, for work on the
 * hop when the machine is too loaded to show a p50 (`npx tsx bench/gateway/cpu.ts`). Starts Till
 * (test/gateway/fixtures/service.ts) on redis and amqp, and one gateway per transport from this
 * checkout and, with `FAN_BENCH_GATEWAY_BEFORE=<checkout>`, from that one too; then, per gateway
 * and in rounds that alternate them, sends `GWCPU_N` (default 5000) `POST /fan.gw.Till/peek`
 * at concurrency 1 over one keep-alive connection and reads the gateway's utime+stime from
 * /proc before and after: µs of gateway CPU per request. `GWCPU_STRACE=1` also counts its system
 * calls per request (`strace -f -c -p`, one extra round per gateway); `GWCPU_NODE_ARGS` is
 * passed to the gateways' and the stub's node (`--cpu-prof --cpu-prof-dir=DIR`).
 *
 * Also measured the same way: the gateway with its clients stubbed (bench/gateway/stub.ts: its
 * own work plus HTTP), a bare `node:http` server (bench/gateway/floor.ts), and the App client
 * called directly from this process (`process.cpuUsage`), the cost the gateway's client path
 * should match. `GWCPU_ONLY=redis|amqp` keeps one transport (any other word: none);
 * `GWCPU_ROUNDS` (default 3); `GWCPU_WATCH=name:pid,...` reports other processes' CPU per
 * request too (the brokers). Needs etcd, Redis and RabbitMQ, like bench/gateway.ts.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { Pool } from "undici";

const repo = new URL("../..", import.meta.url).pathname.replace(/\/+$/, "");
const before = process.env.FAN_BENCH_GATEWAY_BEFORE?.replace(/\/+$/, "");
const ETCD = process.env.FAN_ETCD ?? "127.0.0.1:2379";
const cluster = `bench-gwcpu-${process.pid}`;
const N = Number(process.env.GWCPU_N ?? 5000);
const ROUNDS = Number(process.env.GWCPU_ROUNDS ?? 3);
const TICK_US = 1e6 / 100; // USER_HZ

const kids: ChildProcess[] = [];
function child(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ p: ChildProcess; out: string }> {
  const p = spawn(cmd, args, { cwd: repo, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  kids.push(p);
  let out = "";
  p.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  p.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    const t = setInterval(() => {
      if (ready.test(out)) {
        clearInterval(t);
        resolve({ p, out });
      } else if (p.exitCode !== null) {
        clearInterval(t);
        reject(new Error(out));
      }
    }, 50);
  });
}

/** Appends `v` to `rec[k]`. */
function push(rec: Record<string, number[]>, k: string, v: number): void {
  const a = rec[k];
  if (a === undefined) rec[k] = [v];
  else a.push(v);
}

/** utime + stime of a process and its threads, in µs. */
function cpuUs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) * TICK_US;
}

async function drive(pool: Pool, n: number): Promise<number> {
  const body = '{"by":"bench"}';
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const r = await pool.request({
      path: "/fan.gw.Till/peek",
      method: "POST",
      body,
      headers: { "content-type": "application/json" },
    });
    if (r.statusCode !== 200) throw new Error(`${r.statusCode}: ${await r.body.text()}`);
    await r.body.json();
  }
  return Number(process.hrtime.bigint() - t0) / 1e3 / n;
}

/** Other processes whose CPU per request is reported (`GWCPU_WATCH=name:pid,...`: the brokers). */
const watched: [string, number][] = (process.env.GWCPU_WATCH ?? "")
  .split(",")
  .filter(Boolean)
  .map((w) => w.split(":") as [string, string])
  .map(([n, p]) => [n, Number(p)]);
const others: Record<string, Record<string, number[]>> = {};
const snap = (): number[] => watched.map(([, p]) => cpuUs(p));
const note = (name: string, s0: number[]): void => {
  const s1 = snap();
  const rec = others[name] ?? {};
  others[name] = rec;
  for (const [i, [n]] of watched.entries()) push(rec, n, ((s1[i] as number) - (s0[i] as number)) / N);
};

try {
  const svc = await child(
    `${repo}/node_modules/.bin/tsx`,
    ["test/gateway/fixtures/service.ts"],
    { FAN_GW_TRANSPORTS: "redis,amqp", FAN_GW_CLUSTER: cluster, FAN_ETCD: ETCD },
    /"event":"ready"/,
  );
  watched.push(["service", svc.p.pid as number]);
  const gws: { name: string; pid: number; pool: Pool }[] = [];
  const only = process.env.GWCPU_ONLY?.split(",");
  for (const t of ["redis", "amqp"].filter((x) => only === undefined || only.includes(x)))
    for (const [label, root] of [["after", repo], ...(before === undefined ? [] : [["before", before]])] as [
      string,
      string,
    ][]) {
      const g = await child(
        process.execPath,
        [
          ...(process.env.GWCPU_NODE_ARGS?.split(" ").filter(Boolean) ?? []),
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
      const url = (/listening on (http:\/\/\S+)/.exec(g.out) as RegExpExecArray)[1] as string;
      gws.push({
        name: `${t} ${label}`,
        pid: g.p.pid as number,
        pool: new Pool(url, { connections: 1, pipelining: 1 }),
      });
    }
  // Floors: the gateway with its clients stubbed (its own work and HTTP) and a bare node:http server.
  const floors: [string, string[]][] = [
    [
      "stub",
      [...(process.env.GWCPU_NODE_ARGS?.split(" ").filter(Boolean) ?? []), "--import", "tsx", "bench/gateway/stub.ts"],
    ],
    ...(before === undefined
      ? []
      : [["stub before", ["--import", "tsx", `${before}/bench/gateway/stub.ts`]] as [string, string[]]]),
    ["bare http", ["--import", "tsx", "bench/gateway/floor.ts", "http"]],
  ];
  for (const [name, args] of floors) {
    const f = await child(process.execPath, args, {}, /listening on http:\/\/\S+/);
    const url = (/listening on (http:\/\/\S+)/.exec(f.out) as RegExpExecArray)[1] as string;
    gws.push({ name, pid: f.p.pid as number, pool: new Pool(url, { connections: 1, pipelining: 1 }) });
  }
  for (const g of gws) await drive(g.pool, 2000); // warm up (JIT, connections)
  console.log(
    `load before: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}; N=${N} per round`,
  );
  const per: Record<string, number[]> = {};
  const lat: Record<string, number[]> = {};
  for (let r = 0; r < ROUNDS; r++)
    for (const g of r % 2 === 0 ? gws : [...gws].reverse()) {
      const c0 = cpuUs(g.pid);
      const s0 = snap();
      const us = await drive(g.pool, N);
      note(g.name, s0);
      push(per, g.name, (cpuUs(g.pid) - c0) / N);
      push(lat, g.name, us);
    }
  // The direct App client in this process, for comparison: what the gateway's client path
  // should cost (this process's CPU per call, which includes the loop driving it).
  const { createApp } = await import("../../src/runtime/app/app.js");
  const { silentLogger } = await import("../../src/runtime/telemetry/logging.js");
  const { Till } = await import("../../test/gateway/fixtures/generated/fan/gw.js");
  for (const t of (["redis", "amqp"] as const).filter((x) => only === undefined || only.includes(x))) {
    const app = createApp({
      cluster,
      discovery: `etcd://${ETCD}`,
      logger: silentLogger(),
      transports:
        t === "redis"
          ? { redis: { url: "redis://127.0.0.1:6379" } }
          : { amqp: { url: "amqp://guest:guest@127.0.0.1:5672" } },
      telemetry: { healthService: false },
    });
    await app.ready();
    const c = app.client(Till, { transport: t });
    for (let i = 0; i < 2000; i++) await c.peek({ by: "bench" });
    for (let r = 0; r < ROUNDS; r++) {
      const c0 = process.cpuUsage();
      const s0 = snap();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < N; i++) await c.peek({ by: "bench" });
      const d = process.cpuUsage(c0);
      note(`${t} direct (this process)`, s0);
      push(per, `${t} direct (this process)`, (d.user + d.system) / N);
      push(lat, `${t} direct (this process)`, Number(process.hrtime.bigint() - t0) / 1e3 / N);
    }
    await app.stop();
  }
  for (const name of Object.keys(per).filter((k) => k.endsWith("(this process)")))
    gws.push({ name, pid: 0, pool: undefined as unknown as Pool });
  const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] as number;
  for (const g of gws)
    console.log(
      `${g.name.padEnd(28)} CPU ${med(per[g.name] ?? []).toFixed(1)} µs/request (rounds: ${(per[g.name] ?? []).map((x) => x.toFixed(1)).join(", ")}); mean round trip ${med(lat[g.name] ?? []).toFixed(0)} µs; ${Object.entries(
        others[g.name] ?? {},
      )
        .map(([n, v]) => `${n} ${med(v).toFixed(0)}`)
        .join(", ")}`,
    );
  if (process.env.GWCPU_STRACE === "1")
    for (const g of gws.filter((x) => x.pid !== 0)) {
      const s = spawn("strace", ["-f", "-c", "-p", String(g.pid)], { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      s.stderr.on("data", (d: Buffer) => (err += d.toString()));
      await new Promise((r) => setTimeout(r, 1000));
      await drive(g.pool, N);
      s.kill("SIGINT");
      await new Promise((r) => s.once("exit", r));
      const rows = err
        .split("\n")
        .filter((l) => /^\s*\d/.test(l))
        .map((l) => l.trim().split(/\s+/))
        .map((c) => `${c[c.length - 1]} ${(Number(c[3]) / N).toFixed(2)}`);
      console.log(`${g.name}: syscalls per request: ${rows.slice(0, 12).join(", ")}`);
    }
  console.log(
    `load after: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  await Promise.all(gws.filter((g) => g.pid !== 0).map((g) => g.pool.close()));
} finally {
  for (const k of kids) k.kill("SIGTERM");
  await Promise.all(kids.map((k) => (k.exitCode !== null ? undefined : new Promise((r) => k.once("exit", r)))));
}
