/**
 * `npm run bench -- peers [--quick]`: fan against what users would pick instead, across
 * processes. Every rpc case runs its server and its client in two processes of their own
 * (bench/peers/worker.ts); every case answers the same `Pricing.quote` with the same handler.
 *
 * - rpc: warm-up, then rounds (≥ 3) in which every case runs at concurrency 1 and 64 for a
 *   fixed time, each run preceded by an untimed re-warm-up at the same concurrency (see below;
 *   pools that closed idle connections while other cases ran open them again: steady state is
 *   measured); the order of cases rotates each round. Each row is the case's median round;
 *   `ratio` = its ops/s ÷ the best non-fan peer's ops/s on the same medium, same concurrency.
 * - rss: 10,000 calls started at once; the client's RSS while they are in flight (peak).
 * - events: one publisher process, three subscribing services in another; events/s from the
 *   first publish until every service has received all of them (fan vs Moleculer `emit`).
 *
 * Peer frameworks live in bench/peers/package.json: `npm --prefix bench/peers install` once.
 * Brokers: FAN_REDIS_URL, FAN_AMQP_URL, FAN_NATS_URL, FAN_ETCD (defaults on 127.0.0.1);
 * a case whose broker does not answer is skipped with a line saying so.
 * `--only=a,b` keeps the cases whose name contains, or whose medium is, one of the words
 * (`--only=redis`, `--only=events,emit`).
 * Before measuring it waits (at most 60 s, 15 s with --quick) for the 1-minute load average
 * to fall below PEERS_MAX_LOAD (default: half the cores), and prints the load it ran under.
 * Each measured rpc run starts with a re-warm-up of 300 ms (100 ms with --quick; PEERS_REWARM_MS).
 */
import { existsSync } from "node:fs";
import { connect } from "node:net";
import { availableParallelism, loadavg } from "node:os";
import type { BenchRow } from "./lib.js";
import type { EventsCase, PeerCase, RpcCase } from "./peers/case.js";
import type { CaseModule } from "./peers/cases.js";
import { brokers, caseContext } from "./peers/context.js";
import { Proc } from "./peers/proc.js";

/** Which module defines each case (the worker loads only that one). */
const modules = new Map<PeerCase, CaseModule>();
/**
 * PEERS_BEFORE=<another checkout>: every fan case also runs from that checkout, as
 * "<case> (before)", in the same interleaved rounds (a before/after comparison on one machine
 * state). The checkout needs its own node_modules and bench/peers/node_modules.
 */
const before = process.env.PEERS_BEFORE;
const origin = new Map<PeerCase, string>();

const quick = process.argv.includes("--quick");
const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7);
const P = quick
  ? {
      rounds: 3,
      durationMs: 400,
      warmupMs: 200,
      events: 3000,
      eventRounds: 3,
      loadWaitMs: 15_000,
      budgetS: 150,
      rewarmMs: 100,
    }
  : {
      rounds: 3,
      durationMs: 2000,
      warmupMs: 1000,
      events: 20_000,
      eventRounds: 3,
      loadWaitMs: 60_000,
      budgetS: 420,
      rewarmMs: 300,
    };
/** Warm-up of a case before each of its measured runs, after it idled while the others ran (PEERS_REWARM_MS). */
const REWARM_MS = Number(process.env.PEERS_REWARM_MS ?? P.rewarmMs);
const CONCURRENCY = [1, 64] as const;
const INFLIGHT = 10_000;
/** How long the 10,000-call burst may take before its row is left out (a loaded machine). */
const RSS_WAIT_MS = 30_000;

const began = Date.now();
const log = (line: string): void => console.log(`peers +${Math.round((Date.now() - began) / 1000)}s: ${line}`);

/** What the run measured under, for the table's header and peers.json. */
export const meta: Record<string, unknown> = {};

/**
 * The results file: `peers` for a full run on Node 20, with `-{only}` for a partial run,
 * `-before` when PEERS_BEFORE adds an older checkout and `-node{major}` on another Node
 * (`peers-redis-before-node24.json`), so a partial or side-by-side run never replaces the full one.
 */
