/**
 * One `bench/peers` case alone, at one concurrency, for a fixed time: what a profile, a syscall
 * count or a change of a constant needs, without the rest of the run around it.
 *
 *   npx tsx bench/peers/steady.ts <fan|moleculer|grpc> "<case name>" [concurrency=64] [ms=4000]
 *
 * Prints calls/s, p50 and p99, CPU µs per call of client and server (`process.cpuUsage`), and
 * the read and write syscalls per call of each (`/proc/<pid>/io`, Linux) over the measured run.
 * The workers take `PEERS_NODE_ARGS` as in `bench/peers.ts` (`--cpu-prof --cpu-prof-dir=...`);
 * `STEADY_BEFORE=<concurrency>` runs 2 s at that concurrency before the measured run;
 * `STEADY_IDLE_MS=<ms>` leaves both workers idle that long, then re-warms them for
 * `STEADY_REWARM_MS` (default 300, as between the rounds of `bench/peers`).
 * Not a benchmark: one case, no rounds, no load check.
 */
import { readFileSync } from "node:fs";
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
}

/** Read and write syscalls of `pid` so far; NaN where `/proc` is not readable. */
function syscalls(pid: number | undefined): Syscalls {
  try {
    const io = readFileSync(`/proc/${pid}/io`, "utf8");
    const field = (k: string): number => Number(new RegExp(`^${k}: (\\d+)`, "m").exec(io)?.[1] ?? Number.NaN);
    return { r: field("syscr"), w: field("syscw") };
  } catch {
    return { r: Number.NaN, w: Number.NaN };
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
  const cpu0 = server ? ((await server.ask({ cmd: "cpu" }, "cpu", 10_000)).us as number) : 0;
  const c0 = syscalls(client.pid);
  const s0 = server ? syscalls(server.pid) : undefined;
  const r = await client.ask({ cmd: "run", concurrency, durationMs: ms }, "ran", ms * 4 + 30_000);
  const c1 = syscalls(client.pid);
  const s1 = server ? syscalls(server.pid) : undefined;
  const cpu1 = server ? ((await server.ask({ cmd: "cpu" }, "cpu", 10_000)).us as number) : 0;
  const ops = r.ops as number;
  const per = (a: Syscalls, b: Syscalls): string =>
    `${((b.r - a.r) / ops).toFixed(3)} reads, ${((b.w - a.w) / ops).toFixed(3)} writes`;
  console.log(
    `${name} c=${concurrency} ${process.version}: ${Math.round(r.opsPerSec as number)} calls/s, ` +
      `p50 ${(r.p50Ms as number).toFixed(3)} ms, p99 ${(r.p99Ms as number).toFixed(3)} ms; ` +
      `CPU per call client ${((r.cpuUs as number) / ops).toFixed(1)} µs` +
      (server ? `, server ${((cpu1 - cpu0) / ops).toFixed(1)} µs` : "") +
      (clientSyscalls ? `; syscalls per call client ${per(c0, c1)}` : "") +
      (s0 && s1 ? `; syscalls per call server ${per(s0, s1)}` : ""),
  );
} finally {
  await client.stop();
  await server?.stop();
}
