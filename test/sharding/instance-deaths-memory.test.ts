/**
 * The memory registry's side of `instance-deaths.test.ts`, in one process: an instance whose
 * lease expires (as a dead process's would) has its sharded calls in flight on nats or amqp
 * failed at once, UNAVAILABLE and maybe delivered; one whose record alone is deleted (as a
 * graceful stop does first, its lease kept while it finishes) has them answered.
 */
import { afterEach, expect, it } from "vitest";
import { MemoryRegistry } from "../../src/runtime/discovery/memory.js";
import type { Registry } from "../../src/runtime/discovery/registry.js";
import { type App, createApp, type FanError } from "../../src/runtime/index.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { until } from "../discovery/helpers.js";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { up } from "../transports/processes.js";
import { Store } from "./fixtures/generated/test/shards.js";
import { StoreImpl } from "./fixtures/store.js";
import { tearDown } from "./helpers.js";

const TRANSPORTS = {
  nats: { url: process.env.FAN_NATS_URL ?? "nats://127.0.0.1:4222" },
  amqp: { url: process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672" },
} as const;

describeWithBroker(
  up.nats && up.amqp,
  "NATS and RabbitMQ",
  "instance deaths (memory)",
)("sharded calls in flight to an instance whose lease ends (memory registry)", () => {
  let apps: App[] = [];
  let cluster = "";
  afterEach(async () => {
    await tearDown(cluster, [], apps);
    apps = [];
  });

  const setUp = async (t: keyof typeof TRANSPORTS) => {
    cluster = `deathsmem-${t}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const registry = new MemoryRegistry();
    // The server's view of the registry: once `dead`, it can neither renew nor write again (its
    // registrar would re-register at once under a new lease), as a killed process's.
    let dead = false;
    const refused = (): Promise<never> => Promise.reject(new Error("the server is dead"));
    const serverRegistry: Registry = {
      get: (k) => registry.get(k),
      put: (k, v, o) => (dead ? refused() : registry.put(k, v, o)),
      delete: (k) => (dead ? refused() : registry.delete(k)),
      list: (p) => registry.list(p),
      watch: (p, rev, fn) => registry.watch(p, rev, fn),
      grantLease: (ttl) => (dead ? refused() : registry.grantLease(ttl)),
      close: () => Promise.resolve(),
    };
    const opts = { cluster, discovery: registry, logger: silentLogger(), transports: { [t]: TRANSPORTS[t] } };
    const impl = new StoreImpl();
    impl.holdMs = 1500;
    let holds = 0;
    impl.onHold = () => holds++;
    const server = createApp({ ...opts, discovery: serverRegistry }).serve(Store, impl, { instanceId: "S" });
    const caller = createApp(opts);
    apps.push(server, caller);
    await Promise.all([server.start(), caller.start()]);
    const set = await caller.watch(Store.descriptor.name);
    await until("S registered", () => set.instances().length === 1);
    const lease = (await registry.get(`/fan/${cluster}/services/${Store.descriptor.name}/S`))?.lease as string;
    expect(lease).toBeDefined();
    const call = caller
      .client(Store)
      .store({ storeId: "k" }, { timeout: 10_000, retry: false })
      .then(
        (w) => ({ ok: w.instanceId, at: Date.now() }),
        (e: FanError) => ({ code: e.code, message: e.message, details: e.details as object, at: Date.now() }),
      );
    await until("the call held", () => holds === 1);
    const die = (): void => {
      dead = true;
      registry.expireLease(lease);
    };
    return { registry, die, call, set };
  };

  for (const t of ["nats", "amqp"] as const) {
    it(`${t}: the lease expires: the call fails at once, UNAVAILABLE, maybe delivered`, async () => {
      const { die, call } = await setUp(t);
      const at = Date.now();
      die();
      const out = await call;
      expect(out).toMatchObject({ code: "UNAVAILABLE", details: { maybeDelivered: true } });
      expect(out.at - at).toBeLessThan(1000);
    });

    it(`${t}: the record alone is deleted (the lease lives): the call is answered`, async () => {
      const { registry, call, set } = await setUp(t);
      await registry.delete(`/fan/${cluster}/services/${Store.descriptor.name}/S`);
      await until("S gone from the set", () => set.instances().length === 0);
      expect(await call).toMatchObject({ ok: "S" });
    });
  }
});