export function resultName(): string {
  const major = Number(process.versions.node.split(".")[0]);
  const part =
    only === undefined
      ? ""
      : `-${only
          .toLowerCase()
          .replace(/[^a-z0-9]+/g, "-")
          .replace(/^-|-$/g, "")}`;
  return `peers${part}${before === undefined ? "" : "-before"}${major === 20 ? "" : `-node${major}`}`;
}

function reachable(hostPort: string): Promise<boolean> {
  const u = new URL(hostPort.includes("://") ? hostPort : `tcp://${hostPort}`);
  return new Promise((resolve) => {
    const s = connect(Number(u.port), u.hostname);
    s.setTimeout(1000);
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.on("connect", () => done(true));
    s.on("error", () => done(false));
    s.on("timeout", () => done(false));
  });
}

async function waitForQuiet(): Promise<void> {
  const limit = Number(process.env.PEERS_MAX_LOAD ?? availableParallelism() / 2);
  const end = Date.now() + P.loadWaitMs;
  let load = loadavg()[0] as number;
  while (load > limit && Date.now() < end) {
    log(`load average ${load.toFixed(2)} > ${limit}; waiting (until ${Math.round((end - Date.now()) / 1000)} s more)`);
    await new Promise((r) => setTimeout(r, 5000));
    load = loadavg()[0] as number;
  }
  meta.loadLimit = limit;
  meta.loadAtStart = load;
  console.log(
    load > limit
      ? `peers: measuring under load average ${load.toFixed(2)} (above ${limit}: the machine did not quiet down in ${P.loadWaitMs / 1000} s)`
      : `peers: measuring under load average ${load.toFixed(2)} (≤ ${limit})`,
  );
}

function needs(c: PeerCase): string[] {
  const out: string[] = [];
  if (c.medium === "redis") out.push("redis");
  if (c.medium === "amqp") out.push("amqp");
  if (c.medium === "nats") out.push("nats");
  if (c.fan && c.medium !== "in-process") out.push("etcd");
  return out;
}

interface Running {
  readonly c: PeerCase;
  readonly module: CaseModule;
  readonly client: Proc;
  readonly server?: Proc;
}

async function start(c: PeerCase): Promise<Running> {
  const module = modules.get(c) as CaseModule;
  const ctx = await caseContext();
  let server: Proc | undefined;
  if (c.serve !== undefined) {
    server = new Proc(
      `${c.name} (server)`,
      "server",
      module,
      origin.get(c) ?? c.name,
      ctx,
      origin.has(c) ? before : undefined,
    );
    await server.next(["ready"], 60_000);
  }
  const client = new Proc(
    `${c.name} (client)`,
    "client",
    module,
    origin.get(c) ?? c.name,
    ctx,
    origin.has(c) ? before : undefined,
  );
  try {
    await client.next(["ready"], 60_000);
  } catch (e) {
    await server?.stop();
    throw e;
  }
  return { c, module, client, ...(server ? { server } : {}) };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[Math.floor(s.length / 2)] as number);
};

interface Sample {
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU time per call in the client process and in the server process, µs. */
  readonly clientCpuUs: number;
  readonly serverCpuUs: number;
}

/** Rotates `xs` by `r` and reverses every other round, so no case always runs first or after the same one. */
function order<T>(xs: readonly T[], r: number): T[] {
  const k = xs.length === 0 ? 0 : r % xs.length;
  const rotated = [...xs.slice(k), ...xs.slice(0, k)];
  return r % 2 === 1 ? rotated.reverse() : rotated;
}

