/**
 * The http surface as a curl user or a proxy sees it: paths, `@route`s, status codes, limits,
 * header mapping, and failures the client maps to FanError codes.
 */
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CallSignal, signalOf } from "../../src/runtime/transports/abort.js";
import type { Envelope, EnvelopeHeaders, Inbound, Served, Transport } from "../../src/runtime/transports/transport.js";
import { fromHttpHeaders, toHttpHeaders } from "../../src/runtime/transports/http/headers.js";
import { httpTransport } from "../../src/runtime/transports/http/index.js";
import { envelope, rejection, until, within } from "./conformance.js";
import { ConformanceDescriptor, OtherDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { httpRequest, rawExchange } from "./fixtures/raw-http.js";

const C = ConformanceDescriptor.name;
const MAX = 64 * 1024;

function transport(maxPayloadBytes = MAX): Transport {
  return httpTransport({ closeGraceMs: 200, maxHeaderBytes: 8 * 1024 })({
    cluster: "t",
    log: captureLog().log,
    maxPayloadBytes,
  });
}

describe("http surface", () => {
  let server: Transport;
  let client: Transport;
  let inbound: TestInbound;
  let other: TestInbound;
  let served: Served;
  let base: string;

  beforeAll(async () => {
    server = transport();
    client = transport();
    inbound = new TestInbound("conformance");
    other = new TestInbound("other");
    served = await server.serve(ConformanceDescriptor, "c1", inbound);
    await server.serve(OtherDescriptor, "o1", other);
    base = served.endpoint;
  });
  afterAll(async () => {
    await client.close();
    await server.close();
  });

  it("serves POST /{service}/{method} with a JSON body, as curl sends it", async () => {
    const a = await httpRequest(base, "POST", `/${C}/echo`, '{"n":7,"text":"hi"}', {
      "content-type": "application/json",
      "fan-timeout": "1500",
      "fan-h-tenant": "acme",
    });
    expect(a.status).toBe(200);
    expect(a.headers["fan-kind"]).toBe("reply");
    expect(JSON.parse(a.body)).toMatchObject({ n: 7, text: "hi" });
    const seen = inbound.calls.at(-1);
    expect(seen?.headers.tenant).toBe("acme");
    expect(seen?.headers.deadline).toBeGreaterThan(Date.now());
    expect(seen?.headers.deadline).toBeLessThanOrEqual(Date.now() + 1500);
  });

  it("an empty body is an empty parameter object; a void reply is 204", async () => {
    const a = await httpRequest(base, "POST", `/${C}/empty`);
    expect(a.status).toBe(204);
    expect(inbound.calls.at(-1)?.payload).toEqual({});
  });

  it("keeps services apart on one port", async () => {
    const a = await httpRequest(base, "POST", `/${OtherDescriptor.name}/echo`, '{"n":1}');
    expect(JSON.parse(a.body)).toMatchObject({ n: 1, served: "other" });
  });

  it("serves @route paths: GET binds path and query parameters with their types", async () => {
    const a = await httpRequest(base, "GET", "/conformance/echo/42?text=caf%C3%A9&ignored=1");
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body)).toEqual({ n: 42, text: "café", served: "conformance" });
    expect(inbound.calls.at(-1)?.method).toBe("routed");
  });

  it("serves @route paths: POST merges the body with the path parameters (path wins)", async () => {
    const a = await httpRequest(base, "POST", "/conformance/note/5", '{"n":99,"text":"body"}');
    expect(JSON.parse(a.body)).toEqual({ n: 5, text: "body", served: "conformance" });
  });

  it("a route answers its own verb only: GET (and HEAD) runs `routed`, DELETE on the same path `forget`", async () => {
    const del = await httpRequest(base, "DELETE", "/conformance/echo/8?text=gone");
    expect(del.status).toBe(200);
    expect(JSON.parse(del.body)).toEqual({ n: 8, text: "gone", served: "conformance" });
    expect(inbound.calls.at(-1)?.method).toBe("forget");
    // A body sent with a DELETE is not read as parameters: `text`, which the query string would
    // bind, is absent when only the body has it (node's client sends no body without a length).
    const ignored = '{"text":"from the body"}';
    const bodied = await httpRequest(base, "DELETE", "/conformance/echo/9", ignored, {
      "content-length": String(ignored.length),
    });
    expect([bodied.status, JSON.parse(bodied.body)]).toEqual([200, { n: 9, served: "conformance" }]);
    expect(inbound.calls.at(-1)?.payload).toEqual({ n: 9 });
    const head = await httpRequest(base, "HEAD", "/conformance/echo/8");
    expect([head.status, head.body]).toEqual([200, ""]);
    expect(inbound.calls.at(-1)?.method).toBe("routed");
  });

  it("POST /{service}/{method} reaches the method even when a route `/{a}/{b}` matches its path", async () => {
    const t = transport();
    try {
      const name = "fan.conformance.Catchall";
      const caught = new TestInbound("catchall");
      const { endpoint } = await t.serve(
        {
          ...OtherDescriptor,
          name,
          methods: {
            ...OtherDescriptor.methods,
            note: { ...ConformanceDescriptor.methods.note!, route: { path: "/{text}/{n}", params: ["text", "n"] } },
          },
        },
        "x1",
        caught,
      );
      const named = await httpRequest(endpoint, "POST", `/${name}/echo`, '{"n":3}');
      expect([named.status, JSON.parse(named.body)]).toEqual([200, { n: 3, served: "catchall" }]);
      expect(caught.calls.at(-1)?.method).toBe("echo");
      // Any other two segments are the route's.
      const routed = await httpRequest(endpoint, "POST", "/hi/4", "{}");
      expect([routed.status, JSON.parse(routed.body)]).toEqual([200, { n: 4, text: "hi", served: "catchall" }]);
      expect(caught.calls.at(-1)?.method).toBe("note");
    } finally {
      await t.close();
    }
  });

  it("any other verb on a route's path: 405, Allow naming the path's verbs, UNIMPLEMENTED, and no handler runs", async () => {
    const before = inbound.calls.length;
    const cases: [string, string, string][] = [
      ["POST", "/conformance/echo/5", "GET, HEAD, DELETE"],
      ["PUT", "/conformance/echo/5", "GET, HEAD, DELETE"],
      ["GET", "/conformance/note/5", "POST"],
      ["DELETE", "/conformance/note/5", "POST"],
      ["HEAD", "/conformance/note/5", "POST"],
      ["PATCH", "/conformance/note/5", "POST"],
    ];
    for (const [verb, path, allow] of cases) {
      const a =
        verb === "HEAD"
          ? await httpRequest(base, verb, path)
          : await httpRequest(base, verb, path, '{"text":"x"}', { "content-length": "12" });
      expect([a.status, a.headers.allow], `${verb} ${path}`).toEqual([405, allow]);
      if (verb !== "HEAD")
        expect(JSON.parse(a.body)).toEqual({
          code: "UNIMPLEMENTED",
          message: `${verb} ${path} is not served; ${path} takes ${allow}`,
        });
    }
    expect(inbound.calls.length).toBe(before);
  });

  it("maps errors to HTTP status with a WireError body", async () => {
    const a = await httpRequest(base, "POST", `/${C}/fail`, '{"code":"PERMISSION_DENIED","message":"no"}');
    expect(a.status).toBe(403);
    expect(a.headers["fan-kind"]).toBe("error");
    expect(JSON.parse(a.body)).toEqual({ code: "PERMISSION_DENIED", message: "no" });
  });

  it("404 for unknown paths and services, 501 for an unknown method; 405 for GET on a method path", async () => {
    for (const path of ["/", "/nothing/here/at/all", `/no.Such/echo`]) {
      const a = await httpRequest(base, "POST", path, "{}");
      expect(a.status, path).toBe(404);
      expect(JSON.parse(a.body).code).toBe("NOT_FOUND");
    }
    // As the App's dispatcher answers it (docs/runtime.md), on every transport.
    const m = await httpRequest(base, "POST", `/${C}/nope`, "{}");
    expect(m.status).toBe(501);
    expect(JSON.parse(m.body)).toEqual({ code: "UNIMPLEMENTED", message: `unknown method ${C}/nope` });
    const g = await httpRequest(base, "GET", `/${C}/echo`);
    expect(g.status).toBe(405);
    expect(g.headers.allow).toBe("POST");
    expect(JSON.parse(g.body)).toEqual({
      code: "UNIMPLEMENTED",
      message: `GET /${C}/echo is not served; /${C}/echo takes POST`,
    });
  });

  it("400 INVALID_ARGUMENT for malformed JSON, bad headers and non-object routed bodies", async () => {
    expect((await httpRequest(base, "POST", `/${C}/echo`, "{nope")).status).toBe(400);
    expect((await httpRequest(base, "POST", `/${C}/echo`, "{}", { "fan-deadline": "soon" })).status).toBe(400);
    expect((await httpRequest(base, "POST", `/${C}/echo`, "{}", { "fan-headers": '{"a":{"b":1}}' })).status).toBe(400);
    expect((await httpRequest(base, "POST", "/conformance/note/1", "[1]")).status).toBe(400);
    expect((await httpRequest(base, "POST", `/${C}/echo`, "{}", { "fan-h-__proto__": "x" })).status).toBe(400);
    expect((await httpRequest(base, "POST", `/${C}/echo`, "{}", { "fan-headers": '{"__proto__":"x"}' })).status).toBe(
      400,
    );
    expect((await httpRequest(base, "POST", `/${C}/echo`, `${"[".repeat(100)}${"]".repeat(100)}`)).status).toBe(400);
  });

  it("400 INVALID_ARGUMENT naming the part for a path or query of malformed percent-encoding, not a 404", async () => {
    const cases: Array<[string, string, string]> = [
      ["POST", `/${C}/echo%ZZ`, 'the path segment "echo%ZZ"'],
      ["POST", `/${C}/ech%E0%A4%A`, 'the path segment "ech%E0%A4%A"'],
      ["GET", "/conformance/note/1?x=%G1", 'the query string part "%G1"'],
      ["POST", "/nothing%/here", 'the path segment "nothing%"'],
    ];
    for (const [verb, path, part] of cases) {
      const a = await httpRequest(base, verb, path, verb === "GET" ? undefined : "{}");
      expect(a.status, path).toBe(400);
      expect(JSON.parse(a.body), path).toEqual({
        code: "INVALID_ARGUMENT",
        message: `malformed percent-encoding in ${part}: a % must start an escape of two hex digits, and the escapes must spell UTF-8`,
      });
    }
    // A well-formed escape still reaches the method.
    expect((await httpRequest(base, "POST", `/${C}/ech%6F`, '{"n":1,"text":"x"}')).status).toBe(200);
  });

  it("413 for a declared body over the limit, without reading it", async () => {
    const head = `POST /${C}/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${MAX + 1}\r\n\r\n`;
    const answer = await rawExchange(base, head);
    expect(answer).toMatch(/^HTTP\/1\.1 413/);
    expect(answer).toContain("RESOURCE_EXHAUSTED");
  });

  it("413 for a chunked body that grows past the limit", async () => {
    const chunk = "x".repeat(16 * 1024);
    const size = chunk.length.toString(16);
    const head = `POST /${C}/echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n`;
    const body = Array.from({ length: 6 }, () => `${size}\r\n${chunk}\r\n`).join("");
    const answer = await rawExchange(base, head + body);
    expect(answer).toMatch(/^HTTP\/1\.1 413/);
    expect((await httpRequest(base, "POST", `/${C}/echo`, '{"n":1}')).status).toBe(200);
  });

  it("431 for a header block over the limit", async () => {
    const a = await rawExchange(base, `POST /${C}/echo HTTP/1.1\r\nhost: x\r\nx-big: ${"y".repeat(10_000)}\r\n\r\n`);
    expect(a).toMatch(/^HTTP\/1\.1 431/);
  });

  it("a push POSTed by curl is answered 202 once the handler has finished", async () => {
    const a = await httpRequest(base, "POST", `/${C}/record`, '{"id":"curl-push"}');
    expect(a.status).toBe(202);
    expect(inbound.delivered("curl-push")).toHaveLength(1);
  });

  it("a push the handler keeps failing is retried, then rejected with UNAVAILABLE", async () => {
    const err = await rejection(() =>
      client.push(base, envelope("record", { id: "always-fails", failures: 100 }), within(5000)),
    );
    expect(err.code).toBe("UNAVAILABLE");
    expect(inbound.pushes.filter((p) => p.id === "always-fails")).toHaveLength(5);
  });

  it("a stopped instance answers 503 UNAVAILABLE, and serving again brings it back", async () => {
    const s = transport();
    const mine = new TestInbound();
    const one = await s.serve(OtherDescriptor, "x", mine);
    await one.stop();
    const a = await httpRequest(one.endpoint, "POST", `/${OtherDescriptor.name}/echo`, '{"n":1}');
    expect(a.status).toBe(503);
    const again = await s.serve(OtherDescriptor, "y", mine);
    expect((await httpRequest(again.endpoint, "POST", `/${OtherDescriptor.name}/echo`, '{"n":2}')).status).toBe(200);
    await s.close();
  });

  it("UNAVAILABLE when nothing listens, CANCELLED when already aborted", async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const err = await rejection(() =>
      client.call(`http://127.0.0.1:${port}`, envelope("echo", { n: 1 }), within(2000)),
    );
    expect(err.code).toBe("UNAVAILABLE");
    const ac = new AbortController();
    ac.abort();
    expect((await rejection(() => client.call(base, envelope("echo", { n: 1 }), within(2000, ac.signal)))).code).toBe(
      "CANCELLED",
    );
  });

  it("a reply over the client's limit is RESOURCE_EXHAUSTED (undici maxResponseSize)", async () => {
    const small = transport(1000);
    const err = await rejection(() =>
      small.call(base, envelope("unary", { payload: "", responseSize: 5000 }), within(2000)),
    );
    expect(err.code).toBe("RESOURCE_EXHAUSTED");
    await small.close();
  });

  it("publish and subscribe fail with UNIMPLEMENTED", async () => {
    expect(
      (await rejection(() => client.publish({ ...envelope("echo", {}), kind: "event", method: "ping" }, within(100))))
        .code,
    ).toBe("UNIMPLEMENTED");
    const sub = { source: ConformanceDescriptor, event: "ping", group: "g", instanceId: "i", broadcast: false };
    expect((await rejection(() => client.subscribe(sub, async () => undefined))).code).toBe("UNIMPLEMENTED");
  });

  describe("answers from something that is not a fan server", () => {
    let foreign: Server;
    let url: string;
    beforeAll(async () => {
      foreign = createServer((req, res) => {
        if (req.url?.includes("slow")) return;
        res.writeHead(req.url?.includes("gateway") ? 502 : 200, { "content-type": "text/plain" }).end("not json");
      });
      await new Promise<void>((r) => foreign.listen(0, "127.0.0.1", r));
      url = `http://127.0.0.1:${(foreign.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      foreign.closeAllConnections();
      await new Promise<void>((r) => foreign.close(() => r()));
    });

    it("a 502 becomes an UNAVAILABLE error envelope", async () => {
      const reply = await client.call(url, { ...envelope("echo", {}), service: "gateway" }, within(2000));
      expect(reply.kind).toBe("error");
      expect(reply.payload).toMatchObject({ code: "UNAVAILABLE" });
    });

    it("a 200 that is not JSON is a failure, not a reply", async () => {
      const err = await rejection(() => client.call(url, envelope("echo", {}), within(2000)));
      expect(err.code).toBe("INTERNAL");
    });

    it("no answer within the deadline is DEADLINE_EXCEEDED", async () => {
      const err = await rejection(() => client.call(url, { ...envelope("echo", {}), service: "slow" }, within(100)));
      expect(err.code).toBe("DEADLINE_EXCEEDED");
    });
  });
});

describe("http client answers", () => {
  // The client decodes only the reply headers it reads (fan-*, traceparent, tracestate), by
  // their first byte: whatever the case they arrive in, repeated ones joined, the rest ignored.
  let foreign: Server;
  let url: string;
  let hold: (() => void) | undefined;
  beforeAll(async () => {
    foreign = createServer((req, res) => {
      if (req.url?.endsWith("/never") === true) {
        hold = () => res.destroy();
        return;
      }
      res.setHeader("Fan-Kind", "reply");
      res.setHeader("FAN-H-TENANT", "acme");
      res.setHeader("fan-h-tag", ["a", "b"]);
      res.setHeader("TraceParent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
      res.setHeader("tracestate", "k=v");
      res.setHeader("fan-headers", '{"Mixed":2}');
      res.setHeader("transfer-coding-note", "ignored");
      res.setHeader("x-other", "ignored");
      res.setHeader("content-type", "application/json");
      res.end('{"n":1}');
    });
    await new Promise<void>((r) => foreign.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(foreign.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    hold?.();
    await new Promise<void>((r) => foreign.close(() => r()));
  });

  it("reads fan and trace headers in any case, joins repeated ones, ignores the others", async () => {
    const client = transport();
    const reply = await client.call(url, envelope("echo", { n: 1 }), within(2000));
    await client.close();
    expect(reply.kind).toBe("reply");
    expect(reply.payload).toEqual({ n: 1 });
    expect(reply.headers).toEqual({
      tenant: "acme",
      tag: "a, b",
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      tracestate: "k=v",
      Mixed: 2,
    });
  });

  it("a caller's signal that aborts while the call waits cancels it", async () => {
    const client = transport();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const t0 = Date.now();
    const err = await rejection(() =>
      client.call(url, { ...envelope("echo", {}), method: "never" }, within(5000, ac.signal)),
    );
    expect(err.code).toBe("CANCELLED");
    expect(Date.now() - t0).toBeLessThan(2000);
    await client.close();
  });
});

describe("http server cancels", () => {
  it("a caller that goes away mid-call aborts the handler's signal, read before or after it left", async () => {
    const server = transport();
    const signals: CallSignal[] = [];
    let readAtOnce: AbortSignal | undefined;
    let finish: (() => void) | undefined;
    const inbound: Inbound = {
      call: (env: Envelope, signal: CallSignal) => {
        signals.push(signal);
        if (signals.length === 1) readAtOnce = signalOf(signal); // the first call reads it while it runs
        return new Promise<Envelope>((resolve) => {
          finish = () => resolve({ ...env, kind: "reply", payload: {} });
        });
      },
      push: async () => undefined,
    };
    const served = await server.serve(ConformanceDescriptor, "s1", inbound);
    const goAway = (): Promise<void> =>
      new Promise((resolve) => {
        const n = signals.length;
        const req = request(`${served.endpoint}/${C}/echo`, { method: "POST" });
        req.on("error", () => resolve());
        req.end("{}");
        void until(() => signals.length > n).then(() => req.destroy());
      });
    await goAway();
    await until(() => readAtOnce?.aborted === true);
    expect(readAtOnce?.reason).toMatchObject({ code: "CANCELLED" });
    finish?.();
    await goAway();
    await new Promise((r) => setTimeout(r, 100));
    const readLate = signalOf(signals[1] as CallSignal); // first read after the caller left
    expect(readLate.aborted).toBe(true);
    expect(readLate.reason).toMatchObject({ code: "CANCELLED" });
    finish?.();
    await server.close();
  });
});

describe("http header mapping", () => {
  const name = fc.oneof(
    fc.constantFrom("traceparent", "tracestate", "shard", "replyTo", "x-tenant", "Mixed", "ünï", "a b"),
    fc.string({ minLength: 1, maxLength: 12 }),
  );
  const value = fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.string({ unit: "grapheme", maxLength: 8 }));

  it("round-trips any header names and values through HTTP headers", () => {
    fc.assert(
      fc.property(fc.dictionary(name, value), (raw) => {
        const headers: EnvelopeHeaders = {};
        for (const [k, v] of Object.entries(raw)) {
          if (["deadline", "ttl", "attempt", "__proto__", "constructor", "prototype"].includes(k)) continue;
          if (["traceparent", "tracestate", "shard", "replyTo"].includes(k) && typeof v !== "string") continue;
          headers[k] = v;
        }
        const http = toHttpHeaders(headers);
        for (const v of Object.values(http)) expect(v).toMatch(/^[\x20-\x7e]*$/);
        const lower = Object.fromEntries(Object.entries(http).map(([k, v]) => [k.toLowerCase(), v]));
        expect(fromHttpHeaders(lower)).toEqual(headers);
      }),
      { numRuns: 300 },
    );
  });

  it("numbers stay numbers for deadline, ttl and attempt", () => {
    const h = fromHttpHeaders(toHttpHeaders({ deadline: 1234567890123, ttl: 5, attempt: 2 }));
    expect(h).toEqual({ deadline: 1234567890123, ttl: 5, attempt: 2 });
  });

  it("fan-timeout turns into an absolute deadline, never later than fan-deadline", () => {
    const now = Date.now();
    expect(fromHttpHeaders({ "fan-timeout": "1000" }).deadline).toBeGreaterThanOrEqual(now + 1000);
    expect(fromHttpHeaders({ "fan-timeout": "100000", "fan-deadline": String(now + 5) }).deadline).toBe(now + 5);
  });
});

describe("http close", () => {
  it("close of a transport that never served or called returns at once", async () => {
    const t = transport();
    const t0 = Date.now();
    await t.close();
    expect(Date.now() - t0, "nothing to wait for: no grace period").toBeLessThan(2000);
  });

  it("a call after close fails with UNAVAILABLE", async () => {
    const s = transport();
    const served = await s.serve(OtherDescriptor, "z", new TestInbound());
    const c = transport();
    await c.close();
    expect(
      (
        await rejection(() =>
          c.call(served.endpoint, envelope("echo", { n: 1 }, {}, OtherDescriptor.name), within(500)),
        )
      ).code,
    ).toBe("UNAVAILABLE");
    await s.close();
    await until(() => true);
  });
});
