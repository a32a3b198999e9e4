/**
 * What a reload of the gateway's IDL leaves behind: each reload that changes a service gives it
 * a new descriptor and so a new client from the App's cache; the one it replaces is released
 * (dropped from the cache, detached from discovery) once no call or stream uses it, and not
 * before: a call in flight across the reload ends on it. Board (fixtures/board-service.ts) runs
 * in a child process on http and redis; the gateway's parts (App, catalog, server, reloader, as
 * `fanc gateway` wires them) run here so that the App's discovery cache can be looked at: the
 * live listeners on Board's instance set (one per client's route) are what used to grow.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { pino } from "pino";
import { loadIdl } from "../../src/cli/call.js";
import { transportsConfig } from "../../src/cli/health.js";
import { Catalog, type GatewayService } from "../../src/gateway/catalog.js";
import { Cors } from "../../src/gateway/cors.js";
import { IdlReloader } from "../../src/gateway/reload.js";
import { GatewayServer } from "../../src/gateway/server.js";
import { type App, createApp } from "../../src/runtime/app/app.js";
import type { ClientCaller, ServiceDescriptor } from "../../src/runtime/descriptor.js";
import type { InstanceSet } from "../../src/runtime/discovery/types.js";
import { type CapturedChild, captureIo, TempDir, until } from "../cli/helpers.js";
import { SHARED_ETCD } from "../discovery/helpers.js";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { forgetCluster, runnable, uniqueCluster, up } from "../transports/processes.js";
import { startBoard, stopChild } from "./helpers.js";

const BOARD = "fan.rl.Board";

/** Board's IDL; `extra` members make each reload's Board differ from the last. */
const idl = (extra = ""): string => `package fan.rl

version "1.0.0"

@transports(http, redis)
service Board {
  rpc post(text: string): int
  rpc slow(ms: int): int
  event posted(text: string)
${extra}}
`;

/** The i-th reload's Board: a member of its own. */
const variant = (i: number): string => idl(`  rpc extra${i}(n: int): int\n`);

/** How many listeners are attached to `set` now (counted from here on: spies on `onChange`). */
function countListeners(set: InstanceSet): () => number {
  let live = 0;
  const on = set.onChange.bind(set);
  set.onChange = (fn) => {
    live++;
    const off = on(fn);
    let removed = false;
    return () => {
      if (!removed) live--;
      removed = true;
      off();
    };
  };
  return () => live;
}

async function post(url: string, method: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}/${BOARD}/${method}`, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
  const text = await res.text();
  return { status: res.status, body: text === "" ? undefined : JSON.parse(text) };
}

describeWithBroker(
  runnable("redis") && up.etcd,
  "redis or etcd",
  "gateway reload clients",
)("a gateway reload releases the clients it replaced", () => {
  const cluster = uniqueCluster("gw-reload-clients");
  const served = new TempDir();
  const dir = new TempDir();
  let board: CapturedChild | undefined;
  let app: App;
  let server: GatewayServer;
  let reloader: IdlReloader;
  let url: string;
  let listeners: () => number;
  const io = captureIo();
  /** The App's client of `d` as the gateway asks for it (cached per descriptor). */
  const clientOf = (d: ServiceDescriptor): ClientCaller => app.client({ descriptor: d, createClient: (c) => c });
  const board$ = (): GatewayService => server.catalog.service(BOARD) as GatewayService;

  beforeAll(async () => {
    board = await startBoard(cluster, served, idl());
    dir.write("board.fan", idl());
    const log = pino({ level: "warn" });
    app = createApp({
      cluster,
      discovery: `etcd://${SHARED_ETCD}`,
      logger: log,
      transports: transportsConfig(new Set(["http", "redis"])),
      telemetry: { healthService: false },
    });
    await app.ready();
    // Spied on before any client's route attaches to it (the set is the App's, one per service).
    listeners = countListeners(await app.watch(BOARD));
    const schemas = await loadIdl(dir.path);
    const catalog = new Catalog(
      schemas.model,
      schemas.services().map((s) => schemas.descriptor(s)),
      clientOf,
    );
    server = new GatewayServer({
      app,
      catalog,
      cors: new Cors(undefined),
      log,
      release: (descriptor) => app.releaseClient({ descriptor }),
    });
    url = await server.listen(0);
    reloader = new IdlReloader({ dir: dir.path, app, server, client: clientOf, io, log });
  }, 240_000);

  afterAll(async () => {
    await reloader?.close();
    await server?.close();
    await app?.stop();
    await stopChild(board);
    await forgetCluster(cluster, ["redis"]);
    served.cleanup();
    dir.cleanup();
  }, 120_000);

  it("after 20 reloads that change Board, one client of it is left, and the replaced ones are gone", async () => {
    expect(await post(url, "post", { text: "first" })).toEqual({ status: 200, body: expect.any(Number) });
    expect(listeners()).toBe(1);
    const replaced: GatewayService[] = [];
    for (let i = 0; i < 20; i++) {
      const before = board$();
      dir.write("board.fan", variant(i));
      await reloader.reload("test");
      expect(io.errText()).toContain(`services changed: ${BOARD} (+rpc extra${i}`);
      expect(board$()).not.toBe(before);
      replaced.push(before);
      // Every version is called over the transport: each gets a route attached to the set.
      expect(await post(url, "post", { text: `v${i}` })).toEqual({ status: 200, body: expect.any(Number) });
    }
    // The current client's route alone (21 without the release).
    expect(listeners()).toBe(1);
    // Out of the App's cache: asking for the old descriptor's client makes a new one...
    const old = replaced[0] as GatewayService;
    const again = clientOf(old.descriptor);
    expect(again).not.toBe(old.client);
    app.releaseClient({ descriptor: old.descriptor });
    // ...and the released one refuses calls rather than following discovery again.
    await expect(old.client.call("post", { text: "late" })).rejects.toMatchObject({ code: "FAILED_PRECONDITION" });
    expect(listeners()).toBe(1);
    // The current one is the App's cached client, untouched.
    expect(clientOf(board$().descriptor)).toBe(board$().client);
  }, 120_000);

  it("a call in flight across a reload ends on its client, which is released after it", async () => {
    expect(await post(url, "post", { text: "warm" })).toEqual({ status: 200, body: expect.any(Number) });
    const old = board$();
    const slows = (): number => board?.stdout().match(/"event":"slow"/g)?.length ?? 0;
    const seen = slows();
    const inFlight = post(url, "slow", { ms: 4000 });
    await until("Board runs the slow call", () => slows() > seen, 20_000);
    dir.write("board.fan", variant(100));
    await reloader.reload("test");
    expect(board$()).not.toBe(old);
    // Still the App's cached client while the call runs on it.
    expect(clientOf(old.descriptor)).toBe(old.client);
    expect(await post(url, "post", { text: "new" })).toEqual({ status: 200, body: expect.any(Number) });
    expect(listeners()).toBe(2);
    expect(await inFlight).toEqual({ status: 200, body: 4000 });
    // Released once it answered.
    await until("the old client is released", () => listeners() === 1, 5_000);
    expect(clientOf(old.descriptor)).not.toBe(old.client);
    app.releaseClient({ descriptor: old.descriptor });
  }, 60_000);
});
