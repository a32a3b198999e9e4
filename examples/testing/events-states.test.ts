import { createTestApp } from "fan/testing";
import { expect, it } from "vitest";
import { LightspeedSync, type LightspeedSyncHandler, mockIntegrationApi } from "../../generated/integration/api.js";
import { mockPublicWines, PublicWines } from "../../generated/retail/wines.js";
import { wine } from "./wine.js";

it("emit: a mocked service's event reaches the served services that subscribe to it", async () => {
  const wines = mockPublicWines();
  const seen: string[] = [];
  const sync: LightspeedSyncHandler = {
    ping: () => "pong",
    onWineChanged: ({ wine }) => void seen.push(wine.name),
    onCacheFlush: () => undefined,
    onStoreSynced: () => undefined,
  };
  // LightspeedSync subscribes to PublicWines.wineChanged and depends on IntegrationApi: both mocked.
  const app = createTestApp().serve(LightspeedSync, sync).mock(wines).mock(mockIntegrationApi());
  await app.start();
  try {
    // In a test app, emit resolves once the subscribers in it have run: no waiting needed.
    await wines.emit("wineChanged", { wine });
    expect(seen).toEqual(["Chablis"]);
  } finally {
    await app.stop();
  }
});

it("setState, patchState: the state a mocked service owns, as its watchers see it", async () => {
  const wines = mockPublicWines();
  const app = createTestApp().mock(wines);
  await app.start();
  try {
    wines.setState("settings", { currency: "CHF", open: false });
    await expect(app.client(PublicWines).states.settings.get()).resolves.toEqual({ currency: "CHF", open: false });
    wines.setState("inventory", {});
    wines.patchState("inventory", { [wine.id]: wine });
    await expect(app.client(PublicWines).states.inventory.get()).resolves.toEqual({ [wine.id]: wine });
  } finally {
    await app.stop();
  }
});

it("the types: names and values the IDL does not have do not compile", () => {
  const wines = mockPublicWines();
  // @ts-expect-error PublicWines has no state "inventoryy"
  expect(() => wines.setState("inventoryy", {})).toThrow("mock retail.wines.PublicWines has no state inventoryy");
  // @ts-expect-error settings.open is a bool
  expect(() => wines.setState("settings", { currency: "EUR", open: "yes" })).toThrow(/settings\.open: expected a bool/);
  wines.setState("inventory", { [wine.id]: wine });
  // @ts-expect-error a patch is typed too: an entry of inventory is a (patch of a) Wine
  expect(() => wines.patchState("inventory", { w1: "LOST" })).toThrow(/inventory\["w1"\]: expected an object/);
  // @ts-expect-error Wine.name is required: a patch cannot remove it
  expect(() => wines.patchState("inventory", { [wine.id]: { name: null } })).toThrow(/required field/);
  // @ts-expect-error wineChanged carries { wine: Wine }
  void wines.emit("wineChanged", { wine: "Chablis" }).catch(() => undefined);
  wines.get.implements((req, ctx) => {
    // The context is the handler's: ctx.config is PublicWinesConfig.
    const pageSize: number | undefined = ctx?.config.pageSize;
    // @ts-expect-error PublicWinesConfig has no "pagesize"
    void ctx?.config.pagesize;
    return { ...wine, id: req.inventoryId, tags: [String(pageSize)] };
  });
});
