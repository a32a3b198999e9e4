/**
 * The conformance suite every transport runs against its real server: gRPC's interop cases
 * adapted to fan (empty call, large call, status and message, custom headers, unknown method
 * and service, a 1 ms deadline, cancellation seen by the server), plus 1,000 concurrent calls,
 * push delivery semantics, events, oversize payloads, malformed input on the raw socket and
 * graceful stop.
 *
 * Use it from `test/transports/<name>.test.ts`:
 *
 * ```ts
 * conformance("amqp", {
 *   app: { transports: { amqp: { url: "amqp://127.0.0.1" } } },   // as createApp takes them
 *   events: true,
 *   pushRedelivery: "broker",
 *   deadLetter: { after: 5, read: (service, method) => ... },     // optional
 *   raw: { garbage: (endpoint) => ..., proto: (endpoint) => ... }, // optional
 * });
 * ```
 *
 * It registers two halves. Transport level (`transportConformance`): each "side" (server,
 * clients, subscribers) gets its own transport instance, as separate processes would; the
 * server serves `fixtures/descriptor.ts` with `fixtures/inbound.ts` standing in for the App's
 * dispatcher, so raw probes, crashes and drains can be staged precisely. App level
 * (`appConformance` in conformance-app.ts): the same cases end to end through the generated
 * client and handler of `fixtures/idl/conformance.fan`, in separate Apps sharing discovery.
 * Either half can be registered alone: `transportConformance(name, { factory, ... })` and
 * `appConformance(name, { app: () => AppOptions, events })`. The fixture module is generated:
 * `node bin/fanc.mjs compile test/transports/fixtures/idl --out test/transports/fixtures/generated`.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { AppOptions } from "../../src/runtime/app/app.js";
import type { ServiceDescriptor, TransportName } from "../../src/runtime/descriptor.js";
import { FanError } from "../../src/runtime/errors.js";
import type {
  Envelope,
  EnvelopeHeaders,
  EventSubscription,
  SendOptions,
  Served,
  Transport,
  TransportFactory,
} from "../../src/runtime/transports/transport.js";
import { appConformance } from "./conformance-app.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { type CapturedLog, captureLog } from "./fixtures/log.js";

/** Payload bound the suite gives every transport (small, so the oversize case is cheap). */
export const SUITE_MAX_PAYLOAD = 1024 * 1024;

/** What the suite needs to know about a transport. */
export interface TransportUnderTest {
  /** A factory for one side (server, client or subscriber); called once per side. */
  readonly factory: () => TransportFactory;
  /** Whether the transport carries events (http does not). */
  readonly events: boolean;
  /**
   * Who redelivers a push that was not acknowledged: "broker" (a queue redelivers to the next
   * consumer, even after a consumer crash) or "sender" (the client sends again after a handler
   * failure; after a crash its push rejects, so the caller knows it was not acknowledged).
   */
  readonly pushRedelivery: "broker" | "sender";
  /** Where the transport has a dead-letter queue: after how many failures, and how to read it. */
  readonly deadLetter?: {
    readonly after: number;
    readonly read: (service: ServiceDescriptor, method: string) => Promise<Envelope[]>;
  };
  /** The codes a call to a service nobody serves may fail with; default NOT_FOUND. */
  readonly unknownService?: readonly string[];
  /** Probes of the server's raw socket or queue, each sending one malformed message. */
  readonly raw?: {
    /** Bytes that are not a message at all. */
    readonly garbage: (endpoint: string) => Promise<void>;
    /**
     * A well-formed message whose payload carries a `__proto__` key. Resolves true when the
     * probe saw the refusal itself (an error reply it checked); otherwise the suite requires
     * the server's warn record naming the key.
     */
    readonly proto: (endpoint: string) => Promise<boolean | undefined>;
  };
}

/** Options of `conformance()`: the transport's capabilities and the App options of every side. */
export interface ConformanceOptions extends Omit<TransportUnderTest, "factory"> {
  /** Options of every App (and transport) in the suite; `transports[name]` configures the transport under test. */
  readonly app: AppOptions;
}

