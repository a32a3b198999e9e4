/**
 * What a broker connection does when the broker's certificate is refused, against a bare TLS
 * listener with a self-signed certificate (the client trusts nothing it signed): callers fail
 * at once naming the URL, without its password; and with a URL list, only when every URL
 * refuses (a cluster node with a bad certificate must not fail calls while another restarts).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as netServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type Server } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "../../src/runtime/errors.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { formatEndpoint } from "../../src/runtime/transports/amqp/names.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import { formatEndpoint as redisEndpoint } from "../../src/runtime/transports/redis/names.js";
import { redactUrl, tlsReason } from "../../src/runtime/transports/tls-refusal.js";
import type { Transport } from "../../src/runtime/transports/transport.js";
import { envelope, rejection, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { captureLog } from "./fixtures/log.js";
import { opensslAvailable, selfSigned } from "../tls-certs.js";

describe("redactUrl", () => {
  it.each([
    ["amqp://guest:guest@127.0.0.1:5672/vh", "amqp://guest:***@127.0.0.1:5672/vh"],
    ["redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"],
    ["amqps://u:p@ss@host:5671", "amqps://u:***@host:5671"],
    ["redis://user@host:6379", "redis://user@host:6379"],
    ["nats://127.0.0.1:4222", "nats://127.0.0.1:4222"],
    ["127.0.0.1:6379", "127.0.0.1:6379"],
  ])("%s -> %s", (url, want) => {
    expect(redactUrl(url)).toBe(want);
  });
});

describe("tlsReason", () => {
  it.each([
    [
      "140:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../ssl/record/rec_layer_s3.c:1605:SSL alert number 116",
      "tlsv13 alert certificate required",
    ],
    [
      "C0:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1605:SSL alert number 42",
      "sslv3 alert bad certificate",
    ],
    [
      "409D4E8CAB7F0000:error:0A000412:SSL routines:ssl3_read_bytes:ssl/tls alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:918:SSL alert number 42",
      "ssl/tls alert bad certificate",
    ],
    ["self-signed certificate", "self-signed certificate"],
  ])("%s", (message, want) => {
    expect(tlsReason(new Error(message))).toBe(want);
  });
});

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const s = netServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe.skipIf(!opensslAvailable)("a refused broker certificate", () => {
  let dir: string;
  let server: Server;
  let port: number;
  const open: Transport[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "fan-tls-refusal-"));
    const cert = selfSigned(dir, "broker", "fan-test-broker");
    server = createServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (s) => s.destroy());
    server.on("tlsClientError", () => undefined);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const t of open) await t.close().catch(() => undefined);
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const address = { cluster: "tls-refusal", service: ConformanceDescriptor.name, version: "1.0.0", instance: "i1" };
  const endpoint = formatEndpoint(address);

  it("fails an amqp call at once, naming the URL without its password", async () => {
    const t = amqpTransport({ url: `amqps://guest:hunter2@127.0.0.1:${port}`, reconnectMaxDelayMs: 100 })({
      cluster: "tls-refusal",
      log: captureLog().log,
      maxPayloadBytes: 1 << 20,
    });
    open.push(t);
    const t0 = Date.now();
    const err = await rejection(() => t.call(endpoint, envelope("echo", { n: 1 }), within(5000)));
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toMatch(/TLS handshake failed/);
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).not.toContain("hunter2");
  });

  it("waits for its deadline while another amqp URL of the list is only down", async () => {
    const t = amqpTransport({
      url: [`amqps://127.0.0.1:${port}`, `amqp://127.0.0.1:${await deadPort()}`],
      reconnectMinDelayMs: 20,
      reconnectMaxDelayMs: 100,
    })({ cluster: "tls-refusal", log: captureLog().log, maxPayloadBytes: 1 << 20 });
    open.push(t);
    const t0 = Date.now();
    const err = await rejection(() => t.call(endpoint, envelope("echo", { n: 2 }), within(1500)));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(err.message).not.toMatch(/TLS handshake failed/);
  });

  it("fails a redis call at once, naming the URL without its password", async () => {
    const t = redisTransport({ url: `rediss://:hunter2@127.0.0.1:${port}` })({
      cluster: "tls-refusal",
      log: captureLog().log,
      maxPayloadBytes: 1 << 20,
    });
    open.push(t);
    const t0 = Date.now();
    const err = await rejection(() => t.call(redisEndpoint(address), envelope("echo", { n: 3 }), within(5000)));
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toMatch(/TLS handshake failed/);
    expect(err.message).not.toContain("hunter2");
  });
});
