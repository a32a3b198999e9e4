/**
 * The gateway hands one abort signal per keep-alive connection to every call made on it. An
 * in-process service's handler that reads `ctx.signal` follows that signal only while its call
 * runs: many calls on one connection leave nothing on it (`AbortSignal.any` kept a composite
 * per call until the connection closed), and a call that answered is not cancelled when the
 * connection closes later.
 */
import { getEventListeners } from "node:events";
import { Agent, request } from "node:http";
import { createTestApp, type TestApp } from "fan/testing";
import { afterEach, expect, it } from "vitest";
import { connect } from "../../src/browser/index.js";
import { loadIdl } from "../../src/cli/call.js";
import { Catalog } from "../../src/gateway/catalog.js";
import { Cors } from "../../src/gateway/cors.js";
import { GatewayServer } from "../../src/gateway/server.js";
import type { CallContext, ClientCaller, ServiceDescriptor } from "../../src/runtime/index.js";
import { Code } from "../../src/runtime/errors.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { dependants } from "../runtime/fixtures/dependants.js";
import { type Sum, Till, type TillHandler } from "./fixtures/generated/fan/gw.js";

/** Till, keeping the signal of every `peek`. */
class Keeper implements TillHandler {
  readonly signals: AbortSignal[] = [];
  add(): Sum {
    return { total: 0 };
  }
  take(): Sum {
    return { total: 0 };
  }
  sleep({ ms }: { ms: number }, ctx: CallContext<Record<string, never>>): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
  seen(): Record<string, string> {
    return {};
  }
  peek({ by }: { by: string }, ctx: CallContext<Record<string, never>>): Sum {
    this.signals.push(ctx.signal);
    return { total: 1, by };
  }
  note(): void {}
}

let app: TestApp | undefined;
let server: GatewayServer | undefined;
afterEach(async () => {
  await server?.close();
  await app?.stop();
});

const N = 200;

/** Till served in-process behind an in-process gateway; `given` collects the signals the gateway hands its client. */
async function gateway(keeper: Keeper): Promise<{ url: URL; given: Set<AbortSignal> }> {
  app = createTestApp().serve(Till, keeper);
  await app.start();
  const schemas = await loadIdl("test/gateway/fixtures/idl");
  const descriptors = schemas.services().map((s) => schemas.descriptor(s));
  // The signals the gateway hands the client: one per connection.
  const given = new Set<AbortSignal>();
  const a = app;
  const catalog = new Catalog(schemas.model, descriptors, (d: ServiceDescriptor) => {
    const c = a.client({ descriptor: d, createClient: (x: ClientCaller) => x });
    return {
      ...c,
      call: (method, input, opts) => {
        if (opts?.signal !== undefined) given.add(opts.signal);
        return c.call(method, input, opts);
      },
    } satisfies ClientCaller;
  });
  server = new GatewayServer({ app, catalog, cors: new Cors(undefined), log: silentLogger() });
  return { url: new URL(await server.listen(0)), given };
}

it("calls on one keep-alive connection leave nothing on its signal, and are not cancelled when it closes", async () => {
  const keeper = new Keeper();
  const { url, given } = await gateway(keeper);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const get = (path: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path, agent }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end();
    });
  for (let i = 0; i < N; i++) {
    const r = await get(`/till/u${i}/total`);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ total: 1, by: `u${i}` });
  }
  expect(keeper.signals).toHaveLength(N);
  expect(given.size).toBe(1); // one connection served every call
  const connection = [...given][0] as AbortSignal;
  expect(dependants(connection)).toBeLessThan(5);
  agent.destroy();
  const t0 = Date.now();
  while (!connection.aborted && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
  expect(connection.aborted).toBe(true);
  expect(keeper.signals.filter((s) => s.aborted)).toHaveLength(0);
});

it("the browser client follows a long-lived caller signal only while each call runs", async () => {
  const keeper = new Keeper();
  const { url } = await gateway(keeper);
  const till = connect(Till, { url: url.origin });
  const page = new AbortController();
  for (let i = 0; i < 50; i++)
    expect(await till.peek({ by: `p${i}` }, { signal: page.signal })).toEqual({ total: 1, by: `p${i}` });
  expect(getEventListeners(page.signal, "abort")).toHaveLength(0);
  expect(dependants(page.signal)).toBe(0);
  // It still cancels a call in flight.
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 50);
  await expect(till.sleep({ ms: 5000 }, { signal: ac.signal })).rejects.toMatchObject({ code: Code.CANCELLED });
  expect(getEventListeners(ac.signal, "abort")).toHaveLength(0);
});
