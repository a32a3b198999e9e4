/**
 * Issue 9 item 4, across processes: the server in a child process, the caller here, over each
 * network transport. A reply that arrives after the call's deadline never replaces
 * DEADLINE_EXCEEDED, whether the handler noticed its signal (and threw its IDL error or
 * returned) or replied at its deadline without looking. 200 races per transport.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { FanError } from "../../src/runtime/errors.js";
import { captureLog } from "./fixtures/log.js";
import { Conformance, type ConformanceClient } from "./fixtures/generated/fan/conformance.js";
import { type ChildApp, childApp } from "./child.js";
import { ETCD, factoryFor, forgetCluster, runnable, uniqueCluster } from "./processes.js";

const NAMES = ["http", "zmq", "redis", "amqp", "nats"] as const;

for (const name of NAMES) {
  const d = runnable(name) || process.env.FAN_REQUIRE_BROKERS === "1" ? describe : describe.skip;
  d(`late replies over ${name}, server in another process`, () => {
    const cluster = uniqueCluster(`late-${name}`);
    let child: ChildApp;
    let app: App;
    let client: ConformanceClient;

    beforeAll(async () => {
      child = childApp({
        FAN_CHILD_TRANSPORTS: name,
        FAN_CHILD_CLUSTER: cluster,
        FAN_CHILD_SERVE: "Conformance",
        FAN_ETCD: ETCD,
      });
      await child.next("ready");
      app = createApp({
        cluster,
        discovery: `etcd://${ETCD}`,
        transports: { [name]: factoryFor(name) },
        logger: captureLog().log,
      });
      await app.start();
      // 200 deadline failures on one instance on purpose: a circuit breaker would rightly open
      // and fail the rest fast (UNAVAILABLE), so this client has none (test/policy covers it).
      client = app.client(Conformance, { transport: name, policy: { breaker: false } });
      await client.echo({ n: 1 }, { timeout: 10_000 });
    });
    afterAll(async () => {
      await app?.stop();
      await child?.stop();
      await forgetCluster(cluster, [name]);
    });

    it("every one of 200 calls whose reply races the deadline ends DEADLINE_EXCEEDED", async () => {
      const codes = new Map<string, number>();
      for (let round = 0; round < 10; round++) {
        const outcomes = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            client
              .fail(
                { code: ["BLIND_OK", "LATE_TEAPOT", "BLIND_OK", "LATE_OK"][i % 4] as string, message: "late" },
                { timeout: 40 },
              )
              .then(
                () => "resolved",
                (e: unknown) => (FanError.is(e) ? e.code : String(e)),
              ),
          ),
        );
        for (const c of outcomes) codes.set(c, (codes.get(c) ?? 0) + 1);
      }
      expect(Object.fromEntries(codes)).toEqual({ DEADLINE_EXCEEDED: 200 });
    });
  });
}
