/**
 * `npm run bench -- discovery`:
 * 1. resolving an instance from the client cache (target < 1 µs, no I/O): sync `pick` by
 *    strategy and the async `resolve`, timed in batches; a counting registry proves 0 calls;
 * 2. registration → visible in ANOTHER process's cache, on etcd (a child process watches);
 * 3. registry load: 100 clients watching 1,000 instances (100 services × 10), measured from
 *    etcd's own gRPC counters (`/metrics`) at start-up, at rest and under churn.
 * etcd parts run on a private etcd (own ports, temp data dir) so nobody else's traffic counts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { RegistryDirectory } from "../src/runtime/discovery/directory.js";
import { EtcdRegistry } from "../src/runtime/discovery/etcd.js";
import { createDiscovery } from "../src/runtime/discovery/index.js";
import { MemoryRegistry } from "../src/runtime/discovery/memory.js";
import type { Registry } from "../src/runtime/discovery/registry.js";
import type { StrategyName } from "../src/runtime/discovery/types.js";
import type { BenchRow } from "./lib.js";

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ----------------------------------------------------------------------------- child process

/** The child: watches `bench.Visible` and prints `seen <id> <epoch ms>` for each new instance. */
async function childMain(endpoint: string, cluster: string): Promise<void> {
  const d = createDiscovery(`etcd://${endpoint}`, { cluster });
  const set = await d.directory.watch("bench.Visible");
  const seen = new Set<string>();
  set.onChange(() => {
    const t = now();
    for (const i of set.instances()) {
      if (!seen.has(i.instanceId)) {
        seen.add(i.instanceId);
        process.stdout.write(`seen ${i.instanceId} ${t}\n`);
      }
    }
  });
  process.stdout.write("ready\n");
  process.stdin.resume();
  process.stdin.on("end", () => void d.close().then(() => process.exit(0)));
}

if (process.env.FAN_BENCH_CHILD === "watch")
  await childMain(process.env.FAN_BENCH_ETCD!, process.env.FAN_BENCH_CLUSTER!);

// ----------------------------------------------------------------------------- 1. cache resolve

/** A registry that counts every call, to show a pick does no I/O. */
function counting(inner: Registry): Registry & { calls: number } {
  const c = { calls: 0 } as Registry & { calls: number };
  for (const m of ["get", "put", "delete", "list", "watch", "grantLease", "close"] as const) {
    (c as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => {
      c.calls++;
      return (inner[m] as (...x: unknown[]) => unknown).apply(inner, a);
    };
  }
  return c;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Times `op` in batches; returns per-op ns quantiles over batches. */
async function perOp(op: () => unknown, batch = 20_000, batches = 40): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < batch * 5; i++) op();
  const per: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) op();
    per.push(((performance.now() - t0) * 1e6) / batch);
    await sleep(0);
  }
  per.sort((a, b) => a - b);
  return { p50: quantile(per, 0.5), p99: quantile(per, 0.99) };
}

async function resolveBench(): Promise<BenchRow[]> {
  const reg = counting(new MemoryRegistry());
  const server = new RegistryDirectory(reg, { cluster: "bench", appId: "srv" });
  const client = new RegistryDirectory(reg, { cluster: "bench", appId: "cli" });
  for (let i = 0; i < 10; i++) {
    await server.register({
      service: "bench.Svc",
      instanceId: `i${i}`,
      version: i < 5 ? "1.4.0" : "2.0.0",
      endpoints: { http: `http://h${i}` },
      shards: [],
      appId: i === 3 ? "cli" : "srv",
    });
  }
  await client.watch("bench.Svc");
  await sleep(10);
  const callsBefore = reg.calls;
  const rows: BenchRow[] = [];
  const strategies: StrategyName[] = ["round-robin", "random", "p2c", "prefer-local", "shard"];
  for (const strategy of strategies) {
    const opts = { range: "^1.2", strategy, shardKey: "store-42" };
    const t = await perOp(() => client.pick("bench.Svc", opts));
    rows.push(row(`pick ${strategy} (10 instances, range ^1.2)`, t, "target < 1 µs"));
  }
  const resolveOpts = { range: "^1.2" };
  const asyncT = await perOpAsync(() => client.resolve("bench.Svc", resolveOpts));
  rows.push(row("resolve (async, round-robin)", asyncT, "includes one await"));
  const calls = reg.calls - callsBefore;
  rows.push({
    case: "registry calls during all picks above",
    opsPerSec: calls,
    p50Ms: Number.NaN,
    p99Ms: Number.NaN,
    ratio: 1,
    note: "0 = no I/O on resolve",
  });
  await server.close();
  await client.close();
  return rows;
}

