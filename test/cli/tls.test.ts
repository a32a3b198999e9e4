/**
 * `fanc call` and `fanc health` with `--tls-*` against an https endpoint, as a user runs them
 * (`bin/fanc.mjs` in a child process): Conformance served over http with TLS by another process
 * (test/transports/fixtures/child-app.ts), with a self-signed server certificate made here with
 * openssl, and asking callers for a certificate (mutual TLS, a self-signed client certificate as
 * its own CA). Without the CA the call fails on the certificate; with `--tls-ca` and the client
 * certificate it is answered; `--tls-insecure` skips verifying the server but still presents the
 * client certificate; a certificate without its key, or a file that cannot be read, is refused
 * before anything is sent (exit 2). The brokers' and etcd's TLS is tested with private servers
 * in test/transports/broker-tls-processes.test.ts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { OPENSSL, opensslAvailable, selfSigned } from "../tls-certs.js";
import { type CapturedChild, runFanc, spawnCaptured, until } from "./helpers.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const suite = opensslAvailable ? describeEtcd : describe.skip;
if (!opensslAvailable) console.warn(`SKIPPED fanc --tls-*: no openssl at ${OPENSSL}`);

suite("fanc call / fanc health over https with --tls-ca, --tls-cert, --tls-key, --tls-insecure (child processes)", () => {
  const cluster = randomCluster();
  const dir = mkdtempSync(join(tmpdir(), "fan-tls-"));
  const server = selfSigned(dir, "server", "fan-test-server");
  const client = selfSigned(dir, "client", "fan-test-client");
  const C = ["--idl", "test/transports/fixtures/idl", "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  const MTLS = ["--tls-cert", client.cert, "--tls-key", client.key];
  let service: CapturedChild;

  beforeAll(async () => {
    service = spawnCaptured(join(repo, "node_modules/.bin/tsx"), ["test/transports/fixtures/child-app.ts"], {
      FAN_CHILD_SERVE: "Conformance",
      FAN_CHILD_TRANSPORTS: "http",
      FAN_CHILD_CLUSTER: cluster,
      FAN_ETCD: SHARED_ETCD,
      FAN_CHILD_HTTPS_KEY: server.key,
      FAN_CHILD_HTTPS_CERT: server.cert,
      FAN_CHILD_HTTPS_CLIENT_CA: client.cert,
    });
    await until("the service process is ready", () => /"event":"(ready|start failed)"/.test(service.stdout()), 120_000);
    expect(service.stdout()).toContain('"event":"ready"');
  }, 150_000);

  afterAll(async () => {
    service?.child.kill("SIGTERM");
    await service?.exited;
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it("fails on the self-signed certificate without --tls-ca, and is answered with it and a client certificate", async () => {
    const bare = await runFanc(["call", "Conformance.echo", '{"n":1}', ...C, "--json"]);
    expect(bare.code).toBe(1);
    const failed = JSON.parse(bare.stdout) as {
      ok: boolean;
      transport: string;
      error: { code: string; message: string };
    };
    expect(failed.ok).toBe(false);
    expect(failed.transport).toBe("http");
    expect(failed.error.message).toMatch(/self[- ]signed|certificate/i);

    const ok = await runFanc(["call", "Conformance.echo", '{"n":2}', ...C, "--tls-ca", server.cert, ...MTLS, "--json"]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, transport: "http", value: { n: 2 } });
  }, 120_000);

  it("without a client certificate the server refuses the call; --tls-insecure skips verifying the server only", async () => {
    const noCert = await runFanc(["call", "Conformance.echo", '{"n":3}', ...C, "--tls-ca", server.cert, "--json"]);
    expect(noCert.code).toBe(1);
    expect((JSON.parse(noCert.stdout) as { ok: boolean }).ok).toBe(false);

    const insecure = await runFanc(["call", "Conformance.echo", '{"n":4}', ...C, "--tls-insecure", ...MTLS, "--json"]);
    expect(insecure.code).toBe(0);
    expect(JSON.parse(insecure.stdout)).toMatchObject({ ok: true, value: { n: 4 } });
  }, 120_000);

  it("fanc health asks fan.Health over https with the same flags", async () => {
    const bare = await runFanc(["health", "fan.conformance.Conformance", ...C.slice(2), "--json"]);
    expect(bare.code).toBe(1);
    const ok = await runFanc([
      "health",
      "fan.conformance.Conformance",
      ...C.slice(2),
      "--tls-ca",
      server.cert,
      ...MTLS,
      "--json",
    ]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("SERVING");
  }, 120_000);

  it("refuses a certificate without its key, and a file it cannot read, before sending (exit 2)", async () => {
    const lone = await runFanc(["call", "Conformance.echo", "{}", ...C, "--tls-cert", client.cert]);
    expect(lone.code).toBe(2);
    expect(lone.stderr).toMatch(/--tls-cert and --tls-key go together/);
    const missing = await runFanc(["call", "Conformance.echo", "{}", ...C, "--tls-ca", join(dir, "nope.pem")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--tls-ca: cannot read .*nope\.pem/);
  }, 60_000);
});
