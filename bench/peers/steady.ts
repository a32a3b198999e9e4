/**
 * One `bench/peers` case alone, at one concurrency, for a fixed time: what a profile, a syscall
 * count or a change of a constant needs, without the rest of the run around it.
 *
 *   npx tsx bench/peers/steady.ts <fan|moleculer|grpc> "<case name>" [concurrency=64] [ms=4000]
 *
 * Prints calls/s, p50 and p99, CPU µs per call of client and server (`process.cpuUsage`), and
 * the read and write syscalls and bytes written per call of each (`/proc/<pid>/io`, Linux) over the measured run,
 * and for a broker on this machine (nats-server, redis-server, RabbitMQ's beam.smp) its user and
 * system CPU, syscalls and context switches per call, and the three processes' CPU per call together.
 * The workers take `PEERS_NODE_ARGS` as in `bench/peers.ts` (`--cpu-prof --cpu-prof-dir=...`);
 * `STEADY_BEFORE=<concurrency>` runs 2 s at that concurrency before the measured run;
 * `STEADY_IDLE_MS=<ms>` leaves both workers idle that long, then re-warms them for
 * `STEADY_REWARM_MS` (default 300, as between the rounds of `bench/peers`).
 * Not a benchmark: one case, no rounds, no load check.
 */
import { readdirSync, readFileSync } from "node:fs";
import { type CaseModule, caseNamed } from "./cases.js";
import { caseContext } from "./context.js";
import { Proc } from "./proc.js";

const [module, name] = [process.argv[2], process.argv[3]];
if (module === undefined || name === undefined) {
  console.error('usage: npx tsx bench/peers/steady.ts <fan|moleculer|grpc> "<case name>" [concurrency] [ms]');
  process.exit(2);
}
const concurrency = Number(process.argv[4] ?? 64);
const ms = Number(process.argv[5] ?? 4000);

interface Syscalls {
  readonly r: number;
  readonly w: number;
  /** Bytes written (`wchar`). */
  readonly wb: number;
}

/** Read and write syscalls of `pid` so far; NaN where `/proc` is not readable. */
function syscalls(pid: number | undefined): Syscalls {
  try {
    const io = readFileSync(`/proc/${pid}/io`, "utf8");
    const field = (k: string): number => Number(new RegExp(`^${k}: (\\d+)`, "m").exec(io)?.[1] ?? Number.NaN);
    return { r: field("syscr"), w: field("syscw"), wb: field("wchar") };
  } catch {
    return { r: Number.NaN, w: Number.NaN, wb: Number.NaN };
  }
}

/** `/proc/<pid>/stat` counts CPU time in clock ticks: 100 a second on Linux (USER_HZ). */
const TICKS_PER_S = 100;

/** The broker's process name per medium (its CPU and syscalls per call are counted too). */
const BROKERS: Record<string, string> = { nats: "nats-server", redis: "redis-server", amqp: "beam.smp" };

/** A process's CPU (user, system, in clock ticks), read and write syscalls and context switches (all threads). */
interface ProcCounts {
  readonly user: number;
  readonly sys: number;
  readonly r: number;
  readonly w: number;
  readonly cs: number;
}

