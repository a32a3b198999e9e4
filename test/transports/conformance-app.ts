/**
 * The App-level half of the conformance suite: the same interop cases end to end, through a
 * generated client in one App and a generated handler served by another, over one transport
 * (the client pins it), with discovery in between. Registered by `conformance()` in
 * conformance.ts; see there for how a transport's test file calls it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, type AppOptions, createApp } from "../../src/runtime/app/app.js";
import type { TransportName } from "../../src/runtime/descriptor.js";
import { defineService } from "../../src/runtime/descriptor.js";
import { FanError } from "../../src/runtime/errors.js";
import { shortId } from "../../src/runtime/ids.js";
import type { Envelope, TransportFactory } from "../../src/runtime/transports/transport.js";
import { envelope, rejection, until } from "./conformance.js";
import { ConformanceService, Listener } from "./fixtures/handlers.js";
import {
  Conformance,
  type ConformanceClient,
  ConformanceDescriptor,
  ListenerA,
  ListenerB,
  Teapot,
} from "./fixtures/generated/fan/conformance.js";
import { captureLog } from "./fixtures/log.js";

/** What the App-level cases need: the transport, App options for every side, and whether it carries events. */
export interface AppConformanceOptions {
  /** Options of each new App in the suite (`transports` must configure the transport under test). */
  readonly app: () => AppOptions;
  readonly events: boolean;
  /** Payload bound of every App; default 1 MiB. */
  readonly maxPayloadBytes?: number;
}

