/**
 * `npm start`: every example service of idl/ in one process on the embedded defaults (memory
 * discovery and config, the local transport). It makes a few calls, pushes and events through
 * the generated clients, prints what happened, and exits 0, or 1 when something unexpected did.
 */
import { randomUUID } from "node:crypto";
import { createApp, FanError } from "fan/runtime";
import { pino } from "pino";
import { IntegrationApi, LightspeedSync, SyncFailed } from "../generated/integration/api.js";
import { Lightspeed, PublicWines, type Wine, OutOfStock, WineNotFound } from "../generated/retail/wines.js";
import { Exchange } from "../generated/trading.js";
import { ExchangeService } from "./services/exchange.js";
import { IntegrationService } from "./services/integration.js";
import { LightspeedService, LightspeedSyncService } from "./services/lightspeed.js";
import { WinesService } from "./services/wines.js";

let failures = 0;
const ok = (what: string, detail = ""): void => console.log(`  ✓ ${what}${detail === "" ? "" : ` — ${detail}`}`);
const bad = (what: string, detail: string): void => {
  failures++;
  console.log(`  ✗ ${what} — ${detail}`);
};
const check = (what: string, cond: boolean, detail = ""): void =>
  cond ? ok(what, detail) : bad(what, detail || "unexpected result");

/** Expects `p` to reject with an instance of `cls` (or a FanError of `code`); returns it. */
async function rejects(
  what: string,
  p: Promise<unknown>,
  expected: { cls?: new (...a: never[]) => Error; code: string },
): Promise<FanError | undefined> {
  try {
    await p;
    bad(what, "resolved, expected an error");
  } catch (e) {
    const fine =
      FanError.is(e) && e.code === expected.code && (expected.cls === undefined || e instanceof expected.cls);
    if (fine) {
      ok(what, `${e.code} ${e.name}: ${e.message}`);
      return e;
    }
    bad(what, `unexpected ${String(e)}`);
  }
  return undefined;
}

async function until(cond: () => boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  return cond();
}

const app = createApp({
  cluster: "example",
  logger: pino({ level: process.env.FAN_LOG_LEVEL ?? "warn" }),
  config: { "retail.wines.PublicWines": { apiKey: "demo-key", pageSize: 20 } },
  handleSignals: true,
});
const integration = new IntegrationService(() => app.publisher(IntegrationApi));
const wines = new WinesService(() => app.publisher(PublicWines));
const sync = new LightspeedSyncService();
const exchange = new ExchangeService(() => app.publisher(Exchange));
app
  .serve(IntegrationApi, integration)
  .serve(PublicWines, wines)
  .serve(Lightspeed, new LightspeedService())
  .serve(LightspeedSync, sync)
  .serve(Exchange, exchange);

await app.start();
const served = Object.keys(app.instances());
console.log(`fan example: ${served.length} services in one process (memory discovery, local transport)`);
for (const s of served) console.log(`  · ${s}`);

console.log("\ncalls");
const api = app.client(IntegrationApi);
const catalogue = app.client(PublicWines);
check("IntegrationApi.ping", (await api.ping()) === "pong", "pong");
const syncFailed = await rejects(
  "IntegrationApi.status of an offline store",
  api.status({ storeId: "offline-store" }),
  { cls: SyncFailed, code: "UNAVAILABLE" },
);
check(
  "SyncFailed carries its fields",
  (syncFailed as SyncFailed | undefined)?.reason === "point of sale unreachable",
  `reason "${(syncFailed as SyncFailed | undefined)?.reason}"`,
);

const inventorySizes: number[] = [];
await catalogue.states.inventory.watch((inv) => void inventorySizes.push(Object.keys(inv).length));
const changed: string[] = [];
await catalogue.events.wineChanged.subscribe(
  ({ wine }) => void changed.push(`${wine.name} (stock ${wine.stock.s1 ?? 0})`),
);

