import { createTestApp } from "fan/testing";
import { expect, it } from "vitest";
import { mockIntegrationApi } from "../generated/integration/api.js";
import { PublicWines, WineNotFound } from "../generated/retail/wines.js";
import { Wines } from "../src/wines.js";

it("a missing wine is WineNotFound, after asking the integration layer", async () => {
  const integration = mockIntegrationApi().status.returns({ storeId: "s1", pending: 0, errors: [] });
  const app = createTestApp().serve(PublicWines, new Wines(), { config: { apiKey: "test" } }).mock(integration);
  await app.start();
  await expect(app.client(PublicWines).get({ storeId: "s1", inventoryId: "nope" }))
    .rejects.toBeInstanceOf(WineNotFound);
  expect(integration.status.calls).toHaveLength(1);
  await app.stop();
});
