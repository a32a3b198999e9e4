/**
 * Power-of-two-choices counts each call in flight on the instance that is handling it: a call
 * refused by a dead instance (connection refused: never delivered) and failed over to another
 * is counted there, not on the dead one. Two Flaky instances serve over http in their own
 * processes (etcd discovery); one is SIGKILLed, and stays registered until its lease expires.
 */
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import { describeWithBroker, reachable } from "../transports/amqp-broker.js";
import { until } from "../transports/conformance.js";
import { Flaky } from "./fixtures/generated/fan/policytest.js";
import { type FlakyProcess, flakyProcess } from "./flaky-process.js";

const ETCD = (process.env.FAN_ETCD ?? "etcd://127.0.0.1:2379") as `etcd://${string}`;
const etcdUrl = new URL(ETCD.replace("etcd:", "http:"));
const up = await reachable(etcdUrl.hostname, Number(etcdUrl.port));
const cluster = `policy-${process.pid}-p2c-${shortId()}`;

const server = (id: string, delayMs: number): Promise<FlakyProcess> =>
  flakyProcess({ cluster, id, transport: "http", delayMs });

describeWithBroker(
  up,
  "etcd",
  "p2c failover",
)("p2c in-flight counts after a failover (http, between processes)", () => {
  let slow: FlakyProcess;
  let dead: FlakyProcess;
  let app: App;

  beforeAll(async () => {
    [slow, dead] = await Promise.all([server("slow", 1500), server("dead", 0)]);
    app = createApp({
      cluster,
      discovery: ETCD,
      transports: { http: {} },
      logger: pino({ level: "silent" }),
      // The dead instance stays registered (the default lease) for the whole test.
      policy: { breaker: false, retry: false },
    });
    await app.start();
    const set = await app.watch(Flaky.descriptor.name);
    await until(() => set.instances().length === 2, 20_000);
  }, 150_000);

  afterAll(async () => {
    await app?.stop();
    slow?.kill("SIGKILL");
    dead?.kill("SIGKILL");
  });

  it("a call failed over from the dead instance is counted on the one handling it, and released there", async () => {
    await new Promise<void>((resolve) => {
      dead.once("exit", () => resolve());
      dead.kill("SIGKILL");
    });
    const client = app.client(Flaky, { strategy: "p2c" });
    const calls = Array.from({ length: 10 }, (_, n) => client.read({ n }, { timeout: 10_000 }));
    // Every call was refused by the dead instance or sent to the slow one; all end up there.
    await until(() => app.inFlight("slow") === 10, 5000);
    expect(app.inFlight("dead")).toBe(0);
    const answers = await Promise.all(calls);
    expect(new Set(answers.map((a) => a.instance))).toEqual(new Set(["slow"]));
    expect(app.inFlight("slow")).toBe(0);
    expect(app.inFlight("dead")).toBe(0);
  }, 30_000);
});
