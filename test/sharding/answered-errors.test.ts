/**
 * A sharded method's handler that answers UNAVAILABLE — its service's IDL error, or a
 * dependency's relayed — reaches the caller as it answered, not reworded as "shard N of … is
 * unavailable: its owner …" (which is for an owner out of reach): the caller keeps the class,
 * the fields and `relayedFrom`.
 */
import { afterEach, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../../src/testing/index.js";
import { type IntegrationApiMock, mockIntegrationApi, SyncFailed } from "../../generated/integration/api.js";
import { PublicWines } from "../../generated/retail/wines.js";
import { WinesService } from "../../examples/services/wines.js";
import { wine } from "../../examples/testing/wine.js";

let app: TestApp | undefined;
afterEach(() => app?.stop());

async function serveWith(integration: IntegrationApiMock): Promise<TestApp> {
  const a = createTestApp();
  a.serve(PublicWines, new WinesService(() => a.publisher(PublicWines)), { config: { apiKey: "test" } }).mock(
    integration,
  );
  await a.start();
  return a;
}

it("a dependency's UNAVAILABLE error relayed by a sharded method's handler keeps its name, fields and relayedFrom", async () => {
  const integration = mockIntegrationApi().status.throws(new SyncFailed({ storeId: "s1", reason: "backlog" }));
  app = await serveWith(integration);
  const e = await app
    .client(PublicWines)
    .create({ storeId: "s1", wine })
    .catch((x: unknown) => x);
  expect(e).toMatchObject({
    code: "UNAVAILABLE",
    relayedFrom: "integration.api.IntegrationApi",
    details: { error: "integration.api.SyncFailed", fields: { storeId: "s1", reason: "backlog" } },
  });
  expect((e as Error).message).not.toContain("shard");
});
