/**
 * https on the http transport, between processes: a Flaky instance serves with a self-signed
 * certificate made here with the openssl CLI (test/tls-certs.ts) (`transports.http.tls`), registers an `https://`
 * endpoint in etcd, and answers a client that trusts the certificate (`clientTls.ca`); a
 * client that does not is refused at the handshake with UNAVAILABLE naming the certificate
 * problem, and the server's `/health` answers over https.
 */
import { mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Agent, request } from "undici";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { Code } from "../../src/runtime/errors.js";
import { shortId } from "../../src/runtime/ids.js";
import { Flaky } from "../policy/fixtures/generated/fan/policytest.js";
import { type FlakyProcess, flakyProcess } from "../policy/flaky-process.js";
import { selfSigned } from "../tls-certs.js";
import { describeWithBroker, reachable } from "./amqp-broker.js";
import { rejection, until } from "./conformance.js";

const ETCD = (process.env.FAN_ETCD ?? "etcd://127.0.0.1:2379") as `etcd://${string}`;
const etcdUrl = new URL(ETCD.replace("etcd:", "http:"));
const up = await reachable(etcdUrl.hostname, Number(etcdUrl.port));
const cluster = `https-${process.pid}-${shortId()}`;

describeWithBroker(
  up,
  "etcd",
  "https",
)("https on the http transport (etcd, between processes)", () => {
  const dir = mkdtempSync(join(tmpdir(), "fan-https-"));
  let child: FlakyProcess;
  let cert: Buffer;
  const apps: App[] = [];

  const caller = async (clientTls?: { ca?: Buffer; rejectUnauthorized?: boolean }): Promise<App> => {
    const app = createApp({
      cluster,
      discovery: ETCD,
      transports: { http: clientTls === undefined ? {} : { clientTls } },
      logger: pino({ level: "silent" }),
      policy: { retry: false, breaker: false },
    });
    apps.push(app);
    await app.start();
    const set = await app.watch(Flaky.descriptor.name);
    await until(() => set.instances().length === 1, 20_000);
    return app;
  };

  beforeAll(async () => {
    // flaky-server.ts reads key.pem and cert.pem from $FLAKY_TLS_DIR.
    const made = selfSigned(dir, "server", "fan-test");
    renameSync(made.key, join(dir, "key.pem"));
    renameSync(made.cert, join(dir, "cert.pem"));
    cert = readFileSync(join(dir, "cert.pem"));
    child = await flakyProcess({ cluster, id: "tls-a", transport: "http", env: { FLAKY_TLS_DIR: dir } });
  }, 150_000);

  afterAll(async () => {
    await Promise.allSettled(apps.map((a) => a.stop()));
    child?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("registers an https:// endpoint and answers a client that trusts its certificate", async () => {
    const app = await caller({ ca: cert });
    const set = await app.watch(Flaky.descriptor.name);
    const endpoint = set.instances()[0]?.endpoints.http as string;
    expect(endpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const client = app.client(Flaky);
    expect(await client.read({ n: 1 })).toEqual({ instance: "tls-a", n: 1 });
    expect(await client.write({ n: 2 })).toEqual({ instance: "tls-a", n: 2 });
    // The admin routes are on the same https server.
    const health = await request(`${endpoint}/health`, { dispatcher: new Agent({ connect: { ca: cert } }) });
    expect(health.statusCode).toBe(200);
    await health.body.dump();
  }, 30_000);

  it("a client that does not trust the certificate is refused with UNAVAILABLE naming why", async () => {
    const app = await caller();
    const err = await rejection(() => app.client(Flaky).read({ n: 3 }, { timeout: 5000 }));
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toMatch(/self[- ]signed|certificate/i);
  }, 30_000);
});
