/**
 * A nats client without a client certificate against a nats-server requiring one (mutual TLS),
 * on a private server: nats.js cannot report this refusal (src/runtime/transports/nats/tls-probe.ts),
 * so the transport's probe must. Calls fail at once naming the URL and the TLS reason; with a URL
 * list, only when every URL refuses; and once the server accepts the client (restarted without
 * `verify`), calls are answered on the same transport.
 */
import { expect, it } from "vitest";
import { Code } from "../../src/runtime/errors.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { formatEndpoint } from "../../src/runtime/transports/nats/names.js";
import type { Transport } from "../../src/runtime/transports/transport.js";
import { opensslAvailable, type TestPki, testPki } from "../tls-certs.js";
import { describeWithBroker, freePort } from "./amqp-broker.js";
import { freePrivatePort } from "../ports.js";
import { envelope, rejection, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { natsServerAvailable, PrivateNats } from "./nats-server.js";

const possible = opensslAvailable && (await natsServerAvailable());

describeWithBroker(
  possible,
  "openssl and nats-server",
  "nats TLS refusal",
)("a nats client without a certificate against mutual TLS (private nats-server)", () => {
  const open: Transport[] = [];
  /** A transport with `tls`; nats.js gives up an attempt after 3 s (20 s by default) so the test sees the server accept sooner. */
  const transport = (url: string | string[], tls: { ca: string; cert?: string; key?: string }): Transport => {
    const t = natsTransport({ url, nats: { tls, timeout: 3000 } })({
      cluster: "nats-tls-refusal",
      log: captureLog().log,
      maxPayloadBytes: 1 << 20,
    });
    open.push(t);
    return t;
  };

  const withServer = async (fn: (pki: TestPki, port: number, nats: PrivateNats) => Promise<void>): Promise<void> => {
    const pki = testPki("fan-nats-refusal-");
    const port = await freePrivatePort();
    const nats = new PrivateNats(port, pki.serverTls(true));
    await nats.start();
    try {
      await fn(pki, port, nats);
    } finally {
      for (const t of open.splice(0)) await t.close().catch(() => undefined);
      await nats.destroy();
      pki.remove();
    }
  };

  it("fails calls at once naming the URL, and is answered once the server accepts the client", async () => {
    await withServer(async (pki, port, nats) => {
      const ca = pki.pem(pki.ca.cert);
      const server = transport(nats.url, { ca, cert: pki.pem(pki.client.cert), key: pki.pem(pki.client.key) });
      const { endpoint } = await server.serve(ConformanceDescriptor, "r1", new TestInbound());
      const client = transport(nats.url, { ca });

      const t0 = Date.now();
      const err = await rejection(() => client.call(endpoint, envelope("echo", { n: 1 }), within(4000)));
      const ms = Date.now() - t0;
      console.log(`nats without a client certificate: ${err.code} after ${ms} ms: ${err.message}`);
      expect(ms).toBeLessThan(3000);
      expect(err.code).toBe(Code.UNAVAILABLE);
      expect(err.message).toContain(`127.0.0.1:${port}`);
      expect(err.message).toMatch(/TLS handshake failed: .*certificate/);

      await nats.destroy();
      const accepting = new PrivateNats(port, pki.serverTls(false));
      await accepting.start();
      try {
        const restarted = Date.now();
        await until(async () => {
          const reply = await client.call(endpoint, envelope("echo", { n: 2 }), within(1000)).catch(() => undefined);
          return reply?.kind === "reply";
        }, 30_000);
        console.log(`nats: answered ${Date.now() - restarted} ms after the server stopped asking for a certificate`);
      } finally {
        for (const t of open.splice(0)) await t.close().catch(() => undefined);
        await accepting.destroy();
      }
    });
  }, 60_000);

  it("waits for its deadline while another URL of the list is only down", async () => {
    await withServer(async (pki, _port, nats) => {
      const client = transport([nats.url, `nats://127.0.0.1:${await freePort()}`], { ca: pki.pem(pki.ca.cert) });
      const endpoint = formatEndpoint({
        cluster: "nats-tls-refusal",
        service: ConformanceDescriptor.name,
        version: "1.0.0",
        instance: "i1",
      });
      const t0 = Date.now();
      const err = await rejection(() => client.call(endpoint, envelope("echo", { n: 3 }), within(2500)));
      expect(Date.now() - t0).toBeGreaterThanOrEqual(2400);
      expect(err.message).not.toMatch(/TLS handshake failed/);
    });
  }, 60_000);
});
