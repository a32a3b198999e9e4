/**
 * `fanc gateway` in front of the Till service served on one transport in another process
 * (amqp, redis, zmq), called the way a user calls it: plain fetch (undici) and one curl.
 * rpc, push, a typed error with its fields, a deadline, an event over SSE, malformed input.
 */
import { execFile } from "node:child_process";
import { request } from "node:http";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { CapturedChild } from "../cli/helpers.js";
import { until } from "../cli/helpers.js";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { forgetCluster, runnable, uniqueCluster, up } from "../transports/processes.js";
import { type EventHub, startEventHub } from "../../src/runtime/transports/zmq/index.js";
import { type LocalGateway, openSse, startGateway, startService, stopChild } from "./helpers.js";

const TRACE = "0af7651916cd43dd8448eb211c80319c";
const post = (url: string, body: string, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(url, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });

for (const transport of ["amqp", "redis", "zmq"] as const) {
  const broker = transport === "zmq" ? "etcd" : `${transport} or etcd`;
  describeWithBroker(
    runnable(transport) && up.etcd,
    broker,
    `gateway -> ${transport}`,
  )(`gateway in front of Till on ${transport}`, () => {
    const cluster = uniqueCluster(`gw-${transport}`);
    let service: CapturedChild | undefined;
    let gw: LocalGateway | undefined;
    let base = "";
    // zmq events go through a hub, as in a deployment: the service and the gateway are told where it is.
    let hub: EventHub | undefined;

    beforeAll(async () => {
      let env: Record<string, string> = {};
      if (transport === "zmq") {
        hub = await startEventHub({});
        env = { FAN_ZMQ_EVENTS_PUBLISH: hub.publish, FAN_ZMQ_EVENTS_SUBSCRIBE: hub.subscribe };
      }
      service = await startService(transport, cluster, env);
      Object.assign(process.env, env); // the gateway's App reads them as the service's does
      try {
        gw = await startGateway(cluster, ["--transports", transport, "--cors", "https://shop.example"]);
      } finally {
        for (const k of Object.keys(env)) delete process.env[k];
      }
      base = `${gw.url}/fan.gw.Till`;
    }, 180_000);

    afterAll(async () => {
      try {
        // Bounded, so the service process is stopped even if the gateway's stop hangs.
        await Promise.race([gw?.stop(), new Promise((r) => setTimeout(r, 15_000))]);
      } finally {
        await stopChild(service);
        await hub?.close();
        await forgetCluster(cluster, [transport]);
      }
    }, 60_000);

    it("relays an rpc and carries the caller's trace through", async () => {
      const res = await post(`${base}/add`, '{"n":5,"by":"ann"}', { traceparent: `00-${TRACE}-b7ad6b7169203331-01` });
      expect(res.status).toBe(200);
      expect(res.headers.get("fan-kind")).toBe("reply");
      expect(res.headers.get("traceparent")).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
      expect(await res.json()).toEqual({ total: 5, by: "ann" });
      // The handler sees the same trace (the gateway's hop as parent), the deadline and a custom header.
      const seen = (await (
        await post(`${base}/seen`, "{}", { traceparent: `00-${TRACE}-b7ad6b7169203331-01`, "fan-h-tenant": "acme" })
      ).json()) as Record<string, string>;
      expect(seen.traceparent).toMatch(new RegExp(`^00-${TRACE}-`));
      expect(seen.traceparent).not.toContain("b7ad6b7169203331");
      expect(seen.tenant).toBe("acme");
      expect(Number(seen.deadline)).toBeGreaterThan(Date.now());
    }, 60_000);

    it("accepts a push (202) and the service handles it", async () => {
      const res = await post(`${base}/note`, `{"text":"via ${transport}"}`);
      expect(res.status).toBe(202);
      await until(
        "the service handled the push",
        () => service?.stdout().includes(`"text":"via ${transport}"`) === true,
        20_000,
      );
    }, 60_000);

    it("answers a typed IDL error with its status, name and fields", async () => {
      const res = await post(`${base}/take`, '{"n":1000}');
      expect(res.status).toBe(412);
      expect(res.headers.get("fan-kind")).toBe("error");
      expect(await res.json()).toEqual({
        code: "FAILED_PRECONDITION",
        message: expect.stringMatching(/^cannot take 1000 of \d+$/),
        error: "fan.gw.Overdrawn",
        details: { balance: expect.any(Number), asked: 1000 },
      });
    }, 60_000);

    it("ends a call at its fan-timeout with 504 DEADLINE_EXCEEDED, and the handler is cancelled", async () => {
      const t0 = Date.now();
      const res = await post(`${base}/sleep`, '{"ms":20000}', { "fan-timeout": "800" });
      const ms = Date.now() - t0;
      expect(res.status).toBe(504);
      expect(((await res.json()) as { code: string }).code).toBe("DEADLINE_EXCEEDED");
      expect(ms).toBeGreaterThanOrEqual(700);
      expect(ms).toBeLessThan(10_000);
      await until(
        "the handler saw its deadline",
        () => service?.stdout().includes('"event":"cancelled"') === true,
        20_000,
      );
    }, 60_000);

    it("cancels the call when the caller disconnects, and keeps serving", async () => {
      const cancelled = (): number => (service?.stdout() ?? "").split('"event":"cancelled"').length - 1;
      const seen = cancelled();
      const ac = new AbortController();
      const headers = { "content-type": "application/json" };
      const call = fetch(`${base}/sleep`, { method: "POST", body: '{"ms":20000}', headers, signal: ac.signal }).then(
        (r) => `answered ${r.status}`,
        (e: Error) => e.name,
      );
      // Let the call reach the service, then leave: an aborted fetch closes its connection.
      await new Promise((r) => setTimeout(r, 500));
      const t0 = Date.now();
      ac.abort();
      expect(await call).toBe("AbortError");
      // amqp and redis carry cancellations to the server: the handler's ctx.signal fires long before its 20 s.
      if (transport !== "zmq") {
        await until("the handler saw the caller leave", () => cancelled() > seen, 15_000);
        expect(Date.now() - t0).toBeLessThan(15_000);
      }
      const ok = await post(`${base}/peek`, '{"by":"after a disconnect"}');
      expect(ok.status).toBe(200);
    }, 60_000);

    it("streams an event over SSE", async () => {
      const sse = await openSse(`${gw?.url}/_fan/events/fan.gw.Till/added`);
      try {
        const res = await post(`${base}/add`, '{"n":2}');
        const { total } = (await res.json()) as { total: number };
        expect(JSON.parse(await sse.next())).toEqual({ n: 2, total });
      } finally {
        sse.close();
      }
    }, 60_000);

    it("refuses malformed input with 400 and a coded error, and keeps serving", async () => {
      const bad = await post(`${base}/add`, '{"n":');
      expect(bad.status).toBe(400);
      expect(await bad.json()).toMatchObject({
        code: "INVALID_ARGUMENT",
        message: expect.stringMatching(/^malformed JSON/),
      });
      const invalid = await post(`${base}/add`, '{"n":"two"}');
      expect(invalid.status).toBe(400);
      expect(await invalid.json()).toMatchObject({ code: "INVALID_ARGUMENT", details: { path: "n" } });
      const notObject = await post(`${base}/add`, "[1]");
      expect(notObject.status).toBe(400);
      const ok = await post(`${base}/peek`, '{"by":"still serving"}');
      expect(ok.status, await ok.clone().text()).toBe(200);
    }, 60_000);

    if (transport !== "redis") return;

    it("curl: an rpc, a @route GET, the IDL, health, 404 and CORS", async () => {
      const curl = promisify(execFile);
      const call = await curl("curl", [
        "-s",
        "-w",
        "\n%{http_code}",
        "-H",
        "content-type: application/json",
        "-d",
        '{"n":1}',
        `${base}/add`,
      ]);
      const [body, status] = call.stdout.split("\n");
      expect(status).toBe("200");
      expect(JSON.parse(body as string)).toMatchObject({ total: expect.any(Number) });
      const routed = await fetch(`${gw?.url}/till/bob/total`);
      expect(routed.status).toBe(200);
      expect(await routed.json()).toMatchObject({ by: "bob" });
      const idl = (await (await fetch(`${gw?.url}/_fan/idl`)).json()) as {
        services: string[];
        model: { packages: unknown[] };
      };
      expect(idl.services).toEqual(["fan.gw.Till"]);
      expect(idl.model.packages).toHaveLength(1);
      expect(await (await fetch(`${gw?.url}/health`)).json()).toMatchObject({
        status: "SERVING",
        services: ["fan.gw.Till"],
      });
      const verb = await fetch(`${base}/add`);
      expect(verb.status).toBe(405);
      expect(verb.headers.get("allow")).toBe("POST");
      const big = await post(`${base}/add`, JSON.stringify({ n: 1, by: "x".repeat(2 * 1024 * 1024) }));
      expect(big.status).toBe(413);
      expect(await big.json()).toMatchObject({ code: "RESOURCE_EXHAUSTED" });
      const missing = await post(`${gw?.url}/fan.gw.Till/nope`, "{}");
      expect(missing.status).toBe(404);
      expect(await missing.json()).toMatchObject({ code: "NOT_FOUND" });
      const pre = await fetch(`${base}/add`, {
        method: "OPTIONS",
        headers: {
          origin: "https://shop.example",
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type, fan-timeout",
        },
      });
      expect(pre.status).toBe(204);
      expect(pre.headers.get("access-control-allow-origin")).toBe("https://shop.example");
      expect(pre.headers.get("access-control-allow-headers")).toContain("fan-timeout");
      const other = await fetch(`${base}/add`, { method: "OPTIONS", headers: { origin: "https://evil.example" } });
      expect(other.status).toBe(403);
      const cors = await post(`${base}/add`, '{"n":0}', { origin: "https://shop.example" });
      expect(cors.headers.get("access-control-allow-origin")).toBe("https://shop.example");
      expect(cors.headers.get("access-control-expose-headers")).toContain("traceparent");
    }, 60_000);

    it("answers a HEAD to an event or state stream with its headers and ends it", async () => {
      for (const path of ["events/fan.gw.Till/added", "states/fan.gw.Till/total"]) {
        const u = new URL(`${gw?.url}/_fan/${path}`);
        const { status, type } = await new Promise<{ status: number; type: string }>((resolve, reject) => {
          const r = request(
            { host: u.hostname, port: u.port, path: u.pathname, method: "HEAD", agent: false },
            (res) => {
              res.resume();
              // The gateway ends the answer (connection: close): the socket closes, no stream is left open.
              res.socket.once("close", () =>
                resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]) }),
              );
            },
          );
          r.setTimeout(5_000, () => r.destroy(new Error(`HEAD ${path} was not ended within 5 s`)));
          r.once("error", reject);
          r.end();
        });
        expect(status).toBe(200);
        expect(type).toContain("text/event-stream");
      }
    }, 60_000);

    it("streams a state: the current value, then the value after a change, to every stream", async () => {
      const a = await openSse(`${gw?.url}/_fan/states/fan.gw.Till/total`);
      const b = await openSse(`${gw?.url}/_fan/states/fan.gw.Till/total`);
      try {
        const first = JSON.parse(await a.next()) as { total: number };
        expect(first.total).toEqual(expect.any(Number));
        expect(JSON.parse(await b.next())).toEqual(first);
        await post(`${base}/add`, '{"n":4,"by":"state"}');
        expect(JSON.parse(await a.next())).toEqual({ total: first.total + 4, by: "state" });
        expect(JSON.parse(await b.next())).toEqual({ total: first.total + 4, by: "state" });
      } finally {
        a.close();
        b.close();
      }
      // After both left, a new stream starts again from the current value.
      const c = await openSse(`${gw?.url}/_fan/states/fan.gw.Till/total`);
      try {
        expect(JSON.parse(await c.next())).toMatchObject({ by: "state" });
      } finally {
        c.close();
      }
    }, 60_000);
  });
}

describeWithBroker(
  runnable("amqp") && runnable("redis") && up.etcd,
  "amqp, redis or etcd",
  "gateway event transport",
)("gateway in front of Till on amqp then redis", () => {
  it("streams Till's events from amqp, its App's first event transport, though redis comes first in fan's list", async () => {
    const cluster = uniqueCluster("gw-order");
    const service = await startService("amqp,redis", cluster);
    let gw: LocalGateway | undefined;
    try {
      gw = await startGateway(cluster, ["--transports", "redis,amqp"]);
      const sse = await openSse(`${gw.url}/_fan/events/fan.gw.Till/added`);
      try {
        const res = await post(`${gw.url}/fan.gw.Till/add`, '{"n":3}');
        const { total } = (await res.json()) as { total: number };
        expect(JSON.parse(await sse.next())).toEqual({ n: 3, total });
      } finally {
        sse.close();
      }
    } finally {
      await Promise.race([gw?.stop(), new Promise((r) => setTimeout(r, 15_000))]);
      await stopChild(service);
      await forgetCluster(cluster, ["amqp", "redis"]);
    }
  }, 120_000);
});
