/**
 * Calls stalled on their broker connection, continued from stalled-deadline.test.ts (found in
 * review):
 * with the broker known to be down (nothing listens on its port, so the transport has a reason
 * for the outage), a call's deadline error must not depend on which timer fires first. The
 * transport's own wait fails UNAVAILABLE at the deadline and the client turns that into
 * DEADLINE_EXCEEDED (outcome.ts `sendFailure`: at or after the deadline a call's error is
 * DEADLINE_EXCEEDED whatever the transport said); the client's deadline wheel must give the same
 * code. Pushes too, and their message must read as one (no empty method prefix). And a call
 * refused on one transport (nats without the client certificate its server wants) that failed
 * over to an instance on another (redis) and waits there past its deadline must not blame the
 * transport it left.
 */
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { FanError } from "../../src/runtime/errors.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import type { TransportFactory } from "../../src/runtime/transports/transport.js";
import { opensslAvailable, type TestPki, testPki } from "../tls-certs.js";
import { describeWithBroker, freePort } from "./amqp-broker.js";
import { type ChildApp, childApp } from "./child.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { captureLog } from "./fixtures/log.js";
import { natsServerAvailable, PrivateNats } from "./nats-server.js";
import { ETCD, runnable, uniqueCluster } from "./processes.js";

const BROKERS = ["redis", "amqp", "nats"] as const;
type Broker = (typeof BROKERS)[number];

function downFactory(broker: Broker, port: number): TransportFactory {
  if (broker === "redis") return redisTransport({ url: `redis://127.0.0.1:${port}` });
  if (broker === "nats") return natsTransport({ url: `nats://127.0.0.1:${port}` });
  return amqpTransport({ url: `amqp://guest:guest@127.0.0.1:${port}` });
}

/** A loopback port nothing listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

for (const broker of BROKERS) {
  const d = runnable(broker) || process.env.FAN_REQUIRE_BROKERS === "1" ? describe : describe.skip;
  d(`calls stalled on a ${broker} broker known to be down`, () => {
    const cluster = uniqueCluster(`review13-${broker}`);
    let port: number;
    let child: ChildApp;
    let app: App;

    beforeAll(async () => {
      port = await closedPort();
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
        transports: { [broker]: downFactory(broker, port) },
        logger: captureLog().log,
        policy: { retry: false, breaker: false },
      });
      await app.start();
      // Let the first connection attempts fail, so the transport knows why the broker is away.
      await new Promise((r) => setTimeout(r, 1_500));
    }, 60_000);
    afterAll(async () => {
      await app?.stop();
      await child?.stop();
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
      const host = `127.0.0.1:${port}`;
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
  });
}

const failover = (runnable("nats") && runnable("redis")) || process.env.FAN_REQUIRE_BROKERS === "1";
describeWithBroker(
  failover && opensslAvailable && (await natsServerAvailable()),
  "openssl and nats-server",
  "failover from a refused nats",
)("a call that failed over from a refused transport to another", () => {
  const cluster = uniqueCluster("review13-failover");
  let pki: TestPki;
  let nats: PrivateNats;
  let children: ChildApp[];
  let app: App;

  beforeAll(async () => {
    pki = testPki("fan-review13-");
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
      logger: captureLog().log,
      policy: { retry: false, breaker: false },
    });
    await app.start();
    // Until the probe has told the refusal.
    await new Promise((r) => setTimeout(r, 2_000));
  }, 60_000);
  afterAll(async () => {
    await app?.stop();
    await Promise.all((children ?? []).map((c) => c.stop()));
    await nats?.destroy();
    pki?.remove();
  }, 30_000);

  it("names what it waited for, not the refusal of the transport it left", async () => {
    const client = app.client(Conformance);
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () =>
        client.sleep({ ms: 1_500 }, { timeout: 300 }).then(
          () => "answered",
          (e: unknown) => (FanError.is(e) ? `${e.code} ${e.message}` : String(e)),
        ),
      ),
    );
    expect(outcomes.filter((o) => /TLS handshake failed/.test(o))).toEqual([]);
  }, 30_000);
});
