/**
 * `fanc subscribe --via` on a transport the service's registered instances do not publish on:
 * it used to wait silently (nothing they publish reaches it); it now warns at once, naming the
 * transports and instances they publish on, as the gateway refuses the same mismatch with a 503.
 * In-process against the shared etcd and the loopback redis; the instances are registered
 * records (what discovery says is all fanc reads).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { run as events } from "../../src/cli/events.js";
import { RegistryDirectory } from "../../src/runtime/discovery/directory.js";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { captureIo, until } from "./helpers.js";

const SERVICE = "fan.conformance.Conformance";

describeEtcd("fanc subscribe --via a transport the instances do not publish on", () => {
  const cluster = randomCluster();
  const C = ["--idl", "test/transports/fixtures/idl", "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  let reg: EtcdRegistry;
  let dir: RegistryDirectory;

  beforeAll(async () => {
    reg = new EtcdRegistry(SHARED_ETCD);
    dir = new RegistryDirectory(reg, { cluster, appId: "app-1" });
    await dir.register({
      service: SERVICE,
      instanceId: "conf-nats",
      version: "1.0.0",
      endpoints: { nats: `nats://${cluster}/${SERVICE}/1.0.0/conf-nats` },
      events: "nats",
      shards: [],
      appId: "app-1",
    });
  });

  afterAll(async () => {
    await dir?.close();
    await reg?.close();
  });

  /** Runs `fanc subscribe ... --via <via>` until it is subscribed, then stops it; returns its stderr lines. */
  async function subscribe(via: string): Promise<string[]> {
    const io = captureIo();
    const stop = new AbortController();
    const done = events(["Conformance.ping", ...C, "--via", via], io, "subscribe", stop.signal);
    await until("subscribed", () => io.errText().includes("subscribed to") || io.errText().includes("fanc subscribe:"));
    stop.abort();
    expect(await done).toBe(0);
    return io.stderr;
  }

  it("warns at once, before it waits, naming where the instances publish", async () => {
    expect(await subscribe("redis")).toEqual([
      `fanc: warning: --via redis: the instances of ${SERVICE} publish its events on nats (conf-nats@1.0.0), not on redis: nothing they publish reaches this subscription; --via nats gets them`,
      `subscribed to ${SERVICE}.ping over redis (Ctrl-C to stop)`,
    ]);
  });

  it("says nothing when --via is the transport they publish on", async () => {
    expect(await subscribe("nats")).toEqual([`subscribed to ${SERVICE}.ping over nats (Ctrl-C to stop)`]);
  });
});
