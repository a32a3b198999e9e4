/**
 * TLS to every broker and to etcd, as a user runs it: private servers on their own ports with
 * TLS only and client certificates required (mutual TLS) — redis-server (`rediss://`),
 * nats-server (`tls {}` block, JetStream on), a RabbitMQ node (`amqps://`) and etcd (https),
 * all with a throwaway CA made here with openssl (test/tls-certs.ts). For each broker a
 * Conformance service in another process (fixtures/child-app.ts, TLS given in createApp's
 * options) registers in etcd over https and serves over the broker; this process calls it with
 * the generated client; `fanc call`, `fanc push` and `fanc publish` with `--tls-ca`,
 * `--tls-cert`, `--tls-key` reach it, the push and the event arriving in the other processes.
 * A client that trusts another CA, or has no certificate, fails within its deadline naming the
 * broker's URL, and `fanc` with that CA fails naming etcd's.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { Code } from "../../src/runtime/errors.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import type { TransportFactory } from "../../src/runtime/transports/transport.js";
import { runFanc } from "../cli/helpers.js";
import { PrivateEtcd } from "../discovery/helpers.js";
import { opensslAvailable, type TestPki, testPki } from "../tls-certs.js";
import { canRunPrivateRabbit, describeWithBroker, freePort, PrivateRabbit } from "./amqp-broker.js";
import { type ChildApp, childApp } from "./child.js";
import { rejection } from "./conformance.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { captureLog } from "./fixtures/log.js";
import { natsServerAvailable, PrivateNats } from "./nats-server.js";
import { uniqueCluster } from "./processes.js";
import { PrivateRedis, redisServerAvailable } from "./redis-server.js";

type Broker = "redis" | "nats" | "amqp";

const possible = opensslAvailable && (await redisServerAvailable()) && (await natsServerAvailable());
const rabbitPossible = await canRunPrivateRabbit();

/** PEM material of a client: the CA it trusts, and its own certificate (mutual TLS). */
type ClientTls = {
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
};

/** The transport factory of this process for `broker` at `url`, with TLS given as a user writes it. */
function factory(broker: Broker, url: string, tls: ClientTls): TransportFactory {
  if (broker === "redis") return redisTransport({ url, redis: { tls } });
  if (broker === "nats") return natsTransport({ url, nats: { tls } });
  return amqpTransport({ url, socketOptions: tls });
}

