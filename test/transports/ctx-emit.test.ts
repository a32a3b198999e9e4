/**
 * Issue 9 item 17: a handler emits its own service's events through `ctx.emit` (typed from the
 * IDL), with no publisher handed to its constructor. The emitting handler serves Conformance in
 * this process over redis; the subscriber (ListenerA, `on Conformance.ping`) runs in another
 * process and prints every ping it receives.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import type { CallContext, LifecycleContext } from "../../src/runtime/call/context.js";
import { FanError } from "../../src/runtime/errors.js";
import { type ChildApp, childApp } from "./child.js";
import {
  Conformance,
  type ConformanceEvents,
  ListenerB,
  type ListenerBHandler,
} from "./fixtures/generated/fan/conformance.js";
import { ConformanceService } from "./fixtures/handlers.js";
import { captureLog } from "./fixtures/log.js";
import { ETCD, factoryFor, uniqueCluster, up } from "./processes.js";

/** Conformance has no `config {}`. */
type ConformanceConfig = Record<string, never>;

/**
 * Emits `ping` (n = the `ms` it is called with) from inside the `sleep` rpc instead of sleeping,
 * and keeps the context its `postStart` hook received.
 */
class EmittingService extends ConformanceService {
  lifecycle: LifecycleContext | undefined;
  readonly contextsSeen: CallContext<ConformanceConfig, ConformanceEvents>[] = [];

  override async sleep(req: { ms: number }, ctx: CallContext<ConformanceConfig, ConformanceEvents>): Promise<void> {
    this.contextsSeen.push(ctx);
    await ctx.emit.ping({ n: req.ms });
  }

  postStart(ctx: LifecycleContext): void {
    this.lifecycle = ctx;
  }
}

const d = (up.etcd && up.redis) || process.env.FAN_REQUIRE_BROKERS === "1" ? describe : describe.skip;

d("ctx.emit over redis, to a subscriber in another process", () => {
  const children: ChildApp[] = [];
  const apps: App[] = [];
  afterEach(async () => {
    for (const a of apps.splice(0)) await a.stop();
    for (const c of children.splice(0)) await c.stop();
  });

  it("a handler's ctx.emit.ping and a lifecycle hook's ctx.emit reach ListenerA, one emitter per instance, bad payloads refused", async () => {
    const cluster = uniqueCluster("ctx-emit");
    const child = childApp({
      FAN_CHILD_TRANSPORTS: "redis",
      FAN_CHILD_CLUSTER: cluster,
      FAN_CHILD_SERVE: "ListenerA",
      FAN_ETCD: ETCD,
    });
    children.push(child);
    await child.next("ready", 60_000);

    const handler = new EmittingService();
    const app = createApp({
      cluster,
      discovery: `etcd://${ETCD}`,
      transports: { redis: factoryFor("redis") },
      logger: captureLog().log,
    }).serve(Conformance, handler);
    apps.push(app);
    await app.start();

    // The user's way: a call comes in, the handler emits, the other process's subscription runs.
    await app.client(Conformance).sleep({ ms: 4242 });
    expect(await child.next("ping", 60_000)).toMatchObject({ n: 4242 });

    // One emitter per served instance, shared by every call (not built per call).
    await app.client(Conformance).sleep({ ms: 4243 });
    expect(await waitForPing(child, 4243)).toBe(true);
    const [first, second] = handler.contextsSeen;
    expect(first).not.toBe(second);
    expect(first?.emit).toBe(second?.emit);
    expect(Object.keys(first?.emit ?? {}).sort()).toEqual(["flush", "ping"]);

    // Lifecycle hooks get the same emitter.
    const life = handler.lifecycle;
    if (life === undefined) throw new Error("postStart did not run");
    expect(life.emit).toBe(first?.emit);
    await life.emit.ping({ n: 4244 });
    expect(await waitForPing(child, 4244)).toBe(true);

    // A payload that does not fit the event is refused before anything is sent (an untyped
    // caller's mistake: a typed one cannot write it).
    const typed = first as CallContext<ConformanceConfig, ConformanceEvents>;
    // @ts-expect-error n must be an int
    const bad = await typed.emit.ping({ n: "x" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(FanError.is(bad) && bad.code).toBe("INVALID_ARGUMENT");
    expect((bad as Error).message).toContain("ping.n");
    // An event the service does not have is not there to call.
    expect((life.emit as Record<string, unknown>).nope).toBeUndefined();
  });
});

/** A second subscribing service, served by another App: records each ping with its context's trace id. */
class TracingListener implements ListenerBHandler {
  readonly pings: { n: number; traceId: string }[] = [];
  onPing(event: { n: number }, ctx: CallContext): void {
    this.pings.push({ n: event.n, traceId: ctx.traceId });
  }
  onFlush(): void {}
}

d("ctx.emit between two Apps over redis", () => {
  const apps: App[] = [];
  afterEach(async () => {
    for (const a of apps.splice(0)) await a.stop();
  });

  it("the subscriber's context carries the trace of the call that emitted", async () => {
    const cluster = uniqueCluster("ctx-emit-trace");
    const make = (): App => {
      const app = createApp({
        cluster,
        discovery: `etcd://${ETCD}`,
        transports: { redis: factoryFor("redis") },
        logger: captureLog().log,
      });
      apps.push(app);
      return app;
    };
    const listener = new TracingListener();
    await make().serve(ListenerB, listener).start();
    const handler = new EmittingService();
    const app = make().serve(Conformance, handler);
    await app.start();

    await app.client(Conformance).sleep({ ms: 77 });
    const emitting = handler.contextsSeen[0];
    if (emitting === undefined) throw new Error("the handler did not run");
    const until = Date.now() + 60_000;
    while (listener.pings.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(listener.pings).toEqual([{ n: 77, traceId: emitting.traceId }]);
  });
});

/** Polls the child's output for a ping of `n` (generous deadline: the machine is loaded). */
async function waitForPing(child: ChildApp, n: number): Promise<boolean> {
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    if (child.events.some((e) => e.event === "ping" && e.n === n)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
