/**
 * The gateway with its clients stubbed, in a process of its own, for `bench/gateway.ts`: the
 * same GatewayServer as `fanc gateway` (routing, body, decode and validation, trace and
 * deadline headers, the reply written back), but each call answers at once with no transport
 * behind it, so a request costs the HTTP exchange plus the gateway's own work. Prints
 * `listening on <url>` once ready.
 */
import { pino } from "pino";
import { loadIdl } from "../../src/cli/call.js";
import { Catalog } from "../../src/gateway/catalog.js";
import { Cors } from "../../src/gateway/cors.js";
import { GatewayServer } from "../../src/gateway/server.js";
import type { App } from "../../src/runtime/app/app.js";

const repo = new URL("../..", import.meta.url).pathname;
const schemas = await loadIdl(`${repo}test/gateway/fixtures/idl`);
const ds = schemas.services().map((s) => schemas.descriptor(s));
const stub = {
  call: async () => ({ total: 1, by: "bench" }),
  push: async () => undefined,
  event: () => ({ subscribe: () => Promise.reject(new Error("stub")) }),
  state: () => {
    throw new Error("stub");
  },
};
const app = { transportNames: () => [] } as unknown as App;
const server = new GatewayServer({
  app,
  catalog: new Catalog(schemas.model, ds, () => stub as never),
  cors: new Cors(undefined),
  log: pino({ level: "silent" }),
});
console.log(`listening on ${await server.listen(0)}`);
process.once("SIGTERM", () => void server.close().then(() => process.exit(0)));