/** Starts the cases, four at a time (process start-up is most of a quick run otherwise); those that fail are skipped with a line saying why. */
async function startAll(cases: readonly PeerCase[], then?: (r: Running) => Promise<unknown>): Promise<Running[]> {
  const slots: Array<Running | undefined> = new Array(cases.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let i = next++; i < cases.length; i = next++) {
      const c = cases[i] as PeerCase;
      let r: Running | undefined;
      try {
        r = await start(c);
        await then?.(r);
        slots[i] = r;
        log(`started ${c.name}`);
      } catch (e) {
        await Promise.all([r?.client.stop(), r?.server?.stop()]);
        log(`SKIPPED ${c.name}: ${(e as Error).message.split("\n")[0]}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, lane));
  return slots.filter((r): r is Running => r !== undefined);
}

async function rpcRows(cases: readonly RpcCase[]): Promise<BenchRow[]> {
  const running = await startAll(cases);
  const samples = new Map<string, Sample[]>();
  const loads: number[] = [];
  try {
    // Warm-up at both concurrencies: connections open, code compiled, pools grown.
    for (const r of running) {
      for (const concurrency of CONCURRENCY) {
        await r.client.ask({ cmd: "run", concurrency, durationMs: P.warmupMs }, "ran", P.warmupMs * 4 + 30_000);
      }
    }
    for (let round = 0; round < P.rounds; round++) {
      loads.push(loadavg()[0] as number);
      for (const r of order(running, round)) {
        for (const concurrency of round % 2 === 0 ? CONCURRENCY : [...CONCURRENCY].reverse()) {
          const cpu0 = r.server ? ((await r.server.ask({ cmd: "cpu" }, "cpu", 10_000)).us as number) : 0;
          const got = await r.client.ask(
            { cmd: "run", concurrency, durationMs: P.durationMs, warmupMs: REWARM_MS },
            "ran",
            P.durationMs * 4 + 30_000,
          );
          const cpu1 = r.server ? ((await r.server.ask({ cmd: "cpu" }, "cpu", 10_000)).us as number) : 0;
          const ops = got.ops as number;
          const sample: Sample = {
            opsPerSec: got.opsPerSec as number,
            p50Ms: got.p50Ms as number,
            p99Ms: got.p99Ms as number,
            clientCpuUs: (got.cpuUs as number) / ops,
            serverCpuUs: r.server ? (cpu1 - cpu0) / ops : Number.NaN,
          };
          const key = `${r.c.name}\0${concurrency}`;
          samples.set(key, [...(samples.get(key) ?? []), sample]);
        }
      }
      log(`rpc round ${round + 1}/${P.rounds} done (load ${(loadavg()[0] as number).toFixed(2)})`);
    }
    meta.rpcLoad = { min: Math.min(...loads), max: Math.max(...loads, loadavg()[0] as number) };
    const rows = rpcTable(running, samples);
    return [...rows, ...(await rssRows(running))];
  } finally {
    await Promise.all(running.flatMap((r) => [r.client.stop(), r.server?.stop()]));
  }
}

function rpcTable(running: readonly Running[], samples: Map<string, Sample[]>): BenchRow[] {
  const rows: BenchRow[] = [];
  const media = [...new Set(running.flatMap((r) => [r.c.medium, ...((r.c as RpcCase).alsoOn ?? [])]))];
  for (const medium of media) {
    const here = running.filter((r) => r.c.medium === medium || ((r.c as RpcCase).alsoOn ?? []).includes(medium));
    for (const concurrency of CONCURRENCY) {
      const med = here.map((r) => {
        const s = samples.get(`${r.c.name}\0${concurrency}`) ?? [];
        const ops = median(s.map((x) => x.opsPerSec));
        return {
          r,
          ops,
          p50: median(s.map((x) => x.p50Ms)),
          p99: median(s.map((x) => x.p99Ms)),
          cpuC: median(s.map((x) => x.clientCpuUs)),
          cpuS: median(s.map((x) => x.serverCpuUs)),
        };
      });
      const peers = med.filter((m) => !m.r.c.fan && !m.r.c.name.startsWith("direct"));
      const best = peers.reduce((a, b) => (b.ops > a.ops ? b : a), peers[0] ?? med[0]);
      const direct = med.find((m) => m.r.c.name.startsWith("direct"));
      for (const m of med) {
        const notes: string[] = [];
        if (best !== undefined && m !== best && !m.r.c.name.startsWith("direct")) notes.push(`vs ${best.r.c.name}`);
        if (best !== undefined && m.r.c.fan && best.p50 > 0) notes.push(`p50 ${(m.p50 / best.p50).toFixed(2)}x`);
        if (direct !== undefined && m !== direct) notes.push(`${(direct.ops / m.ops).toFixed(2)}x direct's time`);
        notes.push(
          Number.isNaN(m.cpuS)
            ? `cpu/call ${m.cpuC.toFixed(2)} µs`
            : `cpu/call client ${m.cpuC.toFixed(0)} µs, server ${m.cpuS.toFixed(0)} µs`,
        );
        rows.push({
          case: `${medium} c=${concurrency} ${m.r.c.name}`,
          opsPerSec: m.ops,
          p50Ms: m.p50,
          p99Ms: m.p99,
          ratio: best === undefined ? Number.NaN : m.ops / best.ops,
          note: notes.join("; "),
        });
      }
    }
  }
  return rows;
}

