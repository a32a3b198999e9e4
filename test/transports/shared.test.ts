import { describe, expect, it } from "vitest";
import { LazyAbort, onAbort, signalOf, unwatchAbort, watchAbort } from "../../src/runtime/transports/abort.js";
import { brokerEndpointParser, formatBrokerEndpoint } from "../../src/runtime/transports/endpoint.js";
import { Code, FanError } from "../../src/runtime/errors.js";
import { ReplySink, runWithSink } from "../../src/runtime/transports/replies.js";
import type { Envelope, Inbound } from "../../src/runtime/transports/transport.js";

describe("shared abort listening", () => {
  it("adds one listener per signal however many calls register, and calls each once", () => {
    const ac = new AbortController();
    let added = 0;
    const add = ac.signal.addEventListener.bind(ac.signal);
    ac.signal.addEventListener = ((...args: Parameters<typeof add>) => {
      added++;
      add(...args);
    }) as typeof ac.signal.addEventListener;
    const seen: number[] = [];
    const stops = Array.from({ length: 100 }, (_, i) => onAbort(ac.signal, () => seen.push(i)));
    stops[7]?.();
    const target = {
      n: 0,
      aborted() {
        this.n++;
      },
    };
    watchAbort(ac.signal, target);
    ac.abort();
    ac.abort();
    expect(added).toBe(1);
    expect(seen).toHaveLength(99);
    expect(seen).not.toContain(7);
    expect(target.n).toBe(1);
  });

  it("tells registrations on an already-aborted signal soon, unless they stop first", async () => {
    const ac = new AbortController();
    ac.abort();
    let fired = 0;
    onAbort(ac.signal, () => fired++);
    const stop = onAbort(ac.signal, () => fired++);
    stop();
    const target = {
      n: 0,
      aborted() {
        this.n++;
      },
    };
    const gone = {
      n: 0,
      aborted() {
        this.n++;
      },
    };
    watchAbort(ac.signal, target);
    watchAbort(ac.signal, gone);
    unwatchAbort(ac.signal, gone);
    expect(fired).toBe(0);
    await Promise.resolve();
    expect(fired).toBe(1);
    expect(target.n).toBe(1);
    expect(gone.n).toBe(0);
  });
});

describe("LazyAbort (a served call's cancellation, a signal only on demand)", () => {
  it("a signal asked for after the abort is already aborted", () => {
    const a = new LazyAbort();
    expect(a.aborted).toBe(false);
    a.abort();
    expect(a.aborted).toBe(true);
    expect(signalOf(a).aborted).toBe(true);
  });

  it("a signal asked for before the abort fires its listeners once, and is the same signal each time", () => {
    const a = new LazyAbort();
    const s = signalOf(a);
    expect(signalOf(a)).toBe(s);
    let fired = 0;
    s.addEventListener("abort", () => fired++);
    expect(s.aborted).toBe(false);
    a.abort();
    a.abort();
    expect(s.aborted).toBe(true);
    expect(fired).toBe(1);
  });

  it("keeps the abort's reason, whether the signal is made before or after it (the first abort wins)", () => {
    const before = new LazyAbort();
    const s = signalOf(before);
    const why = new Error("server closing");
    before.abort(why);
    before.abort(new Error("later"));
    expect(s.reason).toBe(why);
    const after = new LazyAbort();
    after.abort(why);
    expect(signalOf(after).reason).toBe(why);
    const plain = new LazyAbort();
    plain.abort();
    expect((signalOf(plain).reason as Error).name).toBe("AbortError");
  });

  it("a plain AbortSignal passes through signalOf unchanged", () => {
    const s = new AbortController().signal;
    expect(signalOf(s)).toBe(s);
  });
});

describe("broker endpoints", () => {
  it("round-trip cluster, service and version, encoded, and reject anything else with UNAVAILABLE", () => {
    const parse = brokerEndpointParser("redis");
    const a = { cluster: "prod/eu", service: "retail.wines.PublicWines", version: "2.1.0+build 7" };
    const e = formatBrokerEndpoint("redis", a);
    expect(e).toBe("redis://prod%2Feu/retail.wines.PublicWines/2.1.0%2Bbuild%207");
    expect(parse(e)).toEqual(a);
    expect(parse(e)).toBe(parse(e));
    expect(() => parse("amqp://c/s/v")).toThrow(
      expect.objectContaining({ code: "UNAVAILABLE", message: "not a redis endpoint: amqp://c/s/v" }),
    );
    expect(() => parse("redis://c/s")).toThrow(/not a redis endpoint/);
  });
});

describe("ReplySink (a served call reported by the dispatcher without a promise)", () => {
  const request: Envelope = {
    v: 1,
    id: "r-1",
    kind: "call",
    service: "svc.S",
    method: "m",
    version: "1.0.0",
    headers: { deadline: 1 },
    payload: { a: 1 },
  };
  class Collect extends ReplySink {
    readonly got: Envelope[] = [];
    protected answer(reply: Envelope): void {
      this.got.push(reply);
    }
  }
  const inbound = (run?: (env: Envelope, signal: unknown, sink: ReplySink) => void): Inbound =>
    ({
      call: () => Promise.reject(new Error("call() used")),
      push: () => Promise.resolve(),
      ...(run === undefined ? {} : { run }),
    }) as Inbound;

  it("answers a reply envelope naming the request and the served version, once", () => {
    const sink = new Collect(request, "1.2.0");
    expect(
      runWithSink(
        inbound((_e, _s, k) => k.reply({ b: 2 })),
        request,
        new LazyAbort(),
        sink,
      ),
    ).toBe(true);
    sink.reply({ b: 3 });
    sink.error({ code: Code.INTERNAL, message: "late" });
    expect(sink.got).toEqual([
      {
        v: 1,
        id: "r-1",
        kind: "reply",
        service: "svc.S",
        method: "m",
        version: "1.2.0",
        headers: {},
        payload: { b: 2 },
        form: "wire", // as Inbound.call's envelopes (dispatch.ts okReply)
      },
    ]);
  });

  it("a throw from run is the call's error; an inbound without run is left to call()", () => {
    const sink = new Collect(request, "1.2.0");
    const thrower = inbound(() => {
      throw new FanError(Code.UNAVAILABLE, "stopping");
    });
    expect(runWithSink(thrower, request, new LazyAbort(), sink)).toBe(true);
    expect(sink.got.map((e) => [e.kind, e.payload])).toEqual([["error", { code: "UNAVAILABLE", message: "stopping" }]]);
    const other = new Collect(request, "1.2.0");
    expect(runWithSink(inbound(), request, new LazyAbort(), other)).toBe(false);
    expect(other.got).toEqual([]);
  });
});
