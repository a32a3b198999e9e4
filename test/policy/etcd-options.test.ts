/**
 * etcd connection options reach etcd: user and password (the test etcd has auth off, so it
 * answers that authentication is not enabled — proof the credentials were sent), and TLS
 * (a TLS handshake against the plain-text test etcd fails as UNAVAILABLE).
 */
import { expect, it } from "vitest";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { describeWithBroker, reachable } from "../transports/amqp-broker.js";

const up = await reachable("127.0.0.1", 2379);

describeWithBroker(
  up,
  "etcd",
  "etcd options",
)("etcd auth and TLS options", () => {
  it("sends the user and password", async () => {
    const r = new EtcdRegistry("etcd://127.0.0.1:2379", { auth: { username: "nobody", password: "x" } });
    try {
      await expect(r.get("/fan/policy-test")).rejects.toThrow(/authentication is not enabled/);
    } finally {
      await r.close();
    }
  });

  it("speaks TLS to https:// hosts when given TLS options", async () => {
    const r = new EtcdRegistry("etcd://https://127.0.0.1:2379", {
      tls: { ca: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" },
      dialTimeoutMs: 1000,
      callTimeoutMs: 3000,
    });
    try {
      // The etcd on 2379 speaks plain gRPC: without TLS this get would succeed. With it, the
      // handshake fails — as a TLS error, or (a loaded machine) gRPC's "No connection established".
      await expect(r.get("/fan/policy-test")).rejects.toThrow(/TLS|secure|SSL|certificate|No connection established/i);
    } finally {
      await r.close();
    }
  });
});