/** Registers the whole suite for transport `name`: transport-level cases, then end to end through Apps. */
export function conformance(name: Exclude<TransportName, "local">, o: ConformanceOptions): void {
  describe(`${name} conformance`, () => {
    let make: (() => TransportFactory) | undefined;
    beforeAll(async () => {
      make = await factoryOf(name, o.app);
    });
    const factory = (): TransportFactory => (make as () => TransportFactory)();
    transportConformance(name, { ...o, factory });
    // The Apps get the factory itself: the App's own loader (`import(\`./transports/${name}/...\`)`)
    // is not resolvable under vitest's dynamic-import rules.
    appConformance(name, {
      app: () => ({ ...o.app, transports: { ...o.app.transports, [name]: factory() } }),
      events: o.events,
    });
  });
}

/** The factory the App would build from `app.transports[name]` (options or a ready factory). */
async function factoryOf(name: Exclude<TransportName, "local">, app: AppOptions): Promise<() => TransportFactory> {
  const cfg = app.transports?.[name];
  if (cfg === undefined) throw new Error(`conformance: app.transports.${name} is not configured`);
  if (typeof cfg === "function") return () => cfg as TransportFactory;
  const url = new URL(`../../src/runtime/transports/${name}/index.ts`, import.meta.url).href;
  const mod = (await import(/* @vite-ignore */ url)) as Record<string, (o: object) => TransportFactory>;
  const build = mod[`${name}Transport`];
  if (build === undefined) throw new Error(`transports/${name} does not export ${name}Transport`);
  return () => build(cfg);
}

/** Send options with a deadline `ms` from now. */
export function within(ms: number, signal: AbortSignal = new AbortController().signal): SendOptions {
  return { signal, deadline: Date.now() + ms };
}

let seq = 0;

/** A call or push envelope for the conformance service. */
export function envelope(
  method: string,
  payload: unknown,
  headers: EnvelopeHeaders = {},
  service = ConformanceDescriptor.name,
): Envelope {
  const m = ConformanceDescriptor.methods[method];
  return {
    v: 1,
    id: `conf-${process.pid}-${++seq}`,
    kind: m?.kind === "push" ? "push" : "call",
    service,
    method,
    version: "1.0.0",
    headers,
    payload,
  };
}

/** The side a case talks through: a transport and its captured log. */
export interface Side {
  readonly transport: Transport;
  readonly log: CapturedLog;
}

/** Creates one side from the transport's factory. */
export function side(t: TransportUnderTest): Side {
  const log = captureLog();
  return {
    transport: t.factory()({ cluster: `conf-${process.pid}`, log: log.log, maxPayloadBytes: SUITE_MAX_PAYLOAD }),
    log,
  };
}

/** Error envelope → its wire error. */
function wireError(env: Envelope): { code: string; message: string; error?: string; details?: unknown } {
  expect(env.kind).toBe("error");
  return env.payload as { code: string; message: string };
}

/** Runs `fn` and returns the FanError it throws (failing when it does not). */
export async function rejection(fn: () => Promise<unknown>): Promise<FanError> {
  try {
    await fn();
  } catch (e) {
    expect(FanError.is(e), `expected a FanError, got ${String(e)}`).toBe(true);
    return e as FanError;
  }
  throw new Error("expected a rejection");
}

