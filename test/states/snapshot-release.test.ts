/**
 * A released shard's snapshot save (`SnapshotStore.flush`, redis-store.ts) against a Redis that
 * refuses: no later update saves it again, so it is tried again, and given up with a warning
 * that says what the new owner resumes. A private redis-server, on a port of its own, stands
 * for a Redis that comes back.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { StateSnapshot } from "../../src/runtime/states/protocol.js";
import { redisSnapshotStore } from "../../src/runtime/states/redis-store.js";

const snap = { e: 7, s: 42, v: { n: 1 } } as unknown as StateSnapshot;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

function logger(warnings: string[]): Logger {
  return { warn: (_: object, msg: string) => void warnings.push(msg) } as unknown as Logger;
}

let server: ChildProcess | undefined;
afterEach(() => {
  server?.kill();
  server = undefined;
});

describe("a released shard's snapshot save", () => {
  it("warns, after its tries, that the new owner will resume an older snapshot when Redis refuses", async () => {
    const warnings: string[] = [];
    const store = redisSnapshotStore({ redis: `redis://127.0.0.1:${await freePort()}` }, logger(warnings));
    store.save("fan.t.state", () => snap);
    const t0 = Date.now();
    await store.flush?.("fan.t.state");
    expect(Date.now() - t0).toBeLessThan(2000);
    const saves = warnings.filter((w) => w.startsWith("saving the snapshot"));
    expect(saves).toHaveLength(1);
    expect(saves[0]).toMatch(
      /^saving the snapshot of fan\.t\.state as its shard was handed over failed \([23] tries in \d+ ms\): its new owner will resume an older snapshot \(the last one saved\), without this owner's latest updates$/,
    );
    await store.close();
  });

  it("is written once Redis takes it again, within its tries", async () => {
    const warnings: string[] = [];
    const port = await freePort();
    const store = redisSnapshotStore({ redis: `redis://127.0.0.1:${port}` }, logger(warnings));
    store.save("fan.t.state", () => snap);
    const flushed = store.flush?.("fan.t.state");
    // Redis comes up after the first try failed.
    await new Promise((r) => setTimeout(r, 250));
    server = spawn("redis-server", ["--port", String(port), "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    await flushed;
    const r = new Redis(port, "127.0.0.1");
    try {
      expect(JSON.parse((await r.get("fan.t.state")) ?? "null")).toEqual(snap);
    } finally {
      r.disconnect();
    }
    expect(warnings.filter((w) => w.startsWith("saving the snapshot"))).toEqual([]);
    await store.close();
  });
});
