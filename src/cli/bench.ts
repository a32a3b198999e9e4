/**
 * `fanc bench <service>.<method> '<json>'`: load on one method of a running service, through
 * the same plumbing as `fanc call` (the IDL checks the arguments, discovery picks the instance
 * and transport). Closed loop by default (`--concurrency` callers, each sending its next call
 * when the last one answered) or open loop with `--rate` (calls started at that rate, at most
 * `--concurrency` in flight). Prints throughput and latency percentiles at the end, a live
 * progress line while it runs when stdout is a terminal, or one JSON object with `--json`.
 */
import { DURATION_UNIT_MS } from "../util/duration.js";
import { parseArgs } from "node:util";
import { Code, FanError } from "../runtime/errors.js";
import { BenchStats, formatReport } from "./bench-stats.js";
import {
  CALL_OPTIONS,
  type Connected,
  connect,
  envelope,
  errorOf,
  type PreparedCall,
  prepareCall,
  transmit,
} from "./call.js";
import { type Io, processIo } from "./io.js";
import { cliDiscovery, report, UsageError } from "./ls.js";
import { TLS_USAGE } from "./tls.js";

const USAGE = `usage: fanc bench <service>.<method> ['<json arguments>'] [options]

Sends the same call (rpc or push) again and again and prints throughput and latency
percentiles (p50, p90, p99, max). Every option of fanc call applies (--idl, --via, --version,
--instance, --timeout, --auth, --header, --discovery, --cluster).

options:
  --concurrency <n>    callers in parallel; with --rate, the most calls in flight (default 10)
  --duration <time>    how long to run: 5s, 500ms, 1m (default 5s)
  --rate <n>           start n calls per second (open loop) instead of as fast as answers come
  --json               print one JSON object (calls, ok, errors by code, throughput, latencyMs)
${TLS_USAGE}
  -h, --help           show this help

Exit status: 0 when at least one call succeeded, 1 when none did, 2 on a usage error.`;

/** `5s`, `500ms`, `1m`, or a number of ms. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (m === null) throw new UsageError(`--duration must look like 5s, 500ms or 1m, got ${JSON.stringify(text)}`);
  const out = Number(m[1]) * (DURATION_UNIT_MS[m[2] ?? "ms"] as number);
  if (!(out > 0)) throw new UsageError("--duration must be positive");
  return out;
}

function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0)
    throw new UsageError(`--${name} must be a positive whole number, got ${JSON.stringify(text)}`);
  return n;
}

/** Sends one call and records it. */
async function once(p: PreparedCall, c: Connected, stats: BenchStats): Promise<void> {
  const kind = p.method.kind === "push" ? "push" : "call";
  const { env, deadline } = envelope(p, kind);
  const t0 = performance.now();
  try {
    const reply = await transmit(c, kind, env, { signal: AbortSignal.timeout(p.timeoutMs), deadline });
    const ms = performance.now() - t0;
    if (reply?.kind === "error") stats.record(ms, errorOf(reply.payload, p.service));
    else stats.record(ms);
  } catch (e) {
    const err =
      Date.now() >= deadline
        ? new FanError(Code.DEADLINE_EXCEEDED, `no reply within ${p.timeoutMs} ms`)
        : FanError.from(e, Code.UNAVAILABLE);
    stats.record(performance.now() - t0, { code: err.code, message: err.message });
  }
}

/** `fanc bench ...`: returns the exit code. */
export async function run(args: string[], io: Io = processIo): Promise<number> {
  let discovery: string | undefined;
  let connected: Connected | undefined;
  let progress: NodeJS.Timeout | undefined;
  try {
    const { values, positionals } = parseArgs({
      args,
      options: {
        ...CALL_OPTIONS,
        concurrency: { type: "string" },
        duration: { type: "string" },
        rate: { type: "string" },
      },
      allowPositionals: true,
    });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    const [target, argText = "{}", ...rest] = positionals;
    if (target === undefined || rest.length > 0)
      throw new UsageError(`expected <service>.<method> and at most one JSON argument\n${USAGE}`);
    const concurrency = positiveInt("concurrency", values.concurrency, 10);
    const rate = values.rate === undefined ? undefined : positiveInt("rate", values.rate, 1);
    const durationMs = parseDuration(values.duration ?? "5s");
    discovery = cliDiscovery(values.discovery);
    const p = await prepareCall(values, target, argText, undefined);
    const c = await connect(p, values.instance, io);
    if ("why" in c) {
      io.err(`fanc bench: ${c.why}`);
      return 1;
    }
    connected = c;
    const stats = new BenchStats();
    const live = process.stdout.isTTY === true && !values.json;
    const t0 = performance.now();
    const end = t0 + durationMs;
    if (live) {
      let last = 0;
      progress = setInterval(() => {
        const secs = (performance.now() - t0) / 1000;
        const recent = stats.calls - last;
        last = stats.calls;
        const errs = stats.calls - stats.ok;
        process.stdout.write(
          `\r\x1b[K  ${secs.toFixed(0)}s · ${stats.calls} calls · ${recent}/s · p50 ${stats.quantile(0.5).toFixed(2)} ms · p99 ${stats.quantile(0.99).toFixed(2)} ms${errs > 0 ? ` · ${errs} errors` : ""}`,
        );
      }, 1000);
    }
    if (rate === undefined) {
      const worker = async (): Promise<void> => {
        while (performance.now() < end) await once(p, c, stats);
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
    } else {
      let started = 0;
      let inFlight = 0;
      const pending = new Set<Promise<void>>();
      while (performance.now() < end) {
        const due = Math.floor(((performance.now() - t0) * rate) / 1000) - started;
        for (let i = 0; i < due; i++) {
          started++;
          if (inFlight >= concurrency) {
            stats.shed++;
            continue;
          }
          inFlight++;
          const call = once(p, c, stats).finally(() => {
            inFlight--;
            pending.delete(call);
          });
          pending.add(call);
        }
        await new Promise((r) => setTimeout(r, Math.max(1, Math.min(10, 1000 / rate))));
      }
      await Promise.all(pending);
    }
    const elapsed = performance.now() - t0;
    clearInterval(progress);
    if (live) process.stdout.write("\r\x1b[K");
    const r = stats.summary(
      {
        service: p.service.name,
        method: p.method.name,
        transport: c.transport,
        instance: c.instance.instanceId,
        concurrency,
        rate,
      },
      elapsed,
    );
    io.out(values.json ? JSON.stringify(r, null, 2) : formatReport(r));
    return r.ok > 0 ? 0 : 1;
  } catch (e) {
    return report(io, "bench", e, discovery);
  } finally {
    clearInterval(progress);
    await connected?.app.stop().catch(() => undefined);
  }
}
