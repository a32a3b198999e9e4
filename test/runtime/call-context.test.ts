/**
 * The context an in-process call's handler runs in, and the caller's afterwards: the handler
 * sees the caller's own AsyncLocalStorage stores and its call's deadline (and passes it to
 * nested calls); the caller, once the call returns its promise, is back in exactly its own
 * context (no fan context, its stores as they were), whether the handler returned a value, a
 * promise, or threw. On Node 24 the dispatcher restores the caller's context frame itself
 * (`runHandler` in call/callctx.ts) instead of `AsyncLocalStorage.run`: this checks it does.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import {
  type CallContext,
  type CallOptions,
  createApp,
  defineService,
  type ServiceDescriptor,
  type StructSchema,
} from "fan/runtime";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { contextFrames, currentContext } from "../../src/runtime/call/callctx.js";

const userStore = new AsyncLocalStorage<string>();

interface Seen {
  user: string;
  deadline: number;
}
const seenSchema: StructSchema = {
  kind: "struct",
  name: "ctx.Seen",
  fields: [
    { name: "user", schema: { kind: "string" } },
    { name: "deadline", schema: { kind: "int" } },
  ],
};
const empty: StructSchema = { kind: "struct", name: "ctx.Empty", fields: [] };
const method = (name: string, timeoutMs: number) =>
  ({
    name,
    kind: "rpc",
    input: empty,
    output: seenSchema,
    timeoutMs,
    idempotent: false,
    retry: 0,
    throws: [],
  }) as const;
const descriptor = (name: string, methods: ReturnType<typeof method>[]): ServiceDescriptor => ({
  name,
  version: "1.0.0",
  transports: ["local"],
  shards: 16,
  unique: false,
  methods: Object.fromEntries(methods.map((m) => [m.name, m])),
  events: {},
  states: {},
  subscriptions: [],
  depends: [],
  errors: {},
});

interface InnerHandler {
  now(req: object, ctx: CallContext): Seen;
  later(req: object, ctx: CallContext): Promise<Seen>;
  boom(req: object, ctx: CallContext): Seen;
}
interface InnerClient {
  now(req: object, opts?: CallOptions): Promise<Seen>;
  later(req: object, opts?: CallOptions): Promise<Seen>;
  boom(req: object, opts?: CallOptions): Promise<Seen>;
}
const Inner = defineService<InnerHandler, InnerClient>({
  descriptor: descriptor("ctx.Inner", [method("now", 10_000), method("later", 10_000), method("boom", 10_000)]),
  createClient: (c) => ({
    now: (req, opts) => c.call("now", req, opts) as Promise<Seen>,
    later: (req, opts) => c.call("later", req, opts) as Promise<Seen>,
    boom: (req, opts) => c.call("boom", req, opts) as Promise<Seen>,
  }),
});

interface OuterHandler {
  nest(req: object, ctx: CallContext): Promise<Seen>;
}
interface OuterClient {
  nest(req: object, opts?: CallOptions): Promise<Seen>;
}
const Outer = defineService<OuterHandler, OuterClient>({
  descriptor: descriptor("ctx.Outer", [method("nest", 300)]),
  createClient: (c) => ({ nest: (req, opts) => c.call("nest", req, opts) as Promise<Seen> }),
});

const seen = (ctx: CallContext): Seen => ({ user: userStore.getStore() ?? "", deadline: ctx.deadline });

class InnerImpl implements InnerHandler {
  now(_: object, ctx: CallContext): Seen {
    return seen(ctx);
  }
  async later(_: object, ctx: CallContext): Promise<Seen> {
    await new Promise((r) => setImmediate(r));
    return seen(ctx);
  }
  boom(): Seen {
    throw new Error("boom");
  }
}

class OuterImpl implements OuterHandler {
  async nest(_: object, ctx: CallContext): Promise<Seen> {
    // The handler's own store, entered inside it, reaches the nested call's handler too.
    return userStore.run(`${userStore.getStore()}+outer`, () => ctx.client(Inner).later({}));
  }
}

describe("the context of an in-process call", () => {
  it("rides on context frames on Node 24, and on Node 22 with --experimental-async-context-frame", () => {
    // Node 20 has no frames; on 22 the flag turns them on (in execArgv or NODE_OPTIONS), on 24
    // they are the default unless --no-async-context-frame turns them off.
    const major = Number(process.versions.node.split(".")[0]);
    const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)];
    const expected =
      major >= 24
        ? !flags.includes("--no-async-context-frame")
        : major === 22 && flags.includes("--experimental-async-context-frame");
    expect(contextFrames()).toBe(expected);
  });

  let app: ReturnType<typeof createApp> | undefined;
  afterEach(async () => app?.stop());

  async function started() {
    app = createApp({ logger: pino({ level: "silent" }) })
      .serve(Inner, new InnerImpl())
      .serve(Outer, new OuterImpl());
    await app.start();
    return { inner: app.client(Inner), outer: app.client(Outer) };
  }

  it("the handler sees the caller's stores; the caller is back in its own context when the call returns", async () => {
    const { inner } = await started();
    await inner.now({}); // the route is ready: the calls below reach the handler synchronously
    await userStore.run("caller", async () => {
      for (const call of [() => inner.now({}, { timeout: 1000 }), () => inner.later({}, { timeout: 1000 })]) {
        const t0 = Date.now();
        const p = call();
        // Synchronously after the call: the caller's store, no fan context (the handler's is gone).
        expect(userStore.getStore()).toBe("caller");
        expect(currentContext()).toBeUndefined();
        const got = await p;
        expect(got.user).toBe("caller");
        expect(got.deadline).toBeGreaterThanOrEqual(t0 + 1000);
        expect(got.deadline).toBeLessThanOrEqual(Date.now() + 1000);
        // A call made after it does not inherit the 1 s deadline of the one before.
        const next = await inner.now({});
        expect(next.deadline).toBeGreaterThan(Date.now() + 5_000);
        expect(userStore.getStore()).toBe("caller");
      }
    });
    // Outside any store: the handler sees none.
    expect((await inner.now({})).user).toBe("");
  });

  it("a handler that throws leaves the caller's context as it was", async () => {
    const { inner } = await started();
    await inner.now({});
    await userStore.run("caller", async () => {
      const p = inner.boom({}, { timeout: 1000 });
      expect(userStore.getStore()).toBe("caller");
      expect(currentContext()).toBeUndefined();
      await expect(p).rejects.toMatchObject({ code: "INTERNAL" });
      expect((await inner.now({})).deadline).toBeGreaterThan(Date.now() + 5_000);
    });
  });

  it("a nested call inherits the deadline and sees the stores of the handler that made it", async () => {
    const { outer } = await started();
    const t0 = Date.now();
    const got = await userStore.run("caller", () => outer.nest({}));
    expect(got.user).toBe("caller+outer");
    // Inner.later's own timeout is 10 s; Outer.nest's is 300 ms.
    expect(got.deadline).toBeGreaterThanOrEqual(t0 + 300);
    expect(got.deadline).toBeLessThanOrEqual(Date.now() + 300);
  });
});
