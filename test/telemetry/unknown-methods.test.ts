/**
 * Method names arriving from elsewhere are the sender's to choose: a served instance counts
 * calls to methods it does not have in one `<unknown>` series per transport, not one series
 * per name. Callers here claim 40 made-up methods through a client whose descriptor lists
 * them: over zmq to a child process (its transport refuses them with UNIMPLEMENTED before the
 * dispatcher; the child's `/metrics` grows no series for them), and in-process between two
 * Apps, where the local transport hands them to the dispatcher (one `<unknown>` series).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type App, type ClientCaller, createApp } from "../../src/runtime/index.js";
import { Code } from "../../src/runtime/errors.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { describeEtcd, SHARED_ETCD, until } from "../discovery/helpers.js";
import { type Child, kill, serveStore } from "../sharding/helpers.js";
import { Store } from "../sharding/fixtures/generated/test/shards.js";
import { StoreImpl } from "../sharding/fixtures/store.js";
import { rejection } from "../transports/conformance.js";
import { parse } from "./prom.js";

const names = Array.from({ length: 40 }, (_, i) => `made_up_${i}`);

/** A client of Store whose descriptor also lists the made-up methods (a dynamic caller, as `fanc call` uses). */
function bogusClient(app: App): ClientCaller {
  const d = Store.descriptor;
  const any = d.methods.any as (typeof d.methods)[string];
  const methods = { ...d.methods, ...Object.fromEntries(names.map((name) => [name, { ...any, name }])) };
  return app.client({ descriptor: { ...d, methods }, createClient: (c: ClientCaller) => c });
}

describeEtcd("calls to unknown methods, between processes (zmq)", () => {
  const cluster = `unk-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  let child: Child;
  let app: App;

  beforeAll(async () => {
    child = await serveStore({ etcd: SHARED_ETCD, cluster, instanceId: "Unk-a", transports: ["http", "zmq"] });
    app = createApp({ cluster, discovery: `etcd://${SHARED_ETCD}`, logger: silentLogger(), transports: { zmq: {} } });
    await app.start();
    const set = await app.watch(Store.descriptor.name);
    await until("the Store instance", () => set.instances().length === 1, 20_000);
  }, 120_000);

  afterAll(async () => {
    await kill(child);
    await app?.stop();
  });

  it("over zmq to another process: refused with UNIMPLEMENTED, no series per name", async () => {
    const caller = bogusClient(app);
    for (const name of names)
      expect((await rejection(() => caller.call(name, { n: 1 }))).code).toBe(Code.UNIMPLEMENTED);
    const set = await app.watch(Store.descriptor.name);
    const url = set.instances()[0]?.endpoints.http as string;
    const s = parse(await (await fetch(`${url}/metrics`)).text());
    expect([...s.keys()].filter((k) => k.includes("made_up_"))).toEqual([]);
  }, 60_000);

  it("in-process (the local transport reaches the dispatcher): one <unknown> server series", async () => {
    const local = `unk-local-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const server = createApp({ cluster: local, discovery: "memory", logger: silentLogger() }).serve(
      Store,
      new StoreImpl(),
    );
    const client = createApp({ cluster: local, discovery: "memory", logger: silentLogger() });
    await server.start();
    await client.start();
    try {
      const caller = bogusClient(client);
      for (const name of names)
        expect((await rejection(() => caller.call(name, { n: 1 }))).code).toBe(Code.UNIMPLEMENTED);
      const s = parse(await server.metrics());
      const served = [...s.keys()].filter((k) => k.startsWith("fan_server_calls_total{"));
      expect(served.filter((k) => k.includes("made_up_"))).toEqual([]);
      const unknown = served.filter((k) => k.includes('method="<unknown>"'));
      expect(unknown).toHaveLength(1);
      expect(unknown[0]).toContain('transport="local"');
      expect(unknown[0]).toContain('code="UNIMPLEMENTED"');
      expect(s.get(unknown[0] as string)).toBe(names.length);
    } finally {
      await client.stop();
      await server.stop();
    }
  });
});