const wine: Wine = {
  id: randomUUID(),
  name: "Château Margaux",
  color: "RED",
  unit: "BOTTLE",
  vintage: 2015,
  price: { amount: "499.00", currency: "EUR" },
  tags: ["bordeaux"],
  stock: { s1: 3 },
  createdAt: new Date("2024-03-01T12:00:00Z"),
  abv: 13.5,
};
const created = await catalogue.create({ storeId: "s1", wine });
check(
  "PublicWines.create",
  created.id === wine.id,
  `${created.name} ${created.vintage}, ${created.price.amount} ${created.price.currency}`,
);
const got = await catalogue.get({ storeId: "s1", inventoryId: wine.id });
check(
  "PublicWines.get returns typed values",
  got.createdAt instanceof Date && got.abv === 13.5,
  `createdAt is a Date, abv ${got.abv}`,
);
const reds = await catalogue.list({ storeId: "s1", filter: { color: "RED" } });
check("PublicWines.list with a filter", reds.length === 1, `${reds.length} red wine`);
await rejects("PublicWines.get of an unknown wine", catalogue.get({ storeId: "s1", inventoryId: "nope" }), {
  cls: WineNotFound,
  code: "NOT_FOUND",
});
await catalogue.sell({
  storeId: "s1",
  inventoryId: wine.id,
  payment: { kind: "card", value: { last4: "4242", brand: "visa" } },
  quantity: 2,
});
ok("PublicWines.sell (void rpc, 2 bottles by card)");
const oos = await rejects(
  "PublicWines.sell more than the stock",
  catalogue.sell({ storeId: "s1", inventoryId: wine.id, payment: { kind: "voucher", value: "XMAS" }, quantity: 5 }),
  { cls: OutOfStock, code: "FAILED_PRECONDITION" },
);
check(
  "OutOfStock carries its fields",
  (oos as OutOfStock | undefined)?.available === 1,
  `available ${(oos as OutOfStock | undefined)?.available}`,
);
const invalid = await rejects(
  "PublicWines.create with a 300-character name",
  catalogue.create({ storeId: "s1", wine: { ...wine, name: "x".repeat(300) } }),
  { code: "INVALID_ARGUMENT" },
);
check(
  "INVALID_ARGUMENT names the field",
  (invalid?.details as { path?: string } | undefined)?.path === "wine.name",
  `path ${(invalid?.details as { path?: string } | undefined)?.path}`,
);
await rejects(
  "a call whose deadline already passed",
  catalogue.get({ storeId: "s1", inventoryId: wine.id }, { deadline: Date.now() - 1 }),
  { code: "DEADLINE_EXCEEDED" },
);
const leader = await app.client(LightspeedSync).ping();
check("LightspeedSync (@unique) answers from its leader", leader.includes("fencing token"), leader);
check(
  "Lightspeed.state (a method named like a keyword)",
  (await app.client(Lightspeed).state({ service: "pos" })) === "pos: idle",
);

console.log("\npushes");
await catalogue.invalidate({ storeId: "s1" });
check("PublicWines.invalidate delivered", await until(() => wines.invalidated.includes("s1")), "cache of s1 dropped");
await api.resync({ storeId: "s1" });
check(
  "IntegrationApi.resync delivered, storeSynced broadcast to LightspeedSync",
  await until(() => sync.seen.includes("storeSynced s1")),
);
await app.client(Exchange).quote({ symbol: "WINE", price: { amount: "12.50", currency: "EUR" } });
check("Exchange.quote delivered", await until(() => exchange.quotes.length === 1), exchange.quotes[0] ?? "");

console.log("\nevents and states");
check(
  "wineChanged reached LightspeedSync",
  await until(() => sync.seen.filter((s) => s.startsWith("wineChanged")).length === 2),
  sync.seen.filter((s) => s.startsWith("wineChanged")).join(", "),
);
check("wineChanged reached a client subscriber", await until(() => changed.length === 2), changed.join(" → "));
await app.publisher(PublicWines).emit("cacheFlush", {});
check("cacheFlush (@broadcast) reached LightspeedSync", await until(() => sync.seen.includes("cacheFlush")));
check(
  "inventory state replicated to the watcher",
  await until(() => inventorySizes.length >= 2),
  `sizes seen ${inventorySizes.join(", ")}`,
);
const trades: string[] = [];
await app.client(Exchange).events.traded.subscribe((t) => void trades.push(`${t.quantity} ${t.symbol} at ${t.price}`));
const order = (side: "BUY" | "SELL", quantity: bigint) => ({
  id: randomUUID(),
  symbol: "WINE",
  side,
  price: "12.50",
  quantity,
  placedAt: new Date(),
});
await app.client(Exchange).place({ order: order("SELL", 10n) });
await app.client(Exchange).place({ order: order("BUY", 4n) });
check(
  "Exchange.place matched two orders and published traded",
  await until(() => trades.length === 1),
  trades[0] ?? "",
);
const prices = await app.client(Exchange).states.prices.get();
check(
  "prices state holds the last trade",
  prices.WINE?.last.amount === "12.50",
  `WINE last ${prices.WINE?.last.amount} ${prices.WINE?.last.currency}`,
);
check("LightspeedSync's @timer ran", await until(() => sync.ticks > 0), `${sync.ticks} heartbeat(s)`);

await app.stop();
console.log(
  `\n${failures === 0 ? "all good" : `${failures} unexpected result(s)`}; app stopped (counters: ${JSON.stringify(app.counters)})`,
);
process.exit(failures === 0 ? 0 : 1);