async function rssRows(running: readonly Running[]): Promise<BenchRow[]> {
  const got: Array<{
    r: Running;
    peakMb: number;
    beforeMb: number;
    ms: number;
    serverMb: number;
    failed: number;
    firstError: string;
  }> = [];
  for (const r of running) {
    if (r.c.name.startsWith("direct")) continue;
    let x: Record<string, unknown>;
    try {
      x = await r.client.ask({ cmd: "rss", n: INFLIGHT }, "rss", RSS_WAIT_MS);
    } catch (e) {
      // The worker is still busy with the burst; its later commands wait behind it, and it is stopped after this phase.
      log(`rss of ${r.c.name}: ${(e as Error).message.split("\n")[0]}`);
      continue;
    }
    const s = r.server ? await r.server.ask({ cmd: "rss" }, "rss", 10_000) : undefined;
    got.push({
      r,
      peakMb: x.peakMb as number,
      beforeMb: x.beforeMb as number,
      ms: x.ms as number,
      serverMb: (s?.peakMb as number | undefined) ?? Number.NaN,
      failed: x.failed as number,
      firstError: (x.firstError as string | undefined) ?? "",
    });
  }
  return got.map((g) => {
    const peers = got.filter((o) => o.r.c.medium === g.r.c.medium && !o.r.c.fan);
    const best = peers.reduce((a, b) => (b.peakMb < a.peakMb ? b : a), peers[0] ?? g);
    return {
      case: `rss ${INFLIGHT.toLocaleString("en-US")} in flight: ${g.r.c.name}`,
      opsPerSec: (INFLIGHT / g.ms) * 1000,
      p50Ms: Number.NaN,
      p99Ms: g.ms,
      ratio: best.peakMb / g.peakMb,
      note: `client RSS peak ${g.peakMb.toFixed(0)} MB (+${(g.peakMb - g.beforeMb).toFixed(0)}), server ${g.serverMb.toFixed(0)} MB${g.failed > 0 ? `; ${g.failed} calls FAILED (${g.firstError.slice(0, 60)})` : ""}; ratio = lowest peer peak ÷ this peak`,
    };
  });
}

async function eventsRows(cases: readonly EventsCase[]): Promise<BenchRow[]> {
  // Warm-up, which also proves every subscription is live before timing starts.
  const running = await startAll(cases, (r) => deliver(r, 200, 20_000));
  const rates = new Map<Running, number[]>();
  try {
    for (let round = 0; round < P.eventRounds; round++) {
      for (const r of order(running, round)) {
        let rate = Number.NaN;
        try {
          rate = await deliver(r, P.events, 60_000);
        } catch (e) {
          log(`${r.c.name}: ${(e as Error).message.split("\n")[0]}`);
        }
        rates.set(r, [...(rates.get(r) ?? []), rate]);
      }
    }
    const rows = running.map((r) => ({ r, rate: median(rates.get(r) ?? []) }));
    return rows.map(({ r, rate }) => {
      const peers = rows.filter((o) => o.r.c.medium === r.c.medium && !o.r.c.fan);
      const best = peers.reduce((a, b) => (b.rate > a.rate ? b : a), peers[0] ?? { r, rate });
      return {
        case: `events ${r.c.medium}: ${r.c.name}`,
        opsPerSec: rate,
        p50Ms: Number.NaN,
        p99Ms: Number.NaN,
        ratio: rate / best.rate,
        note: `${P.events.toLocaleString("en-US")} events to 3 services, events/s published and received by all`,
      };
    });
  } finally {
    await Promise.all(running.flatMap((r) => [r.client.stop(), r.server?.stop()]));
  }
}

