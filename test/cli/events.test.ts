/**
 * `fanc publish` and `fanc subscribe` as a user runs them: child processes against the shared
 * etcd and the loopback Redis and RabbitMQ. A published event reaches a service's subscription
 * in another process (test/transports/fixtures/child-app.ts serving ListenerA) and a running
 * `fanc subscribe`, which prints it and exits 0 on SIGINT.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { type CapturedChild, runFanc, spawnCaptured, until } from "./helpers.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const bin = join(repo, "bin/fanc.mjs");

const fanc = runFanc;

describeEtcd("fanc publish / fanc subscribe (child processes)", () => {
  const cluster = randomCluster();
  const C = ["--idl", "test/transports/fixtures/idl", "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  let listener: CapturedChild;

  beforeAll(async () => {
    // Its events travel on redis, the first event transport of its App.
    listener = spawnCaptured(join(repo, "node_modules/.bin/tsx"), ["test/transports/fixtures/child-app.ts"], {
      FAN_CHILD_SERVE: "ListenerA",
      FAN_CHILD_TRANSPORTS: "redis",
      FAN_CHILD_CLUSTER: cluster,
      FAN_ETCD: SHARED_ETCD,
    });
    await until("the listener is ready", () => /"event":"(ready|start failed)"/.test(listener.stdout()), 120_000);
    expect(listener.stdout()).toContain('"event":"ready"');
  }, 150_000);

  afterAll(async () => {
    listener?.child.kill("SIGTERM");
    await listener?.exited;
  }, 30_000);

  for (const via of ["redis", "amqp", "nats"]) {
    it(`publishes over ${via} to fanc subscribe${via === "redis" ? " and a subscribing service" : ""}; SIGINT stops it`, async () => {
      const sub = spawnCaptured(process.execPath, [bin, "subscribe", "Conformance.ping", ...C, "--via", via]);
      try {
        await until("fanc subscribe is subscribed", () => sub.stderr().includes("subscribed to"), 120_000);
        expect(sub.stderr()).toBe(`subscribed to fan.conformance.Conformance.ping over ${via} (Ctrl-C to stop)\n`);
        const n = via === "redis" ? 41 : via === "amqp" ? 42 : 43;
        const r = await fanc(["publish", "Conformance.ping", JSON.stringify({ n }), ...C, "--via", via]);
        expect(r.code).toBe(0);
        expect(r.stderr).toMatch(new RegExp(`^published · [\\d.]+ ms · over ${via} · trace [0-9a-f]{32}\\n$`));
        await until("fanc subscribe prints the event", () => sub.stdout().includes(`{"n":${n}}`), 60_000);
        if (via === "redis")
          await until("the service's subscription gets it", () => listener.stdout().includes(`"n":${n}`), 60_000);
        sub.child.kill("SIGINT");
        expect(await sub.exited).toBe(0);
        expect(sub.stdout()).toBe(`{"n":${n}}\n`);
      } finally {
        sub.child.kill("SIGKILL");
      }
    }, 300_000);
  }

  it("without --via, publishes and subscribes on the transport the service's registered instances use (nats here)", async () => {
    // Conformance allows redis first, but its only App has http and nats: its events travel on
    // nats, and a default of redis would print nothing, silently.
    const own = `${cluster}-nats`;
    const N = ["--idl", "test/transports/fixtures/idl", "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", own];
    const server = spawnCaptured(join(repo, "node_modules/.bin/tsx"), ["test/transports/fixtures/child-app.ts"], {
      FAN_CHILD_SERVE: "Conformance",
      FAN_CHILD_TRANSPORTS: "http,nats",
      FAN_CHILD_CLUSTER: own,
      FAN_ETCD: SHARED_ETCD,
    });
    let sub: CapturedChild | undefined;
    try {
      await until("the server is ready", () => /"event":"(ready|start failed)"/.test(server.stdout()), 120_000);
      expect(server.stdout()).toContain('"event":"ready"');
      const s = spawnCaptured(process.execPath, [bin, "subscribe", "Conformance.ping", ...N]);
      sub = s;
      await until("fanc subscribe is subscribed", () => s.stderr().includes("subscribed to"), 120_000);
      expect(s.stderr()).toBe("subscribed to fan.conformance.Conformance.ping over nats (Ctrl-C to stop)\n");
      const r = await fanc(["publish", "Conformance.ping", '{"n":44}', ...N]);
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/^published · [\d.]+ ms · over nats · trace [0-9a-f]{32}\n$/);
      await until("fanc subscribe prints the event", () => s.stdout().includes('{"n":44}'), 60_000);
      s.child.kill("SIGINT");
      expect(await s.exited).toBe(0);
    } finally {
      sub?.child.kill("SIGKILL");
      server.child.kill("SIGTERM");
      await server.exited;
    }
  }, 300_000);

  it("refuses an invalid payload or an unknown event before sending (exit 2)", async () => {
    const off = ["--idl", "test/transports/fixtures/idl", "--discovery", "etcd://127.0.0.1:1"];
    const bad = await fanc(["publish", "Conformance.ping", '{"n":"x"}', ...off]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      'fanc publish: invalid payload n: expected an int (a safe integer), got string "x" (nothing was sent)\n',
    );
    const unknown = await fanc(["subscribe", "Conformance.pong", ...off]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('has no event "pong" (events: ping, flush)');
  }, 300_000);
});
