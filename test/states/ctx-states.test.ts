/**
 * `ctx.states`: a handler owns its service's states through its call context, typed by the
 * generated `XStates` map (a value of the wrong type is a compile error), and its lifecycle
 * hooks get the same; a watcher in another App sees what the handler set and patched.
 */
import { afterEach, describe, expect, expectTypeOf, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import type { CallContext, LifecycleContext } from "../../src/runtime/call/context.js";
import type { StatePublisher } from "../../src/runtime/states/index.js";
import { shortId } from "../../src/runtime/ids.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { Board, type BoardHandler, type BoardStates, type Entry } from "./fixtures/generated/fan/replica.js";

type BoardCtx = Parameters<BoardHandler["ping"]>[1];

const apps: App[] = [];
afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
});

describe("ctx.states, typed by the IDL", () => {
  it("the generated context types each state with its value type", () => {
    expectTypeOf<BoardCtx["states"]["entries"]>().toEqualTypeOf<StatePublisher<Record<string, Entry>>>();
    expectTypeOf<BoardCtx["states"]["mode"]>().toEqualTypeOf<StatePublisher<Entry>>();
    expectTypeOf<BoardStates>().toEqualTypeOf<{ entries: Record<string, Entry>; mode: Entry }>();
    const typed = (ctx: BoardCtx): void => {
      ctx.states.mode.set({ n: 1, label: "a" });
      // @ts-expect-error: mode is an Entry, not a number
      ctx.states.mode.set(1);
      // @ts-expect-error: Board declares no state "missing"
      void ctx.states.missing;
    };
    expect(typeof typed).toBe("function");
  });

  it("a handler sets and patches through ctx.states; a lifecycle hook too; a watcher in another App sees it", async () => {
    const cluster = `ctx-states-${process.pid}-${shortId()}`;
    let lifecycle: LifecycleContext | undefined;
    const handler: BoardHandler & { postStart(ctx: LifecycleContext): void } = {
      ping: (_req, ctx: CallContext<Record<string, never>, Record<never, never>, BoardStates>) => {
        ctx.states.entries.patch({ fromCall: { n: ctx.states.entries.seq, label: ctx.method } });
        ctx.states.mode.set({ n: 2, label: "called" });
        return "pong";
      },
      postStart(ctx) {
        lifecycle = ctx;
        ctx.states.entries.set({ seed: { n: 0, label: "start" } });
      },
    };
    const owner = createApp({ cluster, discovery: "memory", logger: silentLogger() }).serve(Board, handler);
    apps.push(owner);
    await owner.start();
    expect(Object.keys(lifecycle?.states ?? {})).toEqual(["entries", "mode"]);
    const watcher = createApp({ cluster, discovery: "memory", logger: silentLogger() });
    apps.push(watcher);
    await watcher.start();
    const view = watcher.client(Board).states.entries.watch();
    expect(await view.ready()).toEqual({ seed: { n: 0, label: "start" } });
    expect(await watcher.client(Board).ping()).toBe("pong");
    await expect
      .poll(() => view.current)
      .toEqual({ seed: { n: 0, label: "start" }, fromCall: { n: 1, label: "ping" } });
    expect(await watcher.client(Board).states.mode.get()).toEqual({ n: 2, label: "called" });
    // The same owner as app.publisher(Board).state(...).
    expect(owner.publisher(Board).state("entries").seq).toBe(2);
    await view.close();
  });
});
