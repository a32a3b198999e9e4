/**
 * A call whose transport cannot get its broker connection up fails at its deadline with
 * DEADLINE_EXCEEDED naming the server it waited for, whichever timer fires first: the client's
 * deadline wheel or the transport's wait for the connection (at or after the deadline a call's
 * error is DEADLINE_EXCEEDED whatever the transport said: outcome.ts `sendFailure`). The server
 * runs in another process on the real broker; the caller here is pointed either at a listener
 * that accepts and never speaks (a broker hung in its handshake: the connection stays
 * "connecting") or at a port nothing listens on (the broker known to be down). Many calls and
 * pushes with spread deadlines at once, so both timer orders happen. An app that only pushes
 * (no rpc client on its transport) gets the same, also from a push's 1 s backstop (a process
 * stalled past it, the wheel firing first). Also: a call that failed
 * over from a refused transport (nats without the client certificate its server wants) to
 * another (redis) and waits there past its deadline does not blame the transport it left; and
 * an amqp handshake the broker leaves silent is given up and retried.
 */
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { FanError } from "../../src/runtime/errors.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { formatEndpoint } from "../../src/runtime/transports/amqp/names.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import type { TransportFactory } from "../../src/runtime/transports/transport.js";
import { opensslAvailable, type TestPki, testPki } from "../tls-certs.js";
import { describeWithBroker, freePort } from "./amqp-broker.js";
import { type ChildApp, childApp } from "./child.js";
import { envelope, rejection, until, within } from "./conformance.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { captureLog } from "./fixtures/log.js";
import { natsServerAvailable, PrivateNats } from "./nats-server.js";
import { ETCD, forgetCluster, runnable, uniqueCluster } from "./processes.js";

const BROKERS = ["redis", "amqp", "nats"] as const;
type Broker = (typeof BROKERS)[number];

function factoryAt(broker: Broker, port: number): TransportFactory {
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

/** A loopback port nothing listens on (taken, then released). */
async function closedPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return { port, close: async () => undefined };
}

const AWAY = {
  "hung in its handshake": silentListener,
  "known to be down": closedPort,
} as const;

for (const broker of BROKERS) {
  for (const [how, away] of Object.entries(AWAY)) {
    const d = runnable(broker) || process.env.FAN_REQUIRE_BROKERS === "1" ? describe : describe.skip;
    d(`calls stalled on a ${broker} broker ${how}`, () => {
      const cluster = uniqueCluster(`stalled-${broker}`);
      let broken: { port: number; close: () => Promise<void> };
      let child: ChildApp;
      let app: App;

      beforeAll(async () => {
        broken = await away();
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
          transports: { [broker]: factoryAt(broker, broken.port) },
          logger: captureLog().log,
          policy: { retry: false, breaker: false },
        });
        await app.start();
        // Let the first connection attempts fail, so a transport knows why a down broker is away.
        await new Promise((r) => setTimeout(r, 1_500));
      }, 60_000);
      afterAll(async () => {
        await app?.stop();
        await child?.stop();
        await broken?.close();
        await forgetCluster(cluster, [broker]);
      }, 30_000);

      it("60 calls and 60 pushes with deadlines from 20 to 320 ms: each DEADLINE_EXCEEDED naming the server", async () => {
        const client = app.client(Conformance, { transport: broker });
        const outcome = (e: unknown): string => (FanError.is(e) ? `${e.code} ${e.message}` : String(e));
        const outcomes = await Promise.all(
          Array.from({ length: 120 }, (_, i) => {
            const timeout = 20 + (i % 6) * 60;
            const p = i % 2 === 0 ? client.echo({ n: i }, { timeout }) : client.record({ id: `r${i}` }, { timeout });
            return p.then(() => "answered", outcome);
          }),
        );
        const host = `127.0.0.1:${broken.port}`;
        expect(
          outcomes.filter((o) => !o.includes(host)),
          `errors not naming ${host}`,
        ).toEqual([]);
        expect(new Set(outcomes.map((o) => o.split(" ")[0]))).toEqual(new Set(["DEADLINE_EXCEEDED"]));
        expect(
          outcomes.filter((o) => o.startsWith("DEADLINE_EXCEEDED :")),
          "messages with an empty prefix",
        ).toEqual([]);
      }, 30_000);

      it("an app that only pushes: each push DEADLINE_EXCEEDED naming the server, also when its backstop fires first", async () => {
        // An app of its own: no call ever made on its transport (no rpc client), pushes only.
        const pusher = createApp({
          cluster,
          discovery: `etcd://${ETCD}`,
          transports: { [broker]: factoryAt(broker, broken.port) },
          logger: captureLog().log,
          policy: { retry: false, breaker: false },
        });
        await pusher.start();
        try {
          const client = pusher.client(Conformance, { transport: broker });
          await new Promise((r) => setTimeout(r, 1_500));
          const outcome = (e: unknown): string => (FanError.is(e) ? `${e.code} ${e.message}` : String(e));
          const host = `127.0.0.1:${broken.port}`;
          // The transport answers at each push's deadline.
          const t0 = Date.now();
          const timed = await Promise.all(
            Array.from({ length: 30 }, (_, i) => {
              const timeout = 20 + (i % 6) * 60;
              return client.record({ id: `p${i}` }, { timeout }).then(
                () => ({ late: Date.now() - t0 - timeout, o: "answered" }),
                (e: unknown) => ({ late: Date.now() - t0 - timeout, o: outcome(e) }),
              );
            }),
          );
          const outcomes = timed.map((t) => t.o);
          // Before the 1 s backstop (the transport's own answer), not early.
          expect(Math.max(...timed.map((t) => t.late))).toBeLessThan(1_000);
          expect(Math.min(...timed.map((t) => t.late))).toBeGreaterThanOrEqual(-1);
          // The process stalls (GC, a starved CPU) past a push's deadline and its backstop, while the
          // deadline wheel is armed for an earlier instant (a push made first): the wheel fires
          // before the transport's timer, and the push fails through its backstop.
          const first = client.record({ id: "first" }, { timeout: 20 }).then(() => "answered", outcome);
          const stalled = client.record({ id: "stalled" }, { timeout: 1_100 }).then(() => "answered", outcome);
          await new Promise((r) => setTimeout(r, 30));
          for (const until = Date.now() + 2_300; Date.now() < until; );
          outcomes.push(await first, await stalled);
          expect(
            outcomes.filter((o) => !o.includes(host)),
            `errors not naming ${host}`,
          ).toEqual([]);
          expect(new Set(outcomes.map((o) => o.split(" ")[0]))).toEqual(new Set(["DEADLINE_EXCEEDED"]));
        } finally {
          await pusher.stop();
        }
      }, 30_000);
    });
  }
}