/** Registers the App-level cases for transport `name`. */
export function appConformance(name: TransportName, o: AppConformanceOptions): void {
  const max = o.maxPayloadBytes ?? 1024 * 1024;
  const cluster = `conf-${name}-${process.pid}-${shortId()}`;
  const apps: App[] = [];
  const newApp = (suffix = ""): App => {
    const app = createApp({
      stopGraceMs: 2000,
      ...o.app(),
      cluster: cluster + suffix,
      discovery: "memory",
      maxPayloadBytes: max,
      logger: captureLog().log,
    });
    apps.push(app);
    return app;
  };

  describe(`${name} end to end through generated clients and handlers`, () => {
    const impl = new ConformanceService();
    let client: ConformanceClient;
    /** A client with no circuit breaker, for the cases that provoke failures on purpose. */
    let racer: ConformanceClient;

    beforeAll(async () => {
      const server = newApp().serve(Conformance, impl, { transports: [name] });
      await server.start();
      const caller = newApp();
      await caller.start();
      client = caller.client(Conformance, { transport: name });
      racer = caller.client(Conformance, { transport: name, policy: { breaker: false } });
    });
    afterAll(async () => {
      await Promise.allSettled(
        apps
          .splice(0)
          .reverse()
          .map((a) => a.stop()),
      );
    });

    it("empty call", async () => {
      expect(await client.empty()).toBeUndefined();
    });

    it("large call: about 270 KB in, 310 KB out", async () => {
      const out = await client.unary({ payload: "q".repeat(271_828), responseSize: 314_159 });
      expect(out.payload.length).toBe(314_159);
      expect(impl.lastInput).toBe(271_828);
    });

    it("status code and message, and a typed IDL error rebuilt as its class", async () => {
      const plain = await rejection(() => client.fail({ code: "PERMISSION_DENIED", message: "nope ✓" }));
      expect([plain.code, plain.message]).toEqual(["PERMISSION_DENIED", "nope ✓"]);
      const typed = await rejection(() => client.fail({ code: "TEAPOT", message: "I'm a teapot" }));
      expect(typed).toBeInstanceOf(Teapot);
      expect((typed as Teapot).reason).toBe("short and stout");
      expect(typed.code).toBe("FAILED_PRECONDITION");
    });

    it("custom headers, trace and deadline reach the handler", async () => {
      const seen = await client.headers({}, { headers: { "x-tenant": "acme", "X-Mixed": "ü ✓" }, timeout: 3000 });
      expect(seen).toMatchObject({ "x-tenant": "acme", "X-Mixed": "ü ✓" });
      const ctx = impl.contexts.at(-1);
      expect(ctx?.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(seen.traceparent).toContain(ctx?.traceId);
      expect(Math.abs((ctx?.deadline ?? 0) - (Date.now() + 3000))).toBeLessThan(1500);
    });

    it("unknown method: UNIMPLEMENTED from the server", async () => {
      const extended = defineService<unknown, { nope(): Promise<unknown> }>({
        descriptor: {
          ...ConformanceDescriptor,
          methods: {
            ...ConformanceDescriptor.methods,
            nope: {
              ...(ConformanceDescriptor.methods.empty as NonNullable<(typeof ConformanceDescriptor.methods)["empty"]>),
              name: "nope",
            },
          },
        },
        createClient: (c) => ({ nope: () => c.call("nope", {}) }),
      });
      const err = await rejection(() => apps[1]!.client(extended, { transport: name }).nope());
      expect(err.code).toBe("UNIMPLEMENTED");
    });

    it("unknown service: UNAVAILABLE naming it (no instance in discovery)", async () => {
      const nobody = defineService<unknown, { ping(): Promise<unknown> }>({
        descriptor: { ...ConformanceDescriptor, name: "fan.conformance.Nobody" },
        createClient: (c) => ({ ping: () => c.call("echo", { n: 1 }, { timeout: 300 }) }),
      });
      const err = await rejection(() => apps[1]!.client(nobody, { transport: name }).ping());
      expect(err.code).toBe("UNAVAILABLE");
      expect(err.message).toContain("Nobody");
    });

    it("a relayed error keeps code, message and trace id, and names the service that failed", async () => {
      const nobody = defineService<unknown, { ping(): Promise<unknown> }>({
        descriptor: { ...ConformanceDescriptor, name: "fan.conformance.Nobody" },
        createClient: (c) => ({ ping: () => c.call("echo", { n: 1 }, { timeout: 300 }) }),
      });
      const dependency = apps[0]!.client(nobody);
      impl.relay = () => dependency.ping();
      try {
        const err = await rejection(() => client.fail({ code: "RELAY", message: "" }));
        expect([err.code, err.message]).toEqual(["UNAVAILABLE", impl.relayed?.message]);
        expect(err.relayedFrom).toBe("fan.conformance.Nobody");
        expect(err.traceId).toBe(impl.relayed?.traceId);
        expect(err.traceId).toMatch(/^[0-9a-f]{32}$/);
      } finally {
        impl.relay = undefined;
      }
    });

    it("a 1 ms deadline on a sleeping handler: DEADLINE_EXCEEDED", async () => {
      const err = await rejection(() => client.sleep({ ms: 2000 }, { timeout: 1 }));
      expect(err.code).toBe("DEADLINE_EXCEEDED");
    });

    it("a reply after the deadline never replaces DEADLINE_EXCEEDED (200 races)", async () => {
      // The handler waits for its signal to abort, then throws its IDL error or returns, or it
      // returns at its deadline without looking: each reply races the caller's own deadline
      // timer (a few ms coarse), and each must lose.
      // 200 deadline failures on one instance on purpose: a circuit breaker would rightly open
      // and fail the rest fast (UNAVAILABLE), so this client has none (test/policy covers it).
      const outcomes = new Map<string, number>();
      for (let round = 0; round < 10; round++) {
        const errors = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            rejection(() =>
              racer.fail(
                { code: ["LATE_TEAPOT", "LATE_OK", "BLIND_OK", "BLIND_OK"][i % 4] as string, message: "late" },
                { timeout: 40 },
              ),
            ).catch((e: unknown) => new FanError("UNKNOWN", `resolved: ${String(e)}`)),
          ),
        );
        for (const e of errors) outcomes.set(e.code, (outcomes.get(e.code) ?? 0) + 1);
      }
      expect(Object.fromEntries(outcomes)).toEqual({ DEADLINE_EXCEEDED: 200 });
    });

    /**
     * Sends envelopes to the App's server through a bare transport that never times out
     * (amqp and redis then keep the envelope's own deadline header): whatever comes back is
     * the real server's and dispatcher's answer, not the calling side's.
     */
    async function viaBareTransport(envs: () => Envelope[]): Promise<Map<string, number>> {
      const make = (o.app().transports as Record<string, TransportFactory>)[name] as TransportFactory;
      const raw = make({ cluster, log: captureLog().log, maxPayloadBytes: max });
      const forever = { signal: new AbortController().signal, deadline: Number.POSITIVE_INFINITY };
      try {
        const set = await apps[1]!.watch(Conformance.descriptor.name);
        const endpoint = set.instances()[0]?.endpoints[name] as string;
        const codes = new Map<string, number>();
        for (let round = 0; round < 10; round++) {
          const replies = await Promise.all(envs().map((env) => raw.call(endpoint, env, forever)));
          for (const r of replies) {
            const code = r.kind === "error" ? (r.payload as { code: string }).code : r.kind;
            codes.set(code, (codes.get(code) ?? 0) + 1);
          }
        }
        return codes;
      } finally {
        await raw.close();
      }
    }

    it("the server answers DEADLINE_EXCEEDED when a handler settles after its signal aborted (200 calls)", async () => {
      const codes = await viaBareTransport(() =>
        Array.from({ length: 20 }, (_, i) =>
          envelope(
            "fail",
            { code: i % 2 === 0 ? "LATE_TEAPOT" : "LATE_OK", message: "late" },
            { deadline: Date.now() + 40 },
          ),
        ),
      );
      expect(Object.fromEntries(codes)).toEqual({ DEADLINE_EXCEEDED: 200 });
    });

    it("the server refuses a call whose deadline passed before it arrived (DEADLINE_EXCEEDED), not the caller", async () => {
      const codes = await viaBareTransport(() => [envelope("echo", { n: 1 }, { deadline: Date.now() - 1 })]);
      expect(Object.fromEntries(codes)).toEqual({ DEADLINE_EXCEEDED: 10 });
    });

    it("cancellation: CANCELLED at the caller, the handler's signal fires", async () => {
      const ac = new AbortController();
      const id = `cancel-${shortId()}`;
      const pending = rejection(() => client.sleep({ ms: 5000 }, { signal: ac.signal, headers: { "x-call": id } }));
      await until(() => impl.started.includes(id));
      ac.abort();
      expect((await pending).code).toBe("CANCELLED");
      await until(() => impl.cancelled.includes(id));
    });

    it("1,000 concurrent calls are all answered correctly", async () => {
      const replies = await Promise.all(
        Array.from({ length: 1000 }, (_, n) => client.echo({ n, text: `t${n}` }, { timeout: 20_000 })),
      );
      expect(replies).toEqual(Array.from({ length: 1000 }, (_, n) => ({ n, text: `t${n}` })));
    });

    it("oversize payload: RESOURCE_EXHAUSTED, and the server still serves", async () => {
      const err = await rejection(() => client.unary({ payload: "x".repeat(max + 1), responseSize: 1 }));
      expect(err.code).toBe("RESOURCE_EXHAUSTED");
      expect(await client.echo({ n: 1 })).toEqual({ n: 1 });
    });

    it("push: delivered exactly once on success, again after handler failures", async () => {
      await client.record({ id: "app-once" });
      await client.record({ id: "app-again", failures: 2 });
      await until(() => impl.delivered("app-again") === 1 && impl.delivered("app-once") === 1);
      await new Promise((r) => setTimeout(r, 100));
      expect(impl.delivered("app-once")).toBe(1);
      expect(impl.pushes.filter((p) => p.id === "app-again").map((p) => p.ok)).toEqual([false, false, true]);
    });

    // Over a direct transport the producer hears a push's failure: as for an rpc, an exception
    // the handler did not mean to show reaches it as INTERNAL with the trace id, not its message.
    it.skipIf(!["http", "tcp", "zmq"].includes(name))(
      "a push whose handler throws shows the producer no exception message, only the trace id",
      async () => {
        const err = (await racer.record({ id: "app-secret", failures: 1000 }, { timeout: 3000 }).then(
          () => new Error("the push was acknowledged"),
          (e: unknown) => e,
        )) as Error & { traceId?: string };
        expect(err.message).not.toContain("fails on purpose");
        expect(err.message).toMatch(/internal error \(trace [0-9a-f]{32}\)/);
      },
    );

    it("a re-send with the same idempotency key runs the handler once; a failed delivery still runs again", async () => {
      const key = `idem-${shortId()}`;
      await client.record({ id: key }, { idempotencyKey: key });
      // The producer's retry, once the first was handled (one sent while the first still runs
      // shares its delivery instead, which the counter does not count: on a loaded machine a
      // broker handed both over in one read, and this waited for a count that never came).
      await until(() => impl.delivered(key) === 1);
      await client.record({ id: key }, { idempotencyKey: key });
      const failing = `idem-fail-${shortId()}`;
      await client.record({ id: failing, failures: 1 }, { idempotencyKey: failing });
      await until(() => impl.delivered(key) === 1 && impl.delivered(failing) === 1);
      await until(() => apps[0]!.counters.pushesDuplicate >= 1);
      expect(impl.pushes.filter((p) => p.id === key)).toHaveLength(1);
      expect(impl.pushes.filter((p) => p.id === failing).map((p) => p.ok)).toEqual([false, true]);
      await expect(client.record({ id: "x" }, { idempotencyKey: "" })).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
        details: { maybeDelivered: false },
      });
    });

    it("graceful stop drains a call in flight", async () => {
      const own = new ConformanceService();
      const server = createApp({
        ...o.app(),
        cluster: `${cluster}-stop`,
        discovery: "memory",
        logger: captureLog().log,
        stopGraceMs: 3000,
      }).serve(Conformance, own, { transports: [name] });
      const caller = createApp({
        ...o.app(),
        cluster: `${cluster}-stop`,
        discovery: "memory",
        logger: captureLog().log,
      });
      await server.start();
      await caller.start();
      const pending = caller.client(Conformance, { transport: name }).sleep({ ms: 300 });
      await until(() => own.active > 0);
      await server.stop();
      await expect(pending).resolves.toBeUndefined();
      await caller.stop();
    });
  });

  // Events run in a cluster of their own: on a broker, the publisher's Conformance instance
  // would otherwise share the main server's queues.
  if (o.events) eventCases(name, () => newApp("-events"));
}

