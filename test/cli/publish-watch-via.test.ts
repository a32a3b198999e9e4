/**
 * `fanc publish --via` and `fanc watch --via` on a transport the service's registered instances
 * do not publish on: `watch` waited silently (no update ever came) and `publish` sent the event
 * where none of the service's subscribers listen; both now warn at once, with the check `fanc
 * subscribe --via` makes (subscribe-via.test.ts), then go on as asked. In-process against the
 * shared etcd and the loopback brokers; the instances are registered records (what discovery
 * says is all fanc reads).
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { run as events } from "../../src/cli/events.js";
import { run as watchCli } from "../../src/cli/state-watch.js";
import { RegistryDirectory } from "../../src/runtime/discovery/directory.js";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { captureIo, until } from "./helpers.js";

const CONFORMANCE = "fan.conformance.Conformance";
const BOARD = "fan.replica.Board";
const BOARD_IDL = fileURLToPath(new URL("../states/fixtures/idl", import.meta.url));

describeEtcd("fanc publish --via and fanc watch --via a transport the instances do not publish on", () => {
  const cluster = randomCluster();
  const D = ["--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  let reg: EtcdRegistry;
  let dir: RegistryDirectory;

  beforeAll(async () => {
    reg = new EtcdRegistry(SHARED_ETCD);
    dir = new RegistryDirectory(reg, { cluster, appId: "app-1" });
    for (const [service, id] of [
      [CONFORMANCE, "conf-nats"],
      [BOARD, "board-nats"],
    ] as const)
      await dir.register({
        service,
        instanceId: id,
        version: "1.0.0",
        endpoints: { nats: `nats://${cluster}/${service}/1.0.0/${id}` },
        events: "nats",
        shards: [],
        appId: "app-1",
      });
  });

  afterAll(async () => {
    await dir?.close();
    await reg?.close();
  });

  /** Runs `fanc publish Conformance.ping {"n":1} --via <via>`; returns its exit code and stderr lines. */
  async function publish(via: string): Promise<{ code: number; stderr: string[] }> {
    const io = captureIo();
    const args = ["Conformance.ping", '{"n":1}', "--idl", "test/transports/fixtures/idl", ...D, "--via", via];
    const code = await events(args, io, "publish");
    return { code, stderr: io.stderr };
  }

  /** Runs `fanc watch Board.entries --via <via>` until it is watching, then stops it; returns its stderr lines. */
  async function watch(via: string): Promise<string[]> {
    const io = captureIo();
    const stop = new AbortController();
    const done = watchCli(["Board.entries", "--idl", BOARD_IDL, ...D, "--via", via], io, stop.signal);
    await until("watching", () => io.errText().includes("watching ") || io.errText().includes("fanc watch:"));
    stop.abort();
    expect(await done).toBe(0);
    return io.stderr;
  }

  it("publish warns before it publishes, naming where the instances publish, and still publishes", async () => {
    const { code, stderr } = await publish("redis");
    expect(code).toBe(0);
    expect(stderr[0]).toBe(
      `fanc: warning: --via redis: the instances of ${CONFORMANCE} publish its events on nats (conf-nats@1.0.0), not on redis: its subscribers listen where they publish, so this event likely reaches none of them; --via nats reaches them`,
    );
    expect(stderr[1]).toMatch(/^published · [\d.]+ ms · over redis · trace [0-9a-f]{32}$/);
    expect(stderr).toHaveLength(2);
  });

  it("publish says nothing when --via is the transport they publish on", async () => {
    const { code, stderr } = await publish("nats");
    expect(code).toBe(0);
    expect(stderr).toHaveLength(1);
    expect(stderr[0]).toMatch(/^published · [\d.]+ ms · over nats · /);
  });

  it("watch warns at once, before it waits, naming where the state's owners publish its updates", async () => {
    const stderr = await watch("redis");
    expect(stderr[0]).toBe(
      `fanc: warning: --via redis: the instances of ${BOARD} publish its state updates on nats (board-nats@1.0.0), not on redis: no update they publish reaches this watch; --via nats gets them`,
    );
    expect(stderr[1]).toMatch(
      new RegExp(`^watching ${BOARD}\\.entries over redis \\(snapshots over nats\\), major 1 `),
    );
  });

  it("watch says nothing when --via is the transport they publish on", async () => {
    const stderr = await watch("nats");
    expect(stderr.join("\n")).not.toContain("warning");
    expect(stderr[0]).toMatch(new RegExp(`^watching ${BOARD}\\.entries over nats, major 1 `));
  });
});
