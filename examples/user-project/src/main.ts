// One process: serves both services on the local transport (memory discovery), calls one.
import { createApp } from "fan/runtime";
import { IntegrationApi } from "../generated/integration/api.js";
import { PublicWines } from "../generated/retail/wines.js";
import { Integration } from "./integration.js";
import { Wines } from "./wines.js";

const handler = new Wines();
handler.stores.set("s1", new Map([["i1", { id: "i1", name: "Chablis", vintage: 2021 }]]));

const app = createApp({ config: { "retail.wines.PublicWines": { apiKey: process.env.API_KEY ?? "dev-key" } } })
  .serve(IntegrationApi, new Integration())
  .serve(PublicWines, handler);
await app.start();                                         // config, preStart, start, postStart
const wines = app.client(PublicWines, { version: "^2" });
const wine = await wines.get({ storeId: "s1", inventoryId: "i1" }, { timeout: 5_000 }); // over @timeout(2s)
await app.publisher(PublicWines).emit("wineChanged", { wine });   // name and payload typed
console.log(`got ${wine.name} ${wine.vintage}`);
await app.stop();