function eventCases(name: TransportName, newApp: () => App): void {
  describe(`${name} events end to end`, () => {
    const a1 = new Listener();
    const a2 = new Listener();
    const b1 = new Listener();
    let publisher: App;

    beforeAll(async () => {
      const apps = [
        newApp().serve(ListenerA, a1, { transports: [name] }),
        newApp().serve(ListenerA, a2, { transports: [name] }),
        newApp().serve(ListenerB, b1, { transports: [name] }),
      ];
      for (const app of apps) await app.start();
      publisher = newApp().serve(Conformance, new ConformanceService(), { transports: [name] });
      await publisher.start();
    });

    it("fan-out: each subscribing service gets every event once, load-balanced across its instances", async () => {
      const events = publisher.publisher(Conformance);
      for (let n = 0; n < 30; n++) await events.emit("ping", { n });
      await until(() => a1.pings.length + a2.pings.length === 30 && b1.pings.length === 30);
      await new Promise((r) => setTimeout(r, 100));
      expect([...a1.pings, ...a2.pings].sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => i));
      expect(a1.pings.length * a2.pings.length).toBeGreaterThan(0);
      expect(b1.pings).toHaveLength(30);
    });

    it("broadcast: every instance gets every event", async () => {
      const events = publisher.publisher(Conformance);
      for (let n = 0; n < 5; n++) await events.emit("flush", { n });
      await until(() => [a1, a2, b1].every((l) => l.flushes.length === 5));
      for (const l of [a1, a2, b1]) expect(l.flushes).toEqual([0, 1, 2, 3, 4]);
    });

    it("a client's events.x.subscribe(fn) gets events too", async () => {
      const got: number[] = [];
      const sub = await newApp()
        .client(Conformance, { transport: name })
        .events.ping.subscribe((e) => void got.push(e.n));
      await publisher.publisher(Conformance).emit("ping", { n: 99 });
      await until(() => got.includes(99));
      await sub.unsubscribe();
    });
  });
}