/** Registers every conformance case for `name`. */
export function transportConformance(name: string, t: TransportUnderTest): void {
  describe(`${name} transport conformance`, () => {
    let server: Side;
    let client: Side;
    let inbound: TestInbound;
    let served: Served;

    beforeAll(async () => {
      server = side(t);
      client = side(t);
      inbound = new TestInbound();
      served = await server.transport.serve(ConformanceDescriptor, "conformance-1", inbound);
    });
    afterAll(async () => {
      await client?.transport.close();
      await server?.transport.close();
    });

    const call = (method: string, payload: unknown, headers: EnvelopeHeaders = {}, ms = 5000) =>
      client.transport.call(served.endpoint, envelope(method, payload, headers), within(ms));

    it("empty call: an empty request gets an empty reply", async () => {
      const reply = await call("empty", {});
      expect(reply.kind).toBe("reply");
      expect(reply.payload ?? null).toBeNull();
    });

    it("large call: about 270 KB in, 310 KB out", async () => {
      const reply = await call("unary", { payload: "q".repeat(271_828), responseSize: 314_159 });
      expect(reply.kind).toBe("reply");
      const out = reply.payload as { payload: string; inputLength: number };
      expect(out.payload.length).toBe(314_159);
      expect(out.inputLength).toBe(271_828);
    });

    it("status code and message: code, message, error name and fields arrive intact", async () => {
      const plain = wireError(await call("fail", { code: "PERMISSION_DENIED", message: "nope: ünïcode ✓" }));
      expect(plain).toMatchObject({ code: "PERMISSION_DENIED", message: "nope: ünïcode ✓" });
      const typed = wireError(await call("fail", { code: "FAILED_PRECONDITION", message: "I'm a teapot" }));
      expect(typed).toEqual({
        code: "FAILED_PRECONDITION",
        message: "I'm a teapot",
        error: "fan.conformance.Teapot",
        details: { reason: "short and stout" },
      });
    });

    it("custom headers round trip: trace, deadline and custom headers reach the handler and come back", async () => {
      const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
      const sent = {
        traceparent,
        tracestate: "fan=1",
        shard: 7,
        "x-tenant": "acme",
        "Mixed-Case": "Ünïcode ✓",
        count: 42,
        attempt: 3,
      };
      const reply = await call("headers", {}, sent);
      const seen = inbound.calls.at(-1) as Envelope;
      expect(seen.headers).toMatchObject(sent);
      expect(typeof seen.headers.deadline).toBe("number");
      expect(Math.abs((seen.headers.deadline as number) - (Date.now() + 5000))).toBeLessThan(2000);
      expect(reply.headers).toMatchObject(sent);
      expect(reply.payload).toMatchObject({ traceparent, "x-tenant": "acme", count: "42" });
    });

    it("unknown method: UNIMPLEMENTED", async () => {
      const reply = await call("nope", {});
      expect(wireError(reply).code).toBe("UNIMPLEMENTED");
    });

    it("unknown service: fails with the transport's code, and the server keeps serving", async () => {
      const codes = t.unknownService ?? ["NOT_FOUND"];
      const env = envelope("echo", { n: 1 }, {}, "fan.conformance.Nobody");
      const outcome = await client.transport.call(served.endpoint, env, within(500)).then(
        (reply) => wireError(reply).code,
        (e: unknown) => FanError.from(e).code,
      );
      expect(codes).toContain(outcome);
      expect((await call("echo", { n: 2 })).payload).toMatchObject({ n: 2 });
    });

    it("a 1 ms deadline on a sleeping handler: DEADLINE_EXCEEDED, promptly", async () => {
      const t0 = Date.now();
      // The client's deadline or the server's (it got the deadline header) may fire first.
      const outcome = await call("sleep", { ms: 2000 }, {}, 1).then(
        (reply) => wireError(reply).code,
        (e: unknown) => FanError.from(e).code,
      );
      expect(outcome).toBe("DEADLINE_EXCEEDED");
      expect(Date.now() - t0).toBeLessThan(1000);
    });

    it("cancellation: the caller's abort rejects with CANCELLED and the server sees it", async () => {
      const ac = new AbortController();
      const env = envelope("sleep", { ms: 5000 });
      const pending = client.transport.call(served.endpoint, env, within(10_000, ac.signal));
      await until(() => inbound.calls.some((c) => c.id === env.id));
      ac.abort();
      const err = await rejection(() => pending);
      expect(err.code).toBe("CANCELLED");
      await until(() => inbound.cancelled.includes(env.id));
    });

    it("1,000 concurrent in-flight calls are all answered correctly", async () => {
      const replies = await Promise.all(
        Array.from({ length: 1000 }, (_, n) => call("echo", { n, text: `t${n}` }, {}, 20_000)),
      );
      replies.forEach((r, n) => {
        expect(r.kind).toBe("reply");
        expect(r.payload).toMatchObject({ n, text: `t${n}` });
      });
    });

    it("oversize payload: RESOURCE_EXHAUSTED, and the server still serves", async () => {
      const outcome = await call("unary", { payload: "x".repeat(SUITE_MAX_PAYLOAD + 1), responseSize: 1 }).then(
        (reply) => wireError(reply).code,
        (e: unknown) => FanError.from(e).code,
      );
      expect(outcome).toBe("RESOURCE_EXHAUSTED");
      const big = await call("unary", { payload: "", responseSize: SUITE_MAX_PAYLOAD + 1 }).then(
        (reply) => wireError(reply).code,
        (e: unknown) => FanError.from(e).code,
      );
      expect(big).toBe("RESOURCE_EXHAUSTED");
      expect((await call("echo", { n: 3 })).payload).toMatchObject({ n: 3 });
    });

    describe.runIf(t.raw !== undefined)("malformed input on the raw socket", () => {
      it("garbage bytes are answered or dropped with a log line, and the server still serves", async () => {
        const before = server.log.records().filter((r) => r.level >= 40).length;
        await t.raw?.garbage(served.endpoint);
        await until(() => server.log.records().filter((r) => r.level >= 40).length > before);
        expect((await call("echo", { n: 4 })).payload).toMatchObject({ n: 4 });
      });

      it("a __proto__ payload is refused, and the server still serves", async () => {
        const calls = inbound.calls.length;
        const sawRefusal = await t.raw?.proto(served.endpoint);
        if (sawRefusal !== true) {
          await until(() =>
            server.log
              .records()
              .some((r) => r.level >= 40 && JSON.stringify(r).includes('forbidden key \\"__proto__\\"')),
          );
        }
        expect((await call("echo", { n: 5 })).payload).toMatchObject({ n: 5 });
        expect(inbound.calls.slice(calls).every((c) => !JSON.stringify(c.payload).includes("polluted"))).toBe(true);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      });
    });

    pushCases(t, () => ({ server, client, inbound, served }));
    if (t.events) eventCases(t);
    stopCases(t);
  });
}

