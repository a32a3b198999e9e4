/**
 * A call whose transport never gets its broker connection up fails at its deadline naming the
 * server it waited for, whichever timer fires first: the client's deadline wheel or the
 * transport's wait for the connection. The server runs in another process on the real broker;
 * the caller here is pointed at a listener that accepts and never speaks (a broker hung in its
 * handshake), so its connection stays "connecting". Many calls with spread deadlines at once,
 * so both timer orders happen.
 */
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { FanError } from "../../src/runtime/errors.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import type { TransportFactory } from "../../src/runtime/transports/transport.js";
import { formatEndpoint } from "../../src/runtime/transports/amqp/names.js";
import { type ChildApp, childApp } from "./child.js";
import { envelope, rejection, within } from "./conformance.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { captureLog } from "./fixtures/log.js";
import { ETCD, runnable, uniqueCluster } from "./processes.js";

const BROKERS = ["redis", "amqp", "nats"] as const;
type Broker = (typeof BROKERS)[number];

function silentFactory(broker: Broker, port: number): TransportFactory {
  if (broker === "redis") return redisTransport({ url: `redis://127.0.0.1:${port}` });
  if (broker === "nats") return natsTransport({ url: `nats://127.0.0.1:${port}` });
  return amqpTransport({ url: `amqp://guest:guest@127.0.0.1:${port}` });
}

/** A listener that accepts and never speaks; `close` destroys what it accepted. */
async function silentListener(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => undefined);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

for (const broker of BROKERS) {
  const d = runnable(broker) || process.env.FAN_REQUIRE_BROKERS === "1" ? describe : describe.skip;
  d(`a call stalled on its ${broker} connection names the server at its deadline`, () => {
    const cluster = uniqueCluster(`stalled-${broker}`);
    let silent: { port: number; close: () => Promise<void> };
    let child: ChildApp;
    let app: App;

    beforeAll(async () => {
      silent = await silentListener();
      child = childApp({
        FAN_CHILD_TRANSPORTS: broker,
        FAN_CHILD_CLUSTER: cluster,
        FAN_CHILD_SERVE: "Conformance",
        FAN_ETCD: ETCD,
      });
      await child.next("ready");
      app = createApp({
        cluster,
        discovery: `etcd://${ETCD}`,
        transports: { [broker]: silentFactory(broker, silent.port) },
        logger: captureLog().log,
        policy: { retry: false, breaker: false },
      });
      await app.start();
    }, 60_000);
    afterAll(async () => {
      await app?.stop();
      await child?.stop();
      await silent?.close();
    }, 30_000);

    it("60 calls with deadlines from 20 to 320 ms: each DEADLINE_EXCEEDED naming 127.0.0.1:port", async () => {
      const client = app.client(Conformance, { transport: broker });
      const outcomes = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          client.echo({ n: i }, { timeout: 20 + (i % 6) * 60 }).then(
            () => "answered",
            (e: unknown) => (FanError.is(e) ? `${e.code} ${e.message}` : String(e)),
          ),
        ),
      );
      const host = `127.0.0.1:${silent.port}`;
      const unnamed = outcomes.filter((o) => !o.includes(host));
      expect(unnamed, `errors not naming ${host}`).toEqual([]);
      expect(new Set(outcomes.map((o) => o.split(" ")[0]))).toEqual(new Set(["DEADLINE_EXCEEDED"]));
    }, 30_000);
  });
}

describe("an amqp broker that accepts the connection and never answers the handshake", () => {
  it("the attempt is given up after 5 s of silence and made again (it does not hang forever)", async () => {
    const accepted: number[] = [];
    const sockets = new Set<Socket>();
    const server = createServer((s) => {
      accepted.push(Date.now());
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const t = amqpTransport({ url: `amqp://guest:guest@127.0.0.1:${port}`, reconnectMinDelayMs: 20 })({
      cluster: uniqueCluster("stalled-handshake"),
      log: captureLog().log,
      maxPayloadBytes: 1 << 20,
    });
    try {
      const t0 = Date.now();
      const endpoint = formatEndpoint({ cluster: "x", service: "fan.conformance.Conformance", version: "1.0.0" });
      const err = await rejection(() => t.call(endpoint, envelope("echo", { n: 1 }), within(300)));
      expect(err.code).toBe("DEADLINE_EXCEEDED");
      await expect.poll(() => accepted.length, { timeout: 12_000, interval: 100 }).toBeGreaterThanOrEqual(2);
      const again = (accepted[1] as number) - t0;
      expect(again).toBeGreaterThanOrEqual(4500);
      expect(again).toBeLessThan(11_000);
    } finally {
      await t.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  }, 30_000);
});
