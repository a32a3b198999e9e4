import { createTestApp, type TestApp } from "fan/testing";
import { afterEach, expect, it } from "vitest";
import { type IntegrationApiMock, mockIntegrationApi } from "../../generated/integration/api.js";
import { NotAuthorized } from "../../generated/retail/common.js";
import { PublicWines } from "../../generated/retail/wines.js";
import { WinesService } from "../services/wines.js";
import { wine } from "./wine.js";

/** PublicWines served for real, its dependency IntegrationApi by a mock. */
async function serveWith(integration: IntegrationApiMock): Promise<TestApp> {
  const app = createTestApp();
  const wines = new WinesService(() => app.publisher(PublicWines));
  app.serve(PublicWines, wines, { config: { apiKey: "test" } }).mock(integration);
  await app.start();
  return app;
}

let app: TestApp | undefined;
afterEach(() => app?.stop());

it("returns: every call gets the same reply, and the calls are recorded", async () => {
  const integration = mockIntegrationApi().status.returns({ storeId: "s1", pending: 2, errors: [] });
  app = await serveWith(integration);
  await app.client(PublicWines).create({ storeId: "s1", wine });
  // Each recorded call is `{ req }`; its `ctx` is there too, but not enumerable.
  expect(integration.status.calls).toEqual([{ req: { storeId: "s1" } }]);
  expect(integration.status.calls[0]?.ctx?.method).toBe("status");
});

it("implements: a function of the request and the served call's context", async () => {
  const integration = mockIntegrationApi().status.implements((req, ctx) => ({
    storeId: req.storeId,
    pending: ctx?.attempt ?? 0,
    errors: [],
  }));
  app = await serveWith(integration);
  await expect(app.client(PublicWines).create({ storeId: "s2", wine })).resolves.toEqual(wine);
});

it("throws: an error the dependency declares, as the service would get it", async () => {
  const integration = mockIntegrationApi().status.throws(new NotAuthorized({ permission: "sync" }));
  app = await serveWith(integration);
  // WinesService does not catch it: its caller gets the error relayed, code and fields kept.
  await expect(app.client(PublicWines).create({ storeId: "s1", wine })).rejects.toMatchObject({
    code: "PERMISSION_DENIED",
    relayedFrom: "integration.api.IntegrationApi",
  });
});

it("reset: forgets the calls and the behaviour", async () => {
  const integration = mockIntegrationApi().status.returns({ storeId: "s1", pending: 0, errors: [] });
  await integration.client.status({ storeId: "s1" });
  integration.status.reset();
  expect(integration.status.calls).toEqual([]);
  await expect(integration.client.status({ storeId: "s1" })).rejects.toMatchObject({ code: "UNIMPLEMENTED" });
});