interface Fixture {
  readonly server: Side;
  readonly client: Side;
  readonly inbound: TestInbound;
  readonly served: Served;
}

function pushCases(t: TransportUnderTest, fx: () => Fixture): void {
  describe("push", () => {
    const push = (id: string, failures = 0) =>
      fx().client.transport.push(fx().served.endpoint, envelope("record", { id, failures }), within(10_000));

    it("is delivered exactly once when the handler succeeds", async () => {
      await Promise.all(Array.from({ length: 20 }, (_, i) => push(`once-${i}`)));
      await settle(t);
      for (let i = 0; i < 20; i++) expect(fx().inbound.delivered(`once-${i}`)).toHaveLength(1);
    });

    it("is delivered again after a handler failure, with the attempt counted", async () => {
      await push("again", 2);
      await until(() => fx().inbound.delivered("again").length > 0);
      const seen = fx().inbound.pushes.filter((p) => p.id === "again");
      expect(seen.map((p) => p.ok)).toEqual([false, false, true]);
      expect(seen.map((p) => p.attempt)).toEqual([1, 2, 3]);
    });

    it.runIf(t.deadLetter !== undefined)("goes to the dead-letter queue after N failures", async () => {
      const dl = t.deadLetter as NonNullable<TransportUnderTest["deadLetter"]>;
      await push("doomed", dl.after + 5).catch(() => undefined);
      await until(async () =>
        (await dl.read(ConformanceDescriptor, "record")).some((e) => (e.payload as { id?: string }).id === "doomed"),
      );
      expect(fx().inbound.delivered("doomed")).toHaveLength(0);
    });
  });

  describe("push across a consumer crash", () => {
    it(
      t.pushRedelivery === "broker"
        ? "is delivered again to the next consumer"
        : "rejects, so the sender knows it was not acknowledged",
      async () => {
        const crashing = side(t);
        const stuck = new HangingInbound();
        const served = await crashing.transport.serve(ConformanceDescriptor, "crashing", stuck);
        const client = side(t);
        const pending = client.transport.push(served.endpoint, envelope("record", { id: "crash" }), within(8000)).then(
          () => "acked",
          (e: unknown) => FanError.from(e).code,
        );
        await until(() => stuck.received > 0);
        await crashing.transport.close();
        if (t.pushRedelivery === "sender") {
          expect(await pending).not.toBe("acked");
        } else {
          const next = side(t);
          const inbound = new TestInbound("next");
          await next.transport.serve(ConformanceDescriptor, "next", inbound);
          await until(() => inbound.delivered("crash").length === 1);
          await next.transport.close();
          expect(await pending).toBe("acked");
        }
        await client.transport.close();
      },
    );
  });
}

