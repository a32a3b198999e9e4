/**
 * A push refused by the consumer (authentication refused, or undecodable) is acknowledged
 * but not remembered by its push dedupe: a corrected re-send with the same idempotency key
 * is handled. A Guarded instance serves in its own process on amqp and on redis (etcd
 * discovery); this process pushes through the generated client.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import { AMQP_URL, deleteByPrefix, reachable } from "../transports/amqp-broker.js";
import { deleteKeys, REDIS_URL } from "../transports/redis-server.js";
import { until } from "../transports/conformance.js";
import { Guarded } from "./fixtures/generated/fan/policytest.js";

const script = fileURLToPath(new URL("./fixtures/guarded-server.ts", import.meta.url));
const ETCD = (process.env.FAN_ETCD ?? "etcd://127.0.0.1:2379") as `etcd://${string}`;
const etcdUrl = new URL(ETCD.replace("etcd:", "http:"));
const etcdUp = await reachable(etcdUrl.hostname, Number(etcdUrl.port));
const urls = { amqp: AMQP_URL, redis: REDIS_URL } as const;
const up = {
  amqp: await reachable("127.0.0.1", Number(new URL(AMQP_URL).port || 5672)),
  redis: await reachable("127.0.0.1", Number(new URL(REDIS_URL).port || 6379)),
};

for (const transport of ["amqp", "redis"] as const) {
  const suite = etcdUp && up[transport] ? describe : describe.skip;
  if (!(etcdUp && up[transport]) && process.env.FAN_REQUIRE_BROKERS === "1")
    throw new Error(`etcd or ${transport} not reachable`);

  suite(`a refused push over ${transport}, between processes`, () => {
    const cluster = `pref-${process.pid}-${transport}-${shortId()}`;
    let child: ChildProcessByStdio<null, Readable, Readable>;
    const notes: string[] = [];
    let app: App;

    beforeAll(async () => {
      child = spawn(process.execPath, ["--import", "tsx", script, cluster, transport, urls[transport]], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let err = "";
      child.stderr.on("data", (d: Buffer) => (err += d.toString()));
      await new Promise<void>((resolve, reject) => {
        let buf = "";
        const timer = setTimeout(() => reject(new Error(`server not ready: ${err}`)), 60_000);
        child.stdout.on("data", (d: Buffer) => {
          buf += d.toString();
          for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
            const line = JSON.parse(buf.slice(0, i)) as { ready?: boolean; note?: string };
            buf = buf.slice(i + 1);
            if (line.note !== undefined) notes.push(line.note);
            if (line.ready === true) {
              clearTimeout(timer);
              resolve();
            }
          }
        });
        child.once("exit", (code) => reject(new Error(`server exited with ${code}: ${err}`)));
      });
      app = createApp({
        cluster,
        discovery: ETCD,
        transports: { [transport]: { url: urls[transport] } },
        logger: pino({ level: "silent" }),
      });
      await app.start();
      const set = await app.watch(Guarded.descriptor.name);
      await until(() => set.instances().length === 1, 20_000);
    }, 90_000);

    afterAll(async () => {
      child?.kill("SIGKILL");
      await app?.stop();
      if (transport === "redis") await deleteKeys(`fan.${cluster}*`);
      else await deleteByPrefix(`fan.${cluster}`).catch(() => undefined);
    });

    it("is not remembered: the re-send with credentials and the same key is handled, a duplicate after it is not", async () => {
      const guarded = app.client(Guarded);
      const idempotencyKey = `note-${shortId()}`;
      // Refused by authentication: acknowledged (not redelivered), the handler never runs.
      await guarded.note({ text: "no credentials" }, { idempotencyKey });
      // A marker push after it, on the same queue: once it is handled, the refused one was seen.
      await guarded.note({ text: "marker" }, { headers: { authorization: "Bearer root" } });
      await until(() => notes.includes("marker"), 20_000);
      expect(notes).not.toContain("no credentials");

      await guarded.note({ text: "corrected" }, { idempotencyKey, headers: { authorization: "Bearer root" } });
      await until(() => notes.includes("corrected"), 20_000);
      // Handled now, so remembered: the same key again is a duplicate.
      await guarded.note({ text: "duplicate" }, { idempotencyKey, headers: { authorization: "Bearer root" } });
      await guarded.note({ text: "marker 2" }, { headers: { authorization: "Bearer root" } });
      await until(() => notes.includes("marker 2"), 20_000);
      expect(notes).not.toContain("duplicate");
    }, 60_000);
  });
}
