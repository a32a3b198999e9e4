/**
 * `fanc health <service>` against a real etcd: an App serving a service on http and another
 * on zmq, asked through their fan.Health; a stopped App drops out; a transport the App's
 * fan.Health is not on is reported (exit 1); exit 1 and a message when nothing is registered.
 */
import { expect, it } from "vitest";
import { run as health } from "../../src/cli/health.js";
import type { Io } from "../../src/cli/io.js";
import { createApp } from "../../src/runtime/index.js";
import { LocalHub, localTransport } from "../../src/runtime/transports/local/index.js";
import { SHARED_ETCD, describeEtcd, randomCluster } from "../discovery/helpers.js";
import { captureLogger } from "../runtime/fixtures/impl.js";
import { C, Hop } from "./fixtures.js";

function capture(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

describeEtcd("fanc health", () => {
  it("asks every instance's App over its transport; a stopped App drops out", async () => {
    const cluster = randomCluster();
    const discovery = `etcd://${SHARED_ETCD}` as const;
    const common = { cluster, discovery, logger: captureLogger("warn").log };
    const onHttp = createApp({
      ...common,
      transports: { local: localTransport({ hub: new LocalHub() }), http: {} },
    }).serve(C, new Hop(), { instanceId: "c-http", transports: ["http"] });
    const onZmq = createApp({
      ...common,
      transports: { local: localTransport({ hub: new LocalHub() }), zmq: {} },
    }).serve(C, new Hop(), { instanceId: "c-zmq", transports: ["zmq"] });
    await onHttp.start();
    await onZmq.start();
    const args = ["test.tel.C", "--discovery", discovery, "--cluster", cluster, "--json"];
    try {
      const io = capture();
      expect(await health(args, io)).toBe(0);
      const rows = JSON.parse(io.stdout.join("\n")) as { instance: string; transport: string; status: string }[];
      expect(rows.sort((a, b) => (a.instance < b.instance ? -1 : 1))).toEqual([
        { instance: "c-http", transport: "http", status: "SERVING" },
        { instance: "c-zmq", transport: "zmq", status: "SERVING" },
      ]);
      // A short name, as fanc ls and fanc call take it.
      const short = capture();
      expect(await health(["C", ...args.slice(1)], short)).toBe(0);
      expect(JSON.parse(short.stdout.join("\n"))).toHaveLength(2);
      // A stopped App is gone from discovery: only the other instance is asked.
      await onZmq.stop();
      const io2 = capture();
      expect(await health(args, io2)).toBe(0);
      expect(JSON.parse(io2.stdout.join("\n"))).toEqual([{ instance: "c-http", transport: "http", status: "SERVING" }]);
      // Pinned to a transport the remaining App's fan.Health is not on: not SERVING, exit 1.
      const io3 = capture();
      expect(await health([...args, "--transport", "zmq"], io3)).toBe(1);
      expect(io3.stdout.join("\n")).toContain("fan.Health not on zmq");
    } finally {
      await onZmq.stop();
      await onHttp.stop();
    }
    const io4 = capture();
    expect(await health(args, io4)).toBe(1);
    expect(io4.stderr.join("\n")).toContain("no instance of test.tel.C");
  }, 60_000);
});