/** Publishes `n` events and resolves with events/s once all three services received them. */
async function deliver(r: Running, n: number, ms: number): Promise<number> {
  const server = r.server as Proc;
  await server.ask({ cmd: "expect", n }, "expecting", 10_000);
  const pub = await r.client.ask({ cmd: "publish", n, window: 64 }, "published", ms);
  try {
    const got = await server.next(["received"], ms);
    return (n / ((got.at as number) - (pub.startedAt as number))) * 1000;
  } catch {
    const counts = await server.ask({ cmd: "counts" }, "counts", 5000);
    throw new Error(`not every event arrived in ${ms} ms: received ${JSON.stringify(counts.counts)} of ${n}`);
  }
}

export default async function peers(): Promise<BenchRow[]> {
  if (!existsSync(new URL("./peers/node_modules/moleculer/package.json", import.meta.url))) {
    throw new Error("bench/peers needs its own dependencies: run `npm --prefix bench/peers install` once");
  }
  const { allCases } = await import("./peers/cases.js");
  for (const { c, module } of await allCases()) {
    modules.set(c, module);
    if (before !== undefined && module === "fan") {
      const copy = { ...c, name: `${c.name} (before)` } as PeerCase;
      modules.set(copy, module);
      origin.set(copy, c.name);
    }
  }
  const rpcCases = [...modules.keys()].filter((c): c is RpcCase => c.kind === "rpc");
  const eventsCases = [...modules.keys()].filter((c): c is EventsCase => c.kind === "events");
  const up: Record<string, boolean> = {
    redis: await reachable(brokers.redisUrl),
    amqp: await reachable(brokers.amqpUrl),
    nats: await reachable(brokers.natsUrl),
    etcd: await reachable(brokers.etcd),
  };
  const pick = <T extends PeerCase>(cs: readonly T[]): T[] =>
    cs.filter((c) => {
      if (only !== undefined && !only.split(",").some((o) => c.name.includes(o) || c.medium === o)) return false;
      const missing = needs(c).filter((b) => !up[b]);
      if (missing.length > 0) log(`SKIPPED ${c.name}: ${missing.join(", ")} not answering`);
      return missing.length === 0;
    });
  Object.assign(meta, {
    command: `npm run bench -- peers${quick ? " --quick" : ""}`,
    node: process.version,
    moleculer: (await import("./peers/moleculer.js")).MOLECULER_VERSION,
    cores: availableParallelism(),
    rounds: P.rounds,
    durationMs: P.durationMs,
    rewarmMs: REWARM_MS,
  });
  log(
    `node ${process.version}, moleculer ${String(meta.moleculer)}, ${P.rounds} rounds of ${P.durationMs} ms per case and concurrency, each after ${REWARM_MS} ms of warm-up`,
  );
  await waitForQuiet();
  const t0 = Date.now();
  const rows = await rpcRows(pick(rpcCases));
  // A bound on the whole run: on a machine so loaded that rpc took the whole budget, events are skipped (and said so).
  if ((Date.now() - began) / 1000 > P.budgetS) {
    log(`SKIPPED the events cases: the run is past its ${P.budgetS} s budget (a loaded machine)`);
    meta.eventsSkipped = true;
  } else rows.push(...(await eventsRows(pick(eventsCases))));
  meta.loadAtEnd = loadavg()[0];
  meta.seconds = Math.round((Date.now() - t0) / 1000);
  log(
    `${meta.seconds} s; load average at start ${(meta.loadAtStart as number).toFixed(2)}, at end ${(meta.loadAtEnd as number).toFixed(2)}`,
  );
  return rows;
}