describeWithBroker(
  possible,
  "openssl, redis-server and nats-server",
  "TLS to the brokers",
)("TLS to redis, nats, amqp and etcd between processes (private servers, mutual TLS)", () => {
  let pki: TestPki;
  let etcd: PrivateEtcd;
  let mine: ClientTls;
  let wrongCa: ClientTls;
  const apps: App[] = [];
  const children: ChildApp[] = [];

  beforeAll(async () => {
    pki = testPki("fan-tls-brokers-");
    mine = { ca: pki.pem(pki.ca.cert), cert: pki.pem(pki.client.cert), key: pki.pem(pki.client.key) };
    wrongCa = { ...mine, ca: pki.pem(pki.other.cert) };
    const port = await freePort();
    etcd = new PrivateEtcd(port, await freePort(), pki.serverTls(true));
    await etcd.start();
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
    await Promise.allSettled(children.splice(0).map((c) => c.stop()));
    await etcd?.destroy();
    pki?.remove();
  }, 60_000);

  /** A caller App in this process: etcd over https and `broker` with `tls`. */
  const caller = async (cluster: string, broker: Broker, url: string, tls: ClientTls): Promise<App> => {
    const app = createApp({
      cluster,
      discovery: `etcd://${etcd.endpoint}`,
      etcd: { tls: mine },
      transports: { [broker]: factory(broker, url, tls) },
      logger: captureLog().log,
      policy: { retry: false, breaker: false },
    });
    apps.push(app);
    await app.start();
    return app;
  };

  /** A child App serving `serve` over `broker` at `url`, TLS from the files (mutual). */
  const child = async (cluster: string, broker: Broker, url: string, serve: string): Promise<ChildApp> => {
    const c = childApp({
      FAN_CHILD_TRANSPORTS: broker,
      FAN_CHILD_CLUSTER: cluster,
      FAN_CHILD_SERVE: serve,
      FAN_ETCD: etcd.endpoint,
      [`FAN_${broker.toUpperCase()}_URL`]: url,
      FAN_CHILD_TLS_CA: pki.ca.cert,
      FAN_CHILD_TLS_CERT: pki.client.cert,
      FAN_CHILD_TLS_KEY: pki.client.key,
    });
    children.push(c);
    expect(await c.next(["ready", "start failed"], 120_000)).toMatchObject({ event: "ready" });
    return c;
  };

  /** The checks every broker passes; `url()` is its TLS URL once its server runs. */
  const brokerCases = (broker: Broker, url: () => string): void => {
    const cluster = uniqueCluster(`tls-${broker}`);
    let service: ChildApp;
    let listener: ChildApp;

    beforeAll(async () => {
      [service, listener] = await Promise.all([
        child(cluster, broker, url(), "Conformance"),
        child(cluster, broker, url(), "ListenerA"),
      ]);
    }, 180_000);

    it(`a service in another process answers over ${broker} with TLS, found through etcd over https`, async () => {
      const app = await caller(cluster, broker, url(), mine);
      const client = app.client(Conformance, { transport: broker });
      expect(await client.echo({ n: 1, text: "tls" }, { timeout: 20_000 })).toMatchObject({ n: 1, text: "tls" });
      await client.record({ id: `${broker}-app`, failures: 0 }, { timeout: 20_000 });
      expect(await service.next("record", 20_000)).toMatchObject({ id: `${broker}-app` });
    }, 60_000);

    it(`fanc call, push and publish with --tls-ca/--tls-cert/--tls-key reach it over ${broker}`, async () => {
      const common = [
        "--idl",
        "test/transports/fixtures/idl",
        "--discovery",
        `etcd://${etcd.endpoint}`,
        "--cluster",
        cluster,
        "--via",
        broker,
        "--tls-ca",
        pki.ca.cert,
        "--tls-cert",
        pki.client.cert,
        "--tls-key",
        pki.client.key,
      ];
      const env = { [`FAN_${broker.toUpperCase()}_URL`]: url() };
      const [call, push, publish] = await Promise.all([
        runFanc(["call", "Conformance.echo", '{"n":2}', ...common, "--json"], env),
        runFanc(["push", "Conformance.record", `{"id":"${broker}-fanc"}`, ...common], env),
        runFanc(["publish", "Conformance.ping", '{"n":3}', ...common], env),
      ]);
      expect(call.code, call.stderr).toBe(0);
      expect(JSON.parse(call.stdout)).toMatchObject({ ok: true, transport: broker, value: { n: 2 } });
      expect(push.code, push.stderr).toBe(0);
      expect(publish.code, publish.stderr).toBe(0);
      await expect
        .poll(() => service.events.some((e) => e.event === "record" && e.id === `${broker}-fanc`), { timeout: 20_000 })
        .toBe(true);
      await expect
        .poll(() => listener.events.some((e) => e.event === "ping" && e.n === 3), { timeout: 20_000 })
        .toBe(true);
    }, 120_000);

    it(`a client trusting another CA fails within its deadline naming the ${broker} URL`, async () => {
      const app = await caller(cluster, broker, url(), wrongCa);
      const t0 = Date.now();
      const err = await rejection(() =>
        app.client(Conformance, { transport: broker }).echo({ n: 4 }, { timeout: 4000 }),
      );
      const ms = Date.now() - t0;
      console.log(`${broker} with a wrong CA: ${err.code} after ${ms} ms: ${err.message}`);
      expect(ms).toBeLessThan(3000);
      expect(err.code).toBe(Code.UNAVAILABLE);
      expect(err.message).toContain(new URL(url()).host);
      expect(err.message).toMatch(/certificate/i);
    }, 60_000);
    it(`a client without a certificate is refused by ${broker} (mutual TLS) within its deadline, naming the URL`, async () => {
      const app = await caller(cluster, broker, url(), { ca: mine.ca });
      const t0 = Date.now();
      const err = await rejection(() =>
        app.client(Conformance, { transport: broker }).echo({ n: 5 }, { timeout: 4000 }),
      );
      const ms = Date.now() - t0;
      console.log(`${broker} without a client certificate: ${err.code} after ${ms} ms: ${err.message}`);
      expect(ms).toBeLessThan(3000);
      expect(err.code).toBe(Code.UNAVAILABLE);
      expect(err.message).toContain(new URL(url()).host);
      // nats-server (Go's TLS) alerts "bad certificate" where OpenSSL alerts "certificate
      // required"; Node 24's OpenSSL names it "ssl/tls alert", Node 20's "sslv3 alert".
      expect(err.message).toMatch(
        /TLS handshake failed: (tlsv13 alert certificate required|(sslv3|ssl\/tls) alert bad certificate)$/,
      );
    }, 60_000);
  };

  describe("redis (rediss://, redis-server --tls-port, --tls-auth-clients yes)", () => {
    let redis: PrivateRedis;
    beforeAll(async () => {
      redis = new PrivateRedis(["--appendonly", "no"], await freePort(), pki.serverTls(true));
      await redis.start();
    }, 60_000);
    afterAll(() => redis?.destroy());
    brokerCases("redis", () => redis.url);
  });

  describe("nats (tls {} with verify: true, JetStream on)", () => {
    let nats: PrivateNats;
    beforeAll(async () => {
      nats = new PrivateNats(await freePort(), pki.serverTls(true));
      await nats.start();
    }, 60_000);
    afterAll(() => nats?.destroy());
    brokerCases("nats", () => nats.url);
  });

  (rabbitPossible ? describe : describe.skip)(
    "amqp (amqps://, a private RabbitMQ node with listeners.ssl and verify_peer)",
    () => {
      let rabbit: PrivateRabbit;
      beforeAll(async () => {
        rabbit = await PrivateRabbit.launch(90_000, pki.serverTls(true));
      }, 200_000);
      afterAll(() => rabbit?.destroy(), 90_000);
      brokerCases("amqp", () => rabbit.tlsUrl as string);
    },
  );

  describe("etcd over https", () => {
    const fanc = (extra: string[]) =>
      runFanc([
        "call",
        "Conformance.echo",
        '{"n":1}',
        "--idl",
        "test/transports/fixtures/idl",
        "--discovery",
        `etcd://${etcd.endpoint}`,
        "--cluster",
        uniqueCluster("tls-etcd"),
        "--json",
        ...extra,
      ]);

    it("fanc with a CA that did not sign etcd's certificate fails naming etcd's URL and the TLS reason", async () => {
      const t0 = Date.now();
      const ran = await fanc(["--tls-ca", pki.other.cert, "--tls-cert", pki.client.cert, "--tls-key", pki.client.key]);
      console.log(
        `fanc with a wrong CA for etcd: exit ${ran.code} after ${Date.now() - t0} ms: ${ran.stdout}${ran.stderr}`,
      );
      expect(ran.code).not.toBe(0);
      expect(ran.stderr).toContain(`cannot reach the registry at etcd://${etcd.endpoint}`);
      expect(ran.stderr).toMatch(/TLS handshake failed: (self[- ]signed|unable to verify)/);
      expect(Date.now() - t0).toBeLessThan(60_000);
    }, 90_000);

    it("an App without a client certificate is refused by etcd's --client-cert-auth, naming etcd's URL", async () => {
      const app = createApp({
        cluster: uniqueCluster("tls-etcd"),
        discovery: `etcd://${etcd.endpoint}`,
        etcd: { tls: { ca: readFileSync(pki.ca.cert, "utf8") } },
        logger: captureLog().log,
      });
      const err = await app
        .start()
        .then(() => app.watch(Conformance.descriptor.name))
        .then(
          () => undefined,
          (e: unknown) => e as Error,
        );
      await app.stop().catch(() => undefined);
      expect(err?.message).toContain(etcd.endpoint);
      expect(err?.message).toMatch(/certificate|handshake|alert/i);
    }, 60_000);
  });
});
