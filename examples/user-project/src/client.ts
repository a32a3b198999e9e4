// Calls the service that src/service.ts runs in another process, over Redis.
import { createApp } from "fan/runtime";
import { PublicWines, WineNotFound } from "../generated/retail/wines.js";

const app = createApp({
  cluster: process.env.FAN_CLUSTER ?? "dev",
  discovery: (process.env.FAN_DISCOVERY ?? "etcd://127.0.0.1:2379") as `etcd://${string}`,
  transports: { redis: { url: process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379" } },
});
await app.start();
const wines = app.client(PublicWines);
// More than get's @timeout(2s): the first call also looks the service up and opens connections.
const wine = await wines.get({ storeId: "s1", inventoryId: "i1" }, { timeout: 10_000 });
const missing = await wines.get({ storeId: "s1", inventoryId: "nope" }, { timeout: 10_000 }).catch((e: unknown) => e);
console.log(`got ${wine.name}; a missing one is ${missing instanceof WineNotFound ? "WineNotFound" : String(missing)}`);
await app.stop();
