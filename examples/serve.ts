/**
 * One example service in a process of its own (examples/system.ts starts one per service):
 * `tsx examples/serve.ts <Service>` with FAN_DISCOVERY (etcd://...), FAN_CLUSTER and
 * FAN_TRANSPORTS (the transports, preferred first: "redis,http,amqp"). Prints one JSON line
 * `{"ready": "<service>"}` once serving; SIGINT or SIGTERM stops it gracefully.
 */
import { createApp, type ServiceDefinition } from "fan/runtime";
import { pino } from "pino";
import { IntegrationApi, LightspeedSync } from "../generated/integration/api.js";
import { Lightspeed, PublicWines } from "../generated/retail/wines.js";
import { Exchange } from "../generated/trading.js";
import { ExchangeService } from "./services/exchange.js";
import { IntegrationService } from "./services/integration.js";
import { LightspeedService, LightspeedSyncService } from "./services/lightspeed.js";
import { WinesService } from "./services/wines.js";

const URLS: Record<string, object> = {
  redis: { url: process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379" },
  amqp: { url: process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672" },
  http: {},
};
const transports = Object.fromEntries(
  (process.env.FAN_TRANSPORTS ?? "redis,http,amqp").split(",").map((t) => [t, URLS[t] ?? {}]),
);
const app = createApp({
  cluster: process.env.FAN_CLUSTER ?? "dev",
  discovery: (process.env.FAN_DISCOVERY ?? "etcd://127.0.0.1:2379") as `etcd://${string}`,
  transports,
  logger: pino({ level: process.env.FAN_LOG_LEVEL ?? "warn" }),
  config: { "retail.wines.PublicWines": { apiKey: "demo-key", pageSize: 20 } },
  handleSignals: true,
});

const name = process.argv[2];
const services: Record<string, () => void> = {
  IntegrationApi: () => app.serve(IntegrationApi, new IntegrationService(() => app.publisher(IntegrationApi))),
  PublicWines: () => app.serve(PublicWines, new WinesService(() => app.publisher(PublicWines))),
  Lightspeed: () => app.serve(Lightspeed, new LightspeedService()),
  LightspeedSync: () => app.serve(LightspeedSync, new LightspeedSyncService()),
  Exchange: () => app.serve(Exchange, new ExchangeService(() => app.publisher(Exchange))),
};
const serve = name === undefined ? undefined : services[name];
if (serve === undefined) {
  console.error(`usage: tsx examples/serve.ts <${Object.keys(services).join("|")}>`);
  process.exit(2);
}
serve();
await app.start();
const def: Record<string, ServiceDefinition<unknown, unknown>> = { IntegrationApi, PublicWines, Lightspeed, LightspeedSync, Exchange } as never;
console.log(JSON.stringify({ ready: name, service: def[name as string]?.descriptor.name, pid: process.pid }));
