/**
 * Spans of a `@fallback` call that is retried and then falls back: four Store instances serve
 * over http in child processes (etcd, a long lease); the owner of a key and two other instances
 * are SIGKILLed while still registered. Each attempt's owner refuses the call (connection
 * refused) and it falls back to another instance: the dead one fails the attempt (UNAVAILABLE,
 * retried), the live one answers. With an SDK registered here, each retry's attempt span names
 * the instance the call fell back to (`fan.instance`) and the owner that refused it
 * (`fan.shard_fallback_from`), a failed one carries `fan.code` and an ERROR status, the
 * call's span keeps the final outcome (OK) and has a `fan.shard_fallback` event per attempt
 * (the first, which has no span of its own, included), as docs/telemetry.md and
 * docs/sharding.md say.
 */
import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, expect, it } from "vitest";
import { assignShards, shardOfKey } from "../../src/runtime/call/shards.js";
import { type App, createApp } from "../../src/runtime/index.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { resetTracer } from "../../src/runtime/telemetry/tracing.js";
import { describeEtcd, SHARED_ETCD, until } from "../discovery/helpers.js";
import { Store } from "../sharding/fixtures/generated/test/shards.js";
import { type Child, kill, serveStore } from "../sharding/helpers.js";

describeEtcd(
  "spans of a @fallback call retried, then answered by another instance (http, etcd, child processes)",
  () => {
    const cluster = `fallback-spans-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const ids = ["fbspan-a", "fbspan-b", "fbspan-c", "fbspan-d"];
    const exporter = new InMemorySpanExporter();
    let children: Child[] = [];
    let app: App;

    beforeAll(async () => {
      context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
      trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
      resetTracer();
      // A long lease: the killed instances stay registered (and the owner keeps its shards).
      children = await Promise.all(
        ids.map((instanceId) =>
          serveStore({ etcd: SHARED_ETCD, cluster, instanceId, transports: ["http"], leaseTtlMs: 60_000 }),
        ),
      );
      app = createApp({
        cluster,
        discovery: `etcd://${SHARED_ETCD}`,
        logger: silentLogger(),
        transports: { http: {} },
        policy: { breaker: false, retry: { max: 4, budget: { maxTokens: 1000 } } },
      });
      await app.start();
      const set = await app.watch(Store.descriptor.name);
      await until("4 Store instances", () => set.instances().length === 4, 20_000);
    }, 120_000);

    afterAll(async () => {
      await Promise.all(children.map(kill));
      await app?.stop();
      trace.disable();
      context.disable();
      resetTracer();
    });

    it("each retry's attempt span names the instance it fell back to and the owner that refused it", async () => {
      const owners = assignShards(
        ids.map((instanceId) => ({ instanceId, shards: [] })),
        16,
      );
      const [owner, dead1, dead2, live] = children as [Child, Child, Child, Child];
      const key = Array.from({ length: 400 }, (_, i) => `fbspan-${i}`).find(
        (k) => owners[shardOfKey([k], 16)] === owner.instanceId,
      ) as string;
      await Promise.all([kill(owner), kill(dead1), kill(dead2)]);
      const dead = [dead1.instanceId, dead2.instanceId];
      const client = app.client(Store, { strategy: "round-robin" });
      const spans = () => exporter.getFinishedSpans();
      const attemptsOf = (id: string) =>
        spans()
          .filter((s) => s.parentSpanContext?.spanId === id && s.name.includes(" attempt "))
          .sort((x, y) => Number(x.attributes["fan.attempt"]) - Number(y.attributes["fan.attempt"]));
      // Round-robin sends the fallback of a call's first attempt to the dead instance about every
      // other call: that call is retried. Calls until one was.
      let retried: ReturnType<typeof spans>[number] | undefined;
      for (let n = 0; n < 20 && retried === undefined; n++) {
        exporter.reset();
        expect((await client.fallbackStore({ storeId: key })).instanceId).toBe(live.instanceId);
        const call = spans().find((s) => s.name === `${Store.descriptor.name}/fallbackStore`);
        expect(call).toBeDefined();
        if (attemptsOf(call?.spanContext().spanId as string).length >= 2) retried = call;
      }
      expect(retried, "no call was retried twice in 20").toBeDefined();
      const call = retried as NonNullable<typeof retried>;
      expect(call.kind).toBe(SpanKind.CLIENT);
      // The call's span keeps the final outcome: answered.
      expect(call.status.code).not.toBe(SpanStatusCode.ERROR);
      expect(call.attributes["fan.code"]).toBeUndefined();
      const attempts = attemptsOf(call.spanContext().spanId);
      expect(attempts.map((a) => a.attributes["fan.attempt"])).toEqual(attempts.map((_, i) => i + 2));
      for (const a of attempts) {
        expect(a.kind).toBe(SpanKind.CLIENT);
        expect(a.spanContext().traceId).toBe(call.spanContext().traceId);
        expect(a.attributes["fan.shard_fallback_from"]).toBe(owner.instanceId);
        expect(a.attributes["fan.transport"]).toBe("http");
      }
      const last = attempts.at(-1);
      expect(last?.attributes["fan.instance"]).toBe(live.instanceId);
      expect(last?.status.code).not.toBe(SpanStatusCode.ERROR);
      // The call's span has a fan.shard_fallback event per attempt, the first included (it has
      // no span of its own): the owner that refused it and the instance it went to instead.
      const events = call.events.filter((e) => e.name === "fan.shard_fallback");
      expect(events.map((e) => e.attributes?.["fan.attempt"])).toEqual([1, ...attempts.map((_, i) => i + 2)]);
      for (const e of events) expect(e.attributes?.["fan.shard_fallback_from"]).toBe(owner.instanceId);
      expect(dead).toContain(events[0]?.attributes?.["fan.instance"]);
      expect(events.at(-1)?.attributes?.["fan.instance"]).toBe(live.instanceId);
      for (const failed of attempts.slice(0, -1)) {
        expect(dead).toContain(failed.attributes["fan.instance"]);
        expect(failed.status.code).toBe(SpanStatusCode.ERROR);
        expect(failed.attributes["fan.code"]).toBe("UNAVAILABLE");
      }
    }, 90_000);
  },
);
