/**
 * Spans per attempt: with an OpenTelemetry SDK registered, each retry (or hedge) the policy
 * chain makes is a CLIENT span of its own, a child of the call's span, naming the attempt
 * number and instance (the first attempt goes out under the call's span, as a call answered
 * at once always did). Two Flaky instances serve over http in child processes (etcd),
 * one failing every call with UNAVAILABLE; the caller here records spans in memory.
 */
import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import { resetTracer } from "../../src/runtime/telemetry/tracing.js";
import { Flaky } from "../policy/fixtures/generated/fan/policytest.js";
import { type FlakyProcess, flakyProcess } from "../policy/flaky-process.js";
import { describeWithBroker, reachable } from "../transports/amqp-broker.js";
import { until } from "../transports/conformance.js";

const ETCD = (process.env.FAN_ETCD ?? "etcd://127.0.0.1:2379") as `etcd://${string}`;
const etcdUrl = new URL(ETCD.replace("etcd:", "http:"));
const up = await reachable(etcdUrl.hostname, Number(etcdUrl.port));
const cluster = `spans-${process.pid}-${shortId()}`;

describeWithBroker(
  up,
  "etcd",
  "attempt spans",
)("a span per attempt (http, between processes)", () => {
  const exporter = new InMemorySpanExporter();
  let children: FlakyProcess[] = [];
  let app: App;

  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    resetTracer();
    children = await Promise.all([
      flakyProcess({ cluster, id: "bad", mode: "unavailable", transport: "http" }),
      flakyProcess({ cluster, id: "good", transport: "http" }),
    ]);
    app = createApp({
      cluster,
      discovery: ETCD,
      transports: { http: {} },
      logger: pino({ level: "silent" }),
      policy: { breaker: false, retry: { max: 1, budget: { maxTokens: 1000 } } },
    });
    await app.start();
    const set = await app.watch(Flaky.descriptor.name);
    await until(() => set.instances().length === 2, 20_000);
  }, 150_000);

  afterAll(async () => {
    await app?.stop();
    for (const c of children) c.kill("SIGKILL");
    trace.disable();
    context.disable();
    resetTracer();
  });

  it("a retried call has an attempt span per attempt under its call span", async () => {
    const client = app.client(Flaky, { strategy: "round-robin" });
    for (let n = 0; n < 4; n++) expect((await client.read({ n })).instance).toBe("good");
    const spans = exporter.getFinishedSpans();
    const calls = spans.filter((s) => s.name === `${Flaky.descriptor.name}/read`);
    expect(calls).toHaveLength(4);
    const attemptsOf = (id: string) =>
      spans
        .filter((s) => s.parentSpanContext?.spanId === id && s.name.includes(" attempt "))
        .sort((x, y) => Number(x.attributes["fan.attempt"]) - Number(y.attributes["fan.attempt"]));
    const shapes = calls.map((c) => attemptsOf(c.spanContext().spanId).map((a) => a.attributes["fan.instance"]));
    // A call that went to "bad" first was retried at "good" (one attempt span); one that went
    // to "good" first has none.
    for (const shape of shapes) expect([[], ["good"]]).toContainEqual(shape);
    const retried = calls.find((c) => attemptsOf(c.spanContext().spanId).length === 1);
    expect(retried).toBeDefined();
    // The first attempt failed under the call's span, so the call span records the final outcome (OK).
    expect(retried?.status.code).not.toBe(SpanStatusCode.ERROR);
    const [second] = attemptsOf(retried?.spanContext().spanId as string);
    expect(second?.kind).toBe(SpanKind.CLIENT);
    expect(second?.name).toBe(`${Flaky.descriptor.name}/read attempt 2`);
    expect(second?.attributes["fan.attempt"]).toBe(2);
    expect(second?.attributes["fan.transport"]).toBe("http");
    expect(second?.status.code).not.toBe(SpanStatusCode.ERROR);
    expect(second?.spanContext().traceId).toBe(retried?.spanContext().traceId);
  }, 30_000);
});