async function perOpAsync(
  op: () => Promise<unknown>,
  batch = 20_000,
  batches = 20,
): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < batch; i++) await op();
  const per: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) await op();
    per.push(((performance.now() - t0) * 1e6) / batch);
  }
  per.sort((a, b) => a - b);
  return { p50: quantile(per, 0.5), p99: quantile(per, 0.99) };
}

function row(name: string, ns: { p50: number; p99: number }, note: string): BenchRow {
  return {
    case: name,
    opsPerSec: 1e9 / ns.p50,
    p50Ms: ns.p50 / 1e6,
    p99Ms: ns.p99 / 1e6,
    ratio: 1,
    note: `${note}; p50 ${ns.p50.toFixed(0)} ns/op`,
  };
}

// ----------------------------------------------------------------------------- private etcd

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

async function startEtcd(): Promise<{ endpoint: string; port: number; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "fan-bench-etcd-"));
  const port = 24790 + Math.floor(Math.random() * 100);
  const url = (p: number): string => `http://127.0.0.1:${p}`;
  const proc = spawn(
    "/usr/bin/etcd",
    [
      "--name",
      "bench",
      "--data-dir",
      join(dir, "d"),
      "--listen-client-urls",
      url(port),
      "--advertise-client-urls",
      url(port),
      "--listen-peer-urls",
      url(port + 1000),
      "--initial-advertise-peer-urls",
      url(port + 1000),
      "--initial-cluster",
      `bench=${url(port + 1000)}`,
    ],
    { stdio: "ignore" },
  );
  for (let i = 0; i < 100 && !(await portOpen(port)); i++) await sleep(100);
  if (!(await portOpen(port))) throw new Error("bench: private etcd did not start");
  return {
    endpoint: `127.0.0.1:${port}`,
    port,
    stop: async () => {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Sums etcd's gRPC counters: unary calls handled, stream messages received and sent. */
async function etcdCounters(port: number): Promise<{ unary: number; streamIn: number; streamOut: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sum = (re: RegExp): number =>
    text
      .split("\n")
      .filter((l) => re.test(l))
      .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
  return {
    unary: sum(/^grpc_server_handled_total\{.*grpc_type="unary"/),
    streamIn: sum(/^grpc_server_msg_received_total\{.*grpc_type="bidi_stream"/),
    streamOut: sum(/^grpc_server_msg_sent_total\{.*grpc_type="bidi_stream"/),
  };
}

// ----------------------------------------------------------------------------- 2. visibility

async function visibilityBench(endpoint: string): Promise<BenchRow> {
  const cluster = `vis${Date.now().toString(36)}`;
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url)], {
    env: { ...process.env, FAN_BENCH_CHILD: "watch", FAN_BENCH_ETCD: endpoint, FAN_BENCH_CLUSTER: cluster },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const waiters = new Map<string, (t: number) => void>();
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line === "ready") return ready();
    const [, id, t] = line.split(" ");
    waiters.get(id!)?.(Number(t));
  });
  await isReady;
  const reg = new EtcdRegistry(endpoint);
  const dir = new RegistryDirectory(reg, { cluster });
  const lat: number[] = [];
  for (let i = 0; i < 60; i++) {
    const id = `v${i}`;
    const seen = new Promise<number>((r) => waiters.set(id, r));
    const t0 = now();
    await dir.register({
      service: "bench.Visible",
      instanceId: id,
      version: "1.0.0",
      endpoints: { http: "http://h" },
      shards: [],
      appId: "bench",
    });
    lat.push((await seen) - t0);
    await sleep(20);
  }
  child.stdin!.end();
  await dir.close();
  await reg.close();
  lat.splice(0, 10); // warm-up
  lat.sort((a, b) => a - b);
  const p50 = quantile(lat, 0.5);
  return {
    case: "registration → visible in another process (etcd)",
    opsPerSec: 1000 / p50,
    p50Ms: p50,
    p99Ms: quantile(lat, 0.99),
    ratio: 1,
    note: "register() call to the watcher's onChange, 50 samples",
  };
}

// ----------------------------------------------------------------------------- 3. registry load

async function loadBench(endpoint: string, port: number): Promise<BenchRow[]> {
  const cluster = `load${Date.now().toString(36)}`;
  const SERVICES = 100;
  const PER = 10;
  const CLIENTS = 100;
  const names = Array.from({ length: SERVICES }, (_, s) => `bench.L${s}`);
  const serverReg = new EtcdRegistry(endpoint);
  const server = new RegistryDirectory(serverReg, { cluster, leaseTtlMs: 5000 });
  const regs = [];
  for (const service of names)
    for (let i = 0; i < PER; i++)
      regs.push(
        await server.register({
          service,
          instanceId: `i${i}`,
          version: "1.0.0",
          endpoints: { http: "http://h" },
          shards: [],
          appId: "srv",
        }),
      );

  const c0 = await etcdCounters(port);
  const t0 = performance.now();
  const clients = Array.from({ length: CLIENTS }, () => {
    const r = new EtcdRegistry(endpoint);
    return { r, d: new RegistryDirectory(r, { cluster }) };
  });
  await Promise.all(
    clients.map(async ({ d }) => {
      for (const n of names) await d.watch(n);
    }),
  );
  const startMs = performance.now() - t0;
  const c1 = await etcdCounters(port);

  const idleMs = 10_000;
  await sleep(idleMs);
  const c2 = await etcdCounters(port);

  const churnMs = 10_000;
  const tEnd = performance.now() + churnMs;
  let updates = 0;
  while (performance.now() < tEnd) {
    await regs[updates % regs.length]!.update({ load: updates });
    updates++;
    await sleep(100);
  }
  const c3 = await etcdCounters(port);
  const consistent = clients.every(({ d }) => names.every((n) => d.pick(n) !== undefined));

  await Promise.all(
    clients.map(async ({ d, r }) => {
      await d.close();
      await r.close();
    }),
  );
  await server.close();
  await serverReg.close();

  const rate = (a: number, b: number, ms: number): number => ((b - a) * 1000) / ms;
  const reqs = (a: typeof c0, b: typeof c0): number => b.unary - a.unary + (b.streamIn - a.streamIn);
  const nan = Number.NaN;
  return [
    {
      case: `start-up: ${CLIENTS} clients × ${SERVICES} services (${SERVICES * PER} instances) listed + watched`,
      opsPerSec: rate(0, reqs(c0, c1), startMs),
      p50Ms: startMs,
      p99Ms: nan,
      ratio: 1,
      note: `${reqs(c0, c1)} requests in ${(startMs / 1000).toFixed(1)} s (p50 column: total ms)`,
    },
    {
      case: "at rest: requests/s to etcd",
      opsPerSec: rate(0, reqs(c1, c2), idleMs),
      p50Ms: nan,
      p99Ms: nan,
      ratio: 1,
      note: "lease keep-alives only; watches cost nothing at rest",
    },
    {
      case: `churn: ${(updates / (churnMs / 1000)).toFixed(0)} instance updates/s, requests/s to etcd`,
      opsPerSec: rate(0, reqs(c2, c3), churnMs),
      p50Ms: nan,
      p99Ms: nan,
      ratio: 1,
      note: `watch events pushed/s: ${rate(c2.streamOut, c3.streamOut, churnMs).toFixed(0)}; caches consistent: ${consistent}`,
    },
  ];
}

/** The benchmark. */
export default async function discoveryBench(): Promise<BenchRow[]> {
  const rows = await resolveBench();
  const etcd = await startEtcd();
  try {
    rows.push(await visibilityBench(etcd.endpoint));
    rows.push(...(await loadBench(etcd.endpoint, etcd.port)));
  } finally {
    await etcd.stop();
  }
  return rows;
}
