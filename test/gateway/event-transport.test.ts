/**
 * Which transport an event stream of `fanc gateway` subscribes on, with Till (fixtures/service.ts)
 * in a child process on amqp alone. When the gateway did not open amqp (`--transports
 * http,redis`), the stream is refused with 503 naming the transport, not opened on redis where
 * nothing comes. When the browser attaches before Till is registered (the gateway guesses redis,
 * its first event transport), the stream moves to amqp once Till registers, and Till's events
 * reach the browser. When Till is served on redis alone by an App that publishes on amqp (its
 * first transport), the stream follows the transport the instance records, not its endpoints.
 */
import { expect, it } from "vitest";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { forgetCluster, runnable, uniqueCluster, up } from "../transports/processes.js";
import { type LocalGateway, openSse, startGateway, startService, stopChild } from "./helpers.js";

const EVENTS = "_fan/events/fan.gw.Till/added";

describeWithBroker(
  runnable("amqp") && runnable("redis") && up.etcd,
  "amqp, redis or etcd",
  "gateway event stream transport",
)("gateway event streams of Till on amqp alone", () => {
  it("answers 503 naming amqp when the gateway did not open it", async () => {
    const cluster = uniqueCluster("gw-evt-missing");
    const service = await startService("amqp", cluster);
    let gw: LocalGateway | undefined;
    try {
      gw = await startGateway(cluster, ["--transports", "http,redis"]);
      const res = await fetch(`${gw.url}/${EVENTS}`, {
        headers: { accept: "text/event-stream" },
        // The old gateway opened a silent stream: fail rather than wait for its end.
        signal: AbortSignal.timeout(10_000),
      });
      const body = (await res.json()) as { code: string; message: string };
      expect(res.status).toBe(503);
      expect(body.code).toBe("UNAVAILABLE");
      expect(body.message).toContain("fan.gw.Till publishes on amqp, which the gateway did not open");
      expect(body.message).toContain("add it to --transports");
    } finally {
      await Promise.race([gw?.stop(), new Promise((r) => setTimeout(r, 15_000))]);
      await stopChild(service);
      await forgetCluster(cluster, ["amqp"]);
    }
  }, 120_000);

  it("a stream opened before Till registers gets its events once it does", async () => {
    const cluster = uniqueCluster("gw-evt-late");
    let gw: LocalGateway | undefined;
    let service: Awaited<ReturnType<typeof startService>> | undefined;
    try {
      gw = await startGateway(cluster, ["--transports", "http,redis,amqp"]);
      const sse = await openSse(`${gw.url}/${EVENTS}`);
      try {
        service = await startService("amqp", cluster);
        // The gateway moves the stream once discovery tells it of Till: add until an event comes.
        let got: unknown;
        const end = Date.now() + 30_000;
        while (got === undefined && Date.now() < end) {
          const res = await fetch(`${gw.url}/fan.gw.Till/add`, {
            method: "POST",
            body: '{"n":1}',
            headers: { "content-type": "application/json" },
          });
          await res.body?.cancel();
          got = await sse.next(1000).then(JSON.parse, () => undefined);
        }
        expect(got).toMatchObject({ n: 1 });
      } finally {
        sse.close();
      }
    } finally {
      await Promise.race([gw?.stop(), new Promise((r) => setTimeout(r, 15_000))]);
      await stopChild(service);
      await forgetCluster(cluster, ["amqp"]);
    }
  }, 120_000);

  it("follows the transport Till's App publishes on, not the one Till is served on", async () => {
    const cluster = uniqueCluster("gw-evt-recorded");
    let gw: LocalGateway | undefined;
    const service = await startService("amqp,redis", cluster, { FAN_GW_SERVE_TRANSPORTS: "redis" });
    try {
      gw = await startGateway(cluster, ["--transports", "http,redis,amqp"]);
      const sse = await openSse(`${gw.url}/${EVENTS}`);
      try {
        // Called over redis (its only endpoint); its `added` event goes out on amqp.
        let got: unknown;
        const end = Date.now() + 20_000;
        while (got === undefined && Date.now() < end) {
          const res = await fetch(`${gw.url}/fan.gw.Till/add`, {
            method: "POST",
            body: '{"n":2}',
            headers: { "content-type": "application/json" },
          });
          expect(res.status).toBe(200);
          await res.body?.cancel();
          got = await sse.next(1000).then(JSON.parse, () => undefined);
        }
        // Before: the stream took redis (the endpoint Till has there) and nothing came.
        expect(got).toMatchObject({ n: 2 });
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
