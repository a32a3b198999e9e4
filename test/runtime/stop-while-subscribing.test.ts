/**
 * A stop that lands while a broadcast subscription is being created on a slow (not down) Redis:
 * the per-instance consumer group must not outlive the App (nothing ever reads or deletes it).
 */
import net from "node:net";
import { Redis } from "ioredis";
import { createApp } from "fan/runtime";
import { expect, it } from "vitest";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import { eventKey } from "../../src/runtime/transports/redis/names.js";
import { Audit } from "./fixtures/shop.js";
import { AuditImpl } from "./fixtures/impl.js";

/** A proxy to Redis that holds every reply `delayMs` (requests go through at once). */
async function slowRedis(delayMs: number): Promise<{ port: number; close: () => void }> {
  const socks = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const r = net.connect(6379, "127.0.0.1");
    socks.add(c).add(r);
    c.on("data", (d) => r.write(d));
    r.on("data", (d) => setTimeout(() => c.writable && c.write(d), delayMs));
    const end = (): void => {
      c.destroy();
      r.destroy();
    };
    c.on("close", end).on("error", end);
    r.on("close", end).on("error", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () => {
      for (const s of socks) s.destroy();
      server.close();
    },
  };
}

it("redis: a stop while a broadcast subscription is being created leaves no consumer group behind", async () => {
  const proxy = await slowRedis(400);
  const redis = new Redis({ host: "127.0.0.1", port: 6379, lazyConnect: true });
  await redis.connect();
  const cluster = `srev-${process.pid}-${Date.now()}`;
  const key = eventKey(cluster, "test.shop.Catalog", "flush");
  const groups = async (): Promise<string[]> => {
    try {
      const rows = (await redis.xinfo("GROUPS", key)) as unknown[][];
      return rows.map((r) => String(r[1]));
    } catch {
      return []; // no stream yet
    }
  };
  try {
    const app = createApp({
      cluster,
      logger: silentLogger(),
      transports: { redis: redisTransport({ url: `redis://127.0.0.1:${proxy.port}` }) },
    }).serve(Audit, new AuditImpl());
    const started = app.start().then(
      () => "started",
      (e: unknown) => e,
    );
    // Redis has created the broadcast group; its reply is still on its way.
    const until = Date.now() + 8000;
    while ((await groups()).length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    expect(await groups()).toHaveLength(1);
    await app.stop();
    await started;
    await new Promise((r) => setTimeout(r, 1000));
    expect(await groups()).toEqual([]);
  } finally {
    await redis.del(key);
    redis.disconnect();
    proxy.close();
  }
}, 20_000);
