// Serves both services over Redis, registered in etcd, until SIGINT or SIGTERM.
import { createApp } from "fan/runtime";
import { IntegrationApi } from "../generated/integration/api.js";
import { PublicWines } from "../generated/retail/wines.js";
import { Integration } from "./integration.js";
import { Wines } from "./wines.js";

const handler = new Wines();
handler.stores.set("s1", new Map([["i1", { id: "i1", name: "Chablis", vintage: 2021 }]]));

const app = createApp({
  cluster: process.env.FAN_CLUSTER ?? "dev",
  discovery: (process.env.FAN_DISCOVERY ?? "etcd://127.0.0.1:2379") as `etcd://${string}`,
  transports: { redis: { url: process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379" } },
  config: { "retail.wines.PublicWines": { apiKey: process.env.API_KEY ?? "dev-key" } },
  handleSignals: true,
})
  .serve(IntegrationApi, new Integration())
  .serve(PublicWines, handler);
await app.start();
console.log("serving");