/** The pids of processes named `comm` on this machine (Linux `/proc`). */
function pidsNamed(comm: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/comm`, "utf8").trim() === comm) pids.push(Number(e));
    } catch {
      // gone
    }
  }
  return pids;
}

/** `ProcCounts` summed over `pids`; undefined where `/proc` is not readable. */
function counts(pids: readonly number[]): ProcCounts | undefined {
  try {
    let user = 0;
    let sys = 0;
    let cs = 0;
    let r = 0;
    let w = 0;
    for (const pid of pids) {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
      user += Number(f[11]);
      sys += Number(f[12]);
      const io = syscalls(pid);
      r += io.r;
      w += io.w;
      for (const t of readdirSync(`/proc/${pid}/task`)) {
        const st = readFileSync(`/proc/${pid}/task/${t}/status`, "utf8");
        for (const m of st.matchAll(/ctxt_switches:\s+(\d+)/g)) cs += Number(m[1]);
      }
    }
    return Number.isNaN(user + sys + r + w) ? undefined : { user, sys, r, w, cs };
  } catch {
    return undefined;
  }
}

const ctx = await caseContext();
const c = await caseNamed(module as CaseModule, name);
if (c.kind !== "rpc") {
  console.error(`steady.ts runs rpc cases; "${name}" is an events case`);
  process.exit(2);
}
// A batched case (in-process) times one more pass after the measured one: its syscalls are not per call.
const clientSyscalls = (c.batch ?? 1) === 1;
// An in-process case has no server side.
const server = c.serve === undefined ? undefined : new Proc(`${name} (server)`, "server", module, name, ctx);
try {
  await server?.next(["ready"], 60_000);
} catch (e) {
  await server?.stop();
  throw e;
}
const client = new Proc(`${name} (client)`, "client", module, name, ctx);
try {
  await client.next(["ready"], 60_000);
  await client.ask({ cmd: "run", concurrency, durationMs: 1000 }, "ran", 60_000);
  const before = Number(process.env.STEADY_BEFORE ?? 0);
  if (before > 0) await client.ask({ cmd: "run", concurrency: before, durationMs: 2000 }, "ran", 60_000);
  const idle = Number(process.env.STEADY_IDLE_MS ?? 0);
  if (idle > 0) {
    // Both workers idle, then a re-warm-up (by default the 300 ms a round of bench/peers gives a case).
    await new Promise((r) => setTimeout(r, idle));
    await client.ask(
      { cmd: "run", concurrency, durationMs: Number(process.env.STEADY_REWARM_MS ?? 300) },
      "ran",
      60_000,
    );
  }
  // No broker line for a medium without one, when its process is not on this machine, or when
  // its `/proc` counters cannot be read.
  const broker = BROKERS[c.medium];
  const brokerPids = broker === undefined ? [] : pidsNamed(broker);
  const b0 = brokerPids.length > 0 ? counts(brokerPids) : undefined;
  const cpu0 = server ? ((await server.ask({ cmd: "cpu" }, "cpu", 10_000)).us as number) : 0;
  const c0 = syscalls(client.pid);
  const s0 = server ? syscalls(server.pid) : undefined;
  const r = await client.ask({ cmd: "run", concurrency, durationMs: ms }, "ran", ms * 4 + 30_000);
  const c1 = syscalls(client.pid);
  const s1 = server ? syscalls(server.pid) : undefined;
  const cpu1 = server ? ((await server.ask({ cmd: "cpu" }, "cpu", 10_000)).us as number) : 0;
  const b1 = brokerPids.length > 0 ? counts(brokerPids) : undefined;
  const ops = r.ops as number;
  const per = (a: Syscalls, b: Syscalls): string =>
    `${((b.r - a.r) / ops).toFixed(3)} reads, ${((b.w - a.w) / ops).toFixed(3)} writes, ${Math.round((b.wb - a.wb) / ops)} bytes written`;
  console.log(
    `${name} c=${concurrency} ${process.version}: ${Math.round(r.opsPerSec as number)} calls/s, ` +
      `p50 ${(r.p50Ms as number).toFixed(3)} ms, p99 ${(r.p99Ms as number).toFixed(3)} ms; ` +
      `CPU per call client ${((r.cpuUs as number) / ops).toFixed(1)} µs` +
      (server ? `, server ${((cpu1 - cpu0) / ops).toFixed(1)} µs` : "") +
      (clientSyscalls ? `; syscalls per call client ${per(c0, c1)}` : "") +
      (s0 && s1 ? `; syscalls per call server ${per(s0, s1)}` : ""),
  );
  if (b0 !== undefined && b1 !== undefined) {
    // Clock ticks to µs per call.
    const user = ((b1.user - b0.user) * 1e6) / TICKS_PER_S / ops;
    const sys = ((b1.sys - b0.sys) * 1e6) / TICKS_PER_S / ops;
    const clientUs = (r.cpuUs as number) / ops;
    const serverUs = server ? (cpu1 - cpu0) / ops : 0;
    console.log(
      `  ${broker} (${brokerPids.length} process${brokerPids.length === 1 ? "" : "es"}) per call: ` +
        `CPU user ${user.toFixed(1)} µs, system ${sys.toFixed(1)} µs; ` +
        `${((b1.r - b0.r) / ops).toFixed(3)} reads, ${((b1.w - b0.w) / ops).toFixed(3)} writes, ` +
        `${((b1.cs - b0.cs) / ops).toFixed(3)} context switches; ` +
        `client + server + broker ${(clientUs + serverUs + user + sys).toFixed(1)} µs of CPU per call`,
    );
  }
} finally {
  await client.stop();
  await server?.stop();
}