const failover = (runnable("nats") && runnable("redis")) || process.env.FAN_REQUIRE_BROKERS === "1";
describeWithBroker(
  failover && opensslAvailable && (await natsServerAvailable()),
  "openssl and nats-server",
  "failover from a refused nats",
)("a call that failed over from a refused transport to another", () => {
  const cluster = uniqueCluster("stalled-failover");
  let pki: TestPki;
  let nats: PrivateNats;
  let children: ChildApp[];
  let app: App;
  const log = captureLog();

  beforeAll(async () => {
    pki = testPki("fan-stalled-");
    nats = new PrivateNats(await freePort(), pki.serverTls(true));
    await nats.start();
    // One instance on each transport: a call refused on the nats one fails over to the redis one.
    children = ["nats", "redis"].map((transport) =>
      childApp({
        FAN_CHILD_TRANSPORTS: transport,
        FAN_CHILD_CLUSTER: cluster,
        FAN_CHILD_SERVE: "Conformance",
        FAN_ETCD: ETCD,
      }),
    );
    await Promise.all(children.map((c) => c.next("ready")));
    app = createApp({
      cluster,
      discovery: `etcd://${ETCD}`,
      // Our nats has no client certificate for a server that wants one: every call on it is refused at once.
      transports: {
        nats: natsTransport({ url: nats.url, nats: { tls: { ca: pki.pem(pki.ca.cert) } } }),
        redis: redisTransport({}),
      },
      logger: log.log,
      policy: { retry: false, breaker: false },
    });
    await app.start();
    // Until the probe has told the refusal (a loaded CI runner took over 2 s): a call made
    // before waits on nats and, at its deadline, rightly names nats's refusal.
    await until(() => log.find("nats refuses our TLS certificate").length > 0, 20_000);
  }, 60_000);
  afterAll(async () => {
    await app?.stop();
    await Promise.all((children ?? []).map((c) => c.stop()));
    await nats?.destroy();
    pki?.remove();
  }, 30_000);

  it("names what it waited for, not the refusal of the transport it left", async () => {
    const client = app.client(Conformance);
    // Warm: the redis connection is up and the call path compiled. On a loaded CI runner the
    // first calls' deadline could pass before their refusal by nats was even handled, and such a
    // call rightly fails naming nats (it never waited on redis).
    for (let i = 0; i < 4; i++) await client.sleep({ ms: 0 }, { timeout: 10_000 });
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () =>
        client.sleep({ ms: 3_000 }, { timeout: 1_000 }).then(
          () => "answered",
          (e: unknown) => (FanError.is(e) ? `${e.code} ${e.message}` : String(e)),
        ),
      ),
    );
    // Every call waited on redis (the child sleeps past the deadline) after nats refused it.
    expect(outcomes.filter((o) => /TLS handshake failed/.test(o))).toEqual([]);
    expect(new Set(outcomes.map((o) => o.split(" ")[0]))).toEqual(new Set(["DEADLINE_EXCEEDED"]));
  }, 30_000);
});

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
