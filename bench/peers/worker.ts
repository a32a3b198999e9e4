/**
 * One side of one `bench/peers` case in a process of its own:
 * `node --import tsx bench/peers/worker.ts server|client MODULE CASE` with the case context as JSON
 * in PEERS_CTX. It prints `{"event":"ready"}` when set up, then answers one JSON line per
 * command read from stdin (see `bench/peers.ts` for the commands).
 */
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import type { CaseContext, ClientSide, EventsServerSide, PublisherSide } from "./case.js";
import { type CaseModule, caseNamed } from "./cases.js";

const [role, module, name] = process.argv.slice(2) as [string, CaseModule, string];
const ctx = JSON.parse(process.env.PEERS_CTX ?? "{}") as CaseContext;
const say = (o: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
const now = (): number => performance.timeOrigin + performance.now();
const mb = (): number => process.memoryUsage().rss / 2 ** 20;

const c = await caseNamed(module, name);
let side: { close(): Promise<void> };
try {
  if (role === "server") {
    if (c.serve === undefined) throw new Error(`case "${name}" has no server side`);
    side = await c.serve(ctx);
  } else {
    side = await c.client(ctx);
  }
} catch (e) {
  say({ event: "failed", message: (e as Error).stack ?? String(e) });
  process.exit(3);
}
say({ event: "ready", rssMb: mb() });

interface Command {
  readonly cmd: "run" | "rss" | "cpu" | "expect" | "counts" | "publish" | "close";
  readonly concurrency?: number;
  readonly durationMs?: number;
  readonly warmupMs?: number;
  readonly n?: number;
  readonly window?: number;
}

const quantile = (sorted: Float64Array, q: number): number =>
  sorted.length === 0 ? Number.NaN : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number);

/**
 * A closed loop of `concurrency` workers for `durationMs`. Remote cases time each call;
 * in-process cases (`batch` > 1) time batches of `batch` sequential calls per worker (the
 * ~100 ns of two clock reads would otherwise be part of every figure) for ops/s and p50,
 * then run a shorter pass timing single calls for the p99 tail.
 */
async function run(
  op: () => Promise<unknown>,
  concurrency: number,
  durationMs: number,
  batch: number,
): Promise<{ opsPerSec: number; p50Ms: number; p99Ms: number; ops: number; cpuUs: number }> {
  const cpu0 = process.cpuUsage();
  const samples: number[] = [];
  let ops = 0;
  const end = performance.now() + durationMs;
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const t0 = performance.now();
      for (let i = 0; i < batch; i++) await op();
      samples.push((performance.now() - t0) / batch);
      ops += batch;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  const sorted = Float64Array.from(samples).sort();
  let p99 = quantile(sorted, 0.99);
  if (batch > 1) {
    const single = await run(op, concurrency, durationMs / 3, 1);
    p99 = single.p99Ms;
  }
  return { opsPerSec: (ops / elapsed) * 1000, p50Ms: quantile(sorted, 0.5), p99Ms: p99, ops, cpuUs: cpu.user + cpu.system };
}

/** `inflight` calls started at once; RSS sampled while they are pending and after. */
async function rss(op: () => Promise<unknown>, inflight: number) {
  (globalThis as { gc?: () => void }).gc?.();
  const before = mb();
  const t0 = performance.now();
  const calls: Promise<unknown>[] = [];
  for (let i = 0; i < inflight; i++) calls.push(op());
  const pending = mb();
  let peak = pending;
  const sampler = setInterval(() => (peak = Math.max(peak, mb())), 5);
  const results = await Promise.allSettled(calls);
  clearInterval(sampler);
  const ms = performance.now() - t0;
  peak = Math.max(peak, mb());
  const failed = results.filter((r) => r.status === "rejected");
  return {
    beforeMb: before,
    pendingMb: pending,
    peakMb: peak,
    ms,
    failed: failed.length,
    firstError: failed.length > 0 ? String((failed[0] as PromiseRejectedResult).reason) : undefined,
  };
}

/** Publishes ticks 1..n with at most `window` publishes pending. */
async function publish(p: PublisherSide["publish"], n: number, window: number) {
  const startedAt = now();
  let next = 1;
  const lane = async (): Promise<void> => {
    while (next <= n) await p(next++);
  };
  await Promise.all(Array.from({ length: window }, lane));
  return { startedAt, publishedAt: now() };
}

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as Command;
  try {
    switch (cmd.cmd) {
      case "run":
        if (c.kind !== "rpc") throw new Error("run: not an rpc case");
        // Untimed first: connections a pool closed while other cases ran are opened again.
        if ((cmd.warmupMs ?? 0) > 0) await run((side as ClientSide).op, cmd.concurrency ?? 1, cmd.warmupMs ?? 0, c.batch ?? 1);
        say({ event: "ran", ...(await run((side as ClientSide).op, cmd.concurrency ?? 1, cmd.durationMs ?? 1000, c.batch ?? 1)) });
        break;
      case "rss":
        say({ event: "rss", ...(role === "client" ? await rss((side as ClientSide).op, cmd.n ?? 10_000) : { peakMb: mb() }) });
        break;
      case "expect": {
        const s = side as EventsServerSide;
        s.expect(cmd.n ?? 0, () => say({ event: "received", at: now(), counts: s.received() }));
        say({ event: "expecting" });
        break;
      }
      case "cpu": {
        const u = process.cpuUsage();
        say({ event: "cpu", us: u.user + u.system });
        break;
      }
      case "counts":
        say({ event: "counts", counts: (side as EventsServerSide).received() });
        break;
      case "publish":
        say({ event: "published", ...(await publish((side as PublisherSide).publish, cmd.n ?? 0, cmd.window ?? 64)) });
        break;
      case "close":
        await side.close();
        say({ event: "closed" });
        process.exit(0);
    }
  } catch (e) {
    say({ event: "error", message: (e as Error).stack ?? String(e) });
  }
}
// stdin ended: the orchestrator is gone. Close, but never outlive it by more than 5 s.
setTimeout(() => process.exit(0), 5000).unref();
await side.close();
process.exit(0);
