/**
 * Tracing end to end through Apps and real transports: one trace A → B → C over http, redis
 * and zmq with correct parent links (checked with the OpenTelemetry SDK's in-memory exporter),
 * the handler's span active while it runs, log lines of the nested call carrying trace and span
 * ids, the trace id on errors, and fan's own trace ids when no SDK is registered.
 */
import { context, trace, SpanKind } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from "@opentelemetry/sdk-trace-base";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createApp, type App, FanError } from "../../src/runtime/index.js";
import { memoryRegistry } from "../../src/runtime/discovery/index.js";
import { LocalHub, localTransport } from "../../src/runtime/transports/local/index.js";
import { resetTracer } from "../../src/runtime/telemetry/tracing.js";
import { captureLogger } from "../runtime/fixtures/impl.js";
import { describeWithBroker, reachable } from "../transports/amqp-broker.js";
import { A, B, C, Hop } from "./fixtures.js";

/** A local transport on a hub of its own: Apps of this one process then call each other over the network. */
const ownHub = () => localTransport({ hub: new LocalHub() });
const redisUp = await reachable("127.0.0.1", 6379);
const cluster = `tel-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

function withoutSdk(): void {
  trace.disable();
  context.disable();
  resetTracer();
}

describeWithBroker(
  redisUp,
  "Redis",
  "telemetry tracing",
)("one trace over http → redis → zmq (OpenTelemetry SDK, in-memory exporter)", () => {
  const exporter = new InMemorySpanExporter();
  const registry = memoryRegistry();
  const apps: App[] = [];
  const logC = captureLogger("info");
  const a = new Hop(B);
  const b = new Hop(C);
  const c = new Hop();
  let caller: App;

  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    resetTracer();
    const quiet = captureLogger("warn").log;
    const appC = createApp({
      cluster,
      discovery: registry,
      logger: logC.log,
      transports: { local: ownHub(), zmq: {} },
    }).serve(C, c, {
      transports: ["zmq"],
    });
    const appB = createApp({
      cluster,
      discovery: registry,
      logger: quiet,
      transports: { local: ownHub(), redis: {}, zmq: {} },
    }).serve(B, b, { transports: ["redis"] });
    const appA = createApp({
      cluster,
      discovery: registry,
      logger: quiet,
      transports: { local: ownHub(), http: {}, redis: {} },
    }).serve(A, a, { transports: ["http"] });
    caller = createApp({ cluster, discovery: registry, logger: quiet, transports: { local: ownHub(), http: {} } });
    apps.push(appC, appB, appA, caller);
    for (const app of apps) await app.start();
  }, 60_000);

  afterAll(async () => {
    for (const app of apps.reverse()) await app.stop();
    withoutSdk();
  }, 60_000);

  afterEach(() => exporter.reset());

  it("links client and server spans of every hop, and the handler's span is active", async () => {
    const tracer = trace.getTracer("test");
    const { reply, rootTrace, rootSpan } = await tracer.startActiveSpan("root", async (root) => {
      const reply = await caller.client(A).hop({ n: 1 });
      root.end();
      return { reply, rootTrace: root.spanContext().traceId, rootSpan: root.spanContext().spanId };
    });
    const spans = exporter.getFinishedSpans();
    const fan = spans.filter((s) => s.instrumentationScope.name === "fan");
    const find = (name: string, kind: SpanKind): ReadableSpan => {
      const s = fan.find((x) => x.name === name && x.kind === kind);
      if (s === undefined)
        throw new Error(
          `no ${SpanKind[kind]} span ${name}: ${fan.map((x) => `${x.name}/${SpanKind[x.kind]}`).join(", ")}`,
        );
      return s;
    };
    const chain = [
      find("test.tel.A/hop", SpanKind.CLIENT),
      find("test.tel.A/hop", SpanKind.SERVER),
      find("test.tel.B/hop", SpanKind.CLIENT),
      find("test.tel.B/hop", SpanKind.SERVER),
      find("test.tel.C/hop", SpanKind.CLIENT),
      find("test.tel.C/hop", SpanKind.SERVER),
    ];
    expect(fan).toHaveLength(6);
    expect([chain[1], chain[3], chain[5]].map((s) => s?.attributes["fan.transport"])).toEqual(["http", "redis", "zmq"]);
    for (const s of chain) expect(s.spanContext().traceId).toBe(rootTrace);
    expect(chain[0]?.parentSpanContext?.spanId).toBe(rootSpan);
    for (let i = 1; i < chain.length; i++)
      expect(chain[i]?.parentSpanContext?.spanId, `parent of span ${i}`).toBe(chain[i - 1]?.spanContext().spanId);
    // Each handler's ctx carried its server span's ids, and that span was the active one.
    const servers = [chain[1], chain[3], chain[5]].map((s) => `${rootTrace}/${s?.spanContext().spanId}`);
    expect(reply.seen).toEqual(servers);
    for (const [h, s] of [
      [a, chain[1]],
      [b, chain[3]],
      [c, chain[5]],
    ] as const)
      expect(h.contexts.at(-1)?.activeSpan).toBe(s?.spanContext().spanId);
    // The nested call's log line carries the trace and its own span id.
    const line = logC.records.find((r) => r.msg === "hop test.tel.C");
    expect(line).toMatchObject({ traceId: rootTrace, spanId: chain[5]?.spanContext().spanId });
  });

  it("records the failure on the spans and puts the trace id on the caller's error", async () => {
    let seen: string | undefined;
    const err = await caller
      .client(A)
      .hop({ n: 1, fail: "NOT_FOUND" }, { onTrace: (t) => (seen = t.traceId) })
      .catch((e: unknown) => e);
    expect(FanError.is(err) && err.code).toBe("NOT_FOUND");
    expect(seen).toMatch(/^[0-9a-f]{32}$/);
    expect((err as FanError).traceId).toBe(seen);
    const failed = exporter.getFinishedSpans().filter((s) => s.attributes["fan.code"] === "NOT_FOUND");
    expect(failed.length).toBe(6);
    for (const s of failed) expect(s.spanContext().traceId).toBe(seen);
  });

  it("links a push's consumer span to its producer", async () => {
    const tracer = trace.getTracer("test");
    await tracer.startActiveSpan("pusher", async (root) => {
      await caller.client(A).note({ id: "n1" });
      root.end();
    });
    const deadline = Date.now() + 10_000;
    while (!exporter.getFinishedSpans().some((s) => s.kind === SpanKind.CONSUMER) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const spans = exporter.getFinishedSpans();
    const producer = spans.find((s) => s.kind === SpanKind.PRODUCER && s.name === "test.tel.A/note");
    const consumer = spans.find((s) => s.kind === SpanKind.CONSUMER && s.name === "test.tel.A/note");
    expect(producer).toBeDefined();
    expect(consumer?.parentSpanContext?.spanId).toBe(producer?.spanContext().spanId);
    expect(consumer?.links.map((l) => l.context.spanId)).toEqual([producer?.spanContext().spanId]);
  });
});

describe("without an SDK", () => {
  beforeAll(withoutSdk);

  it("still propagates fan's trace ids: nested calls share the trace, logs and errors carry it", async () => {
    const log = captureLogger("info");
    const a = new Hop(B);
    const b = new Hop(C);
    const c = new Hop();
    const app = createApp({ logger: log.log, transports: { local: { serialize: true } } })
      .serve(A, a)
      .serve(B, b)
      .serve(C, c);
    await app.start();
    try {
      const reply = await app.client(A).hop({ n: 1 });
      const traces = reply.seen.map((s) => s.split("/")[0]);
      expect(new Set(traces).size).toBe(1);
      expect(new Set(reply.seen.map((s) => s.split("/")[1])).size).toBe(3);
      const line = log.records.find((r) => r.msg === "hop test.tel.C");
      expect(line).toMatchObject({ traceId: traces[0], spanId: reply.seen[2]?.split("/")[1] });
      let seen: string | undefined;
      const err = (await app
        .client(A)
        .hop({ n: 1, fail: "ABORTED" }, { onTrace: (t) => (seen = t.traceId) })
        .catch((e: unknown) => e)) as FanError;
      expect(err.code).toBe("ABORTED");
      expect(err.traceId).toBe(seen);
      expect(c.contexts.at(-1)?.traceId).toBe(seen);
    } finally {
      await app.stop();
    }
  });

  it("gives an unserialised in-process call's error the trace id its handler used", async () => {
    const c = new Hop();
    const app = createApp({ logger: captureLogger("warn").log }).serve(C, c);
    await app.start();
    try {
      const err = (await app
        .client(C)
        .hop({ n: 1, fail: "INTERNAL" })
        .catch((e: unknown) => e)) as FanError;
      expect(err.code).toBe("INTERNAL");
      expect(err.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(err.traceId).toBe(c.contexts.at(-1)?.traceId);
    } finally {
      await app.stop();
    }
  });
});
