/**
 * `npm run bench -- telemetry`: what metrics and spans cost a call, telemetry on against off
 * (`createApp({ telemetry: false })`), measured side by side in two phases: with no
 * OpenTelemetry SDK registered, then with the SDK (BasicTracerProvider, a batch span processor,
 * a no-op exporter, the AsyncLocalStorage context manager). Cases: an in-process call
 * (`bench/local` adds the same rows) and a remote call over http and zmq at concurrency 1
 * (`bench/transports` adds them too). Targets: p50 of a remote call < +10% with no SDK,
 * < +25% with the SDK.
 */
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import type { TelemetryOptions } from "../src/runtime/telemetry/index.js";
import { resetTracer } from "../src/runtime/telemetry/tracing.js";
import { httpTransport } from "../src/runtime/transports/http/index.js";
import { zmqTransport } from "../src/runtime/transports/zmq/index.js";
import { type BenchRow, compare, type LoopOptions } from "./lib.js";

/** A measured operation and its teardown. */
export interface TelemetryRig {
  readonly op: () => Promise<unknown>;
  close(): Promise<void>;
}

/** An exporter that drops every span (what the SDK costs, without any I/O). */
const noopExporter: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: async () => undefined,
};

/** Registers the SDK globally; returns its removal. */
export function registerSdk(): () => Promise<void> {
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(noopExporter)] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  resetTracer();
  return async () => {
    trace.disable();
    context.disable();
    resetTracer();
    await provider.shutdown();
  };
}

/**
 * CPU time of this process per operation (µs, user + system), sequential, median of `rounds`
 * interleaved rounds of `n` ops. Client and server Apps share the process, so this is the
 * whole call's CPU cost, and unlike wall-clock time it holds up on a loaded machine.
 */
async function cpuPerOp(rigs: readonly TelemetryRig[], n: number, rounds = 5): Promise<number[]> {
  const all = rigs.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < rigs.length; i++) {
      const op = (rigs[i] as TelemetryRig).op;
      const before = process.cpuUsage();
      for (let k = 0; k < n; k++) await op();
      const d = process.cpuUsage(before);
      all[i]?.push((d.user + d.system) / n);
    }
  }
  return all.map((xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number);
}

function cpuNote(on: number, off: number): string {
  return `cpu/op ${off.toFixed(1)} → ${on.toFixed(1)} µs (${on >= off ? "+" : ""}${((on / off - 1) * 100).toFixed(1)}%)`;
}

function pct(on: BenchRow, off: BenchRow): string {
  const d = (on.p50Ms / off.p50Ms - 1) * 100;
  return `${d >= 0 ? "+" : ""}${d.toFixed(1)}% p50, ${((off.opsPerSec / on.opsPerSec - 1) * 100).toFixed(1)}% time/op vs off`;
}

/**
 * Rows of one case: off and on side by side with no SDK, then off and on side by side with
 * the SDK registered. `make(telemetry)` builds a rig with those App options.
 */
export async function onOffRows(
  label: string,
  make: (telemetry: TelemetryOptions | false) => Promise<TelemetryRig>,
  opts: LoopOptions & { rounds?: number },
  target: string,
  cpuOps = 2000,
): Promise<BenchRow[]> {
  const off = await make(false);
  const on = await make({});
  try {
    const [off1, on1] = (await compare(
      [
        { name: `${label} telemetry off`, op: off.op },
        { name: `${label} telemetry on, no SDK`, op: on.op },
      ],
      opts,
    )) as [BenchRow, BenchRow];
    const [cpuOff1, cpuOn1] = (await cpuPerOp([off, on], cpuOps)) as [number, number];
    const unregister = registerSdk();
    let off2: BenchRow;
    let on2: BenchRow;
    let cpu2: number[];
    try {
      [off2, on2] = (await compare(
        [
          { name: `${label} telemetry off (SDK registered)`, op: off.op },
          { name: `${label} telemetry on, SDK + batch processor + no-op exporter`, op: on.op },
        ],
        opts,
      )) as [BenchRow, BenchRow];
      cpu2 = await cpuPerOp([off, on], cpuOps);
    } finally {
      await unregister();
    }
    const [cpuOff2, cpuOn2] = cpu2 as [number, number];
    return [
      off1,
      {
        ...on1,
        ratio: on1.opsPerSec / off1.opsPerSec,
        note: `${pct(on1, off1)}; ${cpuNote(cpuOn1, cpuOff1)}${target ? ` (target < +10% p50${target})` : ""}`,
      },
      off2,
      {
        ...on2,
        ratio: on2.opsPerSec / off2.opsPerSec,
        note: `${pct(on2, off2)}; ${cpuNote(cpuOn2, cpuOff2)}${target ? ` (target < +25% p50${target})` : ""}`,
      },
    ];
  } finally {
    await off.close();
    await on.close();
  }
}

/** The remote rows: http and zmq at concurrency 1. */
/**
 * `rig`: bench/transports.ts passes its own `fanRig` when it runs this as its telemetry section
 * (importing transports.js from there would wait on that module's own top-level await, which
 * is running this very section: a cycle, and the process exited 13 with nothing measured).
 */
export async function remoteTelemetryRows(rig?: FanRig): Promise<BenchRow[]> {
  const fanRig = rig ?? (await import("./transports.js")).fanRig;
  const opts = { concurrency: 1, durationMs: 1000, rounds: 5, warmupOps: 500 };
  return [
    ...(await onOffRows(
      "http c=1",
      (t) => fanRig("http", () => ({ http: httpTransport() }), { telemetry: t }),
      opts,
      ", remote",
    )),
    ...(await onOffRows(
      "zmq c=1",
      (t) => fanRig("zmq", () => ({ zmq: zmqTransport() }), { telemetry: t }),
      opts,
      ", remote",
    )),
  ];
}

type FanRig = typeof import("./transports.js").fanRig;

export default async function telemetry(): Promise<BenchRow[]> {
  const { localTelemetryRows } = await import("./local.js");
  return [...(await localTelemetryRows()), ...(await remoteTelemetryRows())];
}
