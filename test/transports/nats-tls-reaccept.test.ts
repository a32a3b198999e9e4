/**
 * A nats-server that refused our client certificate, then is restarted trusting it: fan must
 * serve and call again within a couple of seconds, not after nats.js's connect `timeout`
 * (20 s by default, kept here). nats.js counts a TLS 1.3 connection the server then closes
 * with an alert as made and waits for its PONG until that timeout (src/runtime/transports/nats/
 * tls-probe.ts); connection.ts fails such an attempt at once. Private nats-servers on one port:
 * the apps' certificate is self-signed, so a server whose `ca_file` is the test CA alone refuses
 * it and one whose `ca_file` also holds it accepts it (the server's own certificate, which the
 * fixture's readiness check presents, chains to the test CA in both).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { Code } from "../../src/runtime/errors.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { formatEndpoint } from "../../src/runtime/transports/nats/names.js";
import type { Transport } from "../../src/runtime/transports/transport.js";
import { etcdUp, SHARED_ETCD } from "../discovery/helpers.js";
import { type CertFiles, opensslAvailable, selfSigned, type TestPki, testPki } from "../tls-certs.js";
import { describeWithBroker } from "./amqp-broker.js";
import { freePrivatePort } from "../ports.js";
import { type ChildApp, childApp } from "./child.js";
import { envelope, rejection, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { natsServerAvailable, PrivateNats } from "./nats-server.js";
import { uniqueCluster } from "./processes.js";

const possible = opensslAvailable && etcdUp && (await natsServerAvailable());

/** Polls `f` until it returns true; the time it took, or undefined after `ms`. */
async function timeUntil(f: () => Promise<boolean>, ms: number): Promise<number | undefined> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await f()) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 50));
  }
  return undefined;
}

describeWithBroker(
  possible,
  "openssl, etcd and nats-server",
  "nats TLS re-acceptance",
)("nats: a server that refused our certificate, restarted trusting it (private nats-servers)", () => {
  let pki: TestPki;
  let app: CertFiles;
  let both: string;
  let port: number;
  let nats: PrivateNats | undefined;
  const apps: App[] = [];
  const children: ChildApp[] = [];
  const open: Transport[] = [];

  beforeAll(async () => {
    pki = testPki("fan-nats-reaccept-");
    app = selfSigned(pki.dir, "app", "fan-test-app");
    both = join(pki.dir, "ca-and-app.crt");
    writeFileSync(both, pki.pem(pki.ca.cert) + pki.pem(app.cert));
    port = await freePrivatePort();
  });
  afterAll(async () => {
    for (const t of open.splice(0)) await t.close().catch(() => undefined);
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
    await Promise.allSettled(children.splice(0).map((c) => c.stop()));
    await nats?.destroy();
    pki?.remove();
  }, 60_000);

  /** (Re)starts the server on `port`, trusting the apps' certificate or not. */
  const restart = async (trusting: boolean): Promise<void> => {
    await nats?.destroy();
    nats = new PrivateNats(port, { ...pki.serverTls(true), ca: trusting ? both : pki.ca.cert });
    await nats.start();
  };
  const tls = () => ({ ca: pki.pem(pki.ca.cert), cert: pki.pem(app.cert), key: pki.pem(app.key) });
  const url = () => `nats://127.0.0.1:${port}`;

  it("an App serving in another process and its caller are back within seconds of the server trusting them", async () => {
    await restart(true);
    const cluster = uniqueCluster("nats-reaccept");
    const service = childApp({
      FAN_CHILD_TRANSPORTS: "nats",
      FAN_CHILD_CLUSTER: cluster,
      FAN_CHILD_SERVE: "Conformance",
      FAN_ETCD: SHARED_ETCD,
      FAN_NATS_URL: url(),
      FAN_CHILD_TLS_CA: pki.ca.cert,
      FAN_CHILD_TLS_CERT: app.cert,
      FAN_CHILD_TLS_KEY: app.key,
    });
    children.push(service);
    expect(await service.next(["ready", "start failed"], 120_000)).toMatchObject({ event: "ready" });
    const caller = createApp({
      cluster,
      discovery: `etcd://${SHARED_ETCD}`,
      transports: { nats: natsTransport({ url: url(), nats: { tls: tls() } }) },
      logger: captureLog().log,
      policy: { retry: false, breaker: false },
    });
    apps.push(caller);
    await caller.start();
    const client = caller.client(Conformance, { transport: "nats" });
    expect(await client.echo({ n: 1 }, { timeout: 10_000 })).toMatchObject({ n: 1 });

    await restart(false);
    const refused = await timeUntil(async () => {
      const e = await client.echo({ n: 2 }, { timeout: 1000 }).then(
        () => undefined,
        (x: unknown) => x as Error,
      );
      return e !== undefined && /TLS handshake failed: .*certificate/.test(e.message);
    }, 15_000);
    console.log(`nats: calls failed naming the refused certificate ${refused} ms after the restart`);
    expect(refused).toBeDefined();
    // Long enough for both processes' nats.js to have tried the refusing server (every 250 ms).
    await new Promise((r) => setTimeout(r, 3000));

    await restart(true);
    const back = await timeUntil(
      () =>
        client.echo({ n: 3 }, { timeout: 1000 }).then(
          (r) => r.n === 3,
          () => false,
        ),
      30_000,
    );
    console.log(`nats: the service answered again ${back} ms after the server trusted the apps' certificate`);
    expect(back).toBeDefined();
    expect(back).toBeLessThan(5000);
  }, 120_000);

  it("a transport that was never let in connects within seconds of the server trusting it", async () => {
    await restart(false);
    const transport = (): Transport => {
      const t = natsTransport({ url: url(), nats: { tls: tls() } })({
        cluster: "nats-reaccept",
        log: captureLog().log,
        maxPayloadBytes: 1 << 20,
      });
      open.push(t);
      return t;
    };
    const client = transport();
    const endpoint = formatEndpoint({
      cluster: "nats-reaccept",
      service: ConformanceDescriptor.name,
      version: ConformanceDescriptor.version,
      instance: "i1",
    });
    const err = await rejection(() => client.call(endpoint, envelope("echo", { n: 1 }), within(4000)));
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toMatch(/TLS handshake failed: .*certificate/);

    await restart(true);
    const t0 = Date.now();
    const server = transport();
    const served = await server.serve(ConformanceDescriptor, "i1", new TestInbound());
    console.log(`nats: a fresh transport served ${Date.now() - t0} ms after the restart (${served.endpoint})`);
    const back = await timeUntil(
      () =>
        client.call(served.endpoint, envelope("echo", { n: 2 }), within(1000)).then(
          (r) => r.kind === "reply",
          () => false,
        ),
      30_000,
    );
    console.log(`nats: the refused transport answered ${back} ms after the server's restart was served`);
    expect(back).toBeDefined();
    expect(back).toBeLessThan(5000);
  }, 120_000);
});