/** An Inbound whose pushes never finish: a consumer that dies mid-handler. */
class HangingInbound extends TestInbound {
  received = 0;
  override push(): Promise<void> {
    this.received++;
    return new Promise(() => undefined);
  }
}

function eventCases(t: TransportUnderTest): void {
  describe("events", () => {
    const sides: Side[] = [];
    afterEach(async () => {
      await Promise.all(sides.splice(0).map((s) => s.transport.close()));
    });

    async function subscriber(
      group: string,
      instanceId: string,
      event: string,
      broadcast: boolean,
      got: number[],
    ): Promise<void> {
      const s = side(t);
      sides.push(s);
      const sub: EventSubscription = { source: ConformanceDescriptor, event, group, instanceId, broadcast };
      await s.transport.subscribe(sub, async (env) => {
        got.push((env.payload as { n: number }).n);
      });
    }

    async function publish(event: string, count: number): Promise<void> {
      const pub = side(t);
      sides.push(pub);
      for (let n = 0; n < count; n++) {
        await pub.transport.publish({ ...envelope(event, { n }), kind: "event" }, within(5000));
      }
    }

    it("fan-out: every subscribing service gets each event once, load-balanced across its instances", async () => {
      const a1: number[] = [];
      const a2: number[] = [];
      const b1: number[] = [];
      await subscriber("svc.A", "a1", "ping", false, a1);
      await subscriber("svc.A", "a2", "ping", false, a2);
      await subscriber("svc.B", "b1", "ping", false, b1);
      await publish("ping", 40);
      await until(() => a1.length + a2.length === 40 && b1.length === 40);
      await settle(t);
      expect([...a1, ...a2].sort((x, y) => x - y)).toEqual(range(40));
      expect(a1.length).toBeGreaterThan(0);
      expect(a2.length).toBeGreaterThan(0);
      expect([...b1].sort((x, y) => x - y)).toEqual(range(40));
    });

    it("broadcast: every instance of every subscriber gets each event", async () => {
      const got: number[][] = [[], [], []];
      await subscriber("svc.A", "a1", "flush", true, got[0] as number[]);
      await subscriber("svc.A", "a2", "flush", true, got[1] as number[]);
      await subscriber("svc.B", "b1", "flush", true, got[2] as number[]);
      await publish("flush", 10);
      await until(() => got.every((g) => g.length === 10));
      await settle(t);
      for (const g of got) expect([...g].sort((x, y) => x - y)).toEqual(range(10));
    });
  });
}

function stopCases(t: TransportUnderTest): void {
  describe("graceful stop", () => {
    it("drains in-flight calls: a call in progress at stop() is still answered", async () => {
      const server = side(t);
      const client = side(t);
      const inbound = new TestInbound();
      const served = await server.transport.serve(ConformanceDescriptor, "draining", inbound);
      const env = envelope("sleep", { ms: 300 });
      const pending = client.transport.call(served.endpoint, env, within(5000));
      await until(() => inbound.active > 0);
      await served.stop();
      const reply = await pending;
      expect(reply.kind).toBe("reply");
      await client.transport.close();
      await server.transport.close();
    });

    it("close never hangs, even with a call in flight", async () => {
      const server = side(t);
      const client = side(t);
      const inbound = new TestInbound();
      const served = await server.transport.serve(ConformanceDescriptor, "closing", inbound);
      const pending = client.transport
        .call(served.endpoint, envelope("sleep", { ms: 60_000 }), within(20_000))
        .catch((e: unknown) => FanError.from(e));
      await until(() => inbound.active > 0);
      const t0 = Date.now();
      await Promise.all([server.transport.close(), client.transport.close()]);
      expect(Date.now() - t0).toBeLessThan(5000);
      const outcome = await pending;
      expect(FanError.is(outcome) || (outcome as Envelope).kind === "error").toBe(true);
    });
  });
}

/** Waits until `cond` holds (polling), failing after `ms`. */
export async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms: ${cond.toString()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Gives a broker a moment to deliver duplicates, if it would. */
async function settle(t: TransportUnderTest): Promise<void> {
  await new Promise((r) => setTimeout(r, t.pushRedelivery === "broker" ? 300 : 50));
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
