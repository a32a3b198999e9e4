import { createTestApp, type TestApp } from "fan/testing";
import { afterEach, expect, it } from "vitest";
import { IntegrationApi, type IntegrationApiMock, mockIntegrationApi } from "../../generated/integration/api.js";
import { WineNotFound } from "../../generated/retail/wines.js";

let app: TestApp | undefined;
afterEach(() => app?.stop());

async function served(integration: IntegrationApiMock): Promise<TestApp> {
  app = createTestApp().mock(integration);
  await app.start();
  return app;
}

it("a reply that does not fit the IDL names the method, the field and the rule", async () => {
  const integration = mockIntegrationApi().status.returns({ storeId: "s1", pending: 1.5, errors: [] });
  const client = (await served(integration)).client(IntegrationApi);
  await expect(client.status({ storeId: "s1" })).rejects.toThrow(
    /^invalid reply from integration\.api\.IntegrationApi\.status \(trace \w+\): reply\.pending: expected an int/,
  );
});

it("a request that does not fit the IDL names the method it was for", async () => {
  const client = (await served(mockIntegrationApi())).client(IntegrationApi);
  const untyped = JSON.parse('{"store": "s1"}') as { storeId: string };
  await expect(client.status(untyped)).rejects.toThrow(
    "storeId: missing required field of type string, in a request to integration.api.IntegrationApi.status",
  );
});

it("a method given no behaviour rejects with UNIMPLEMENTED", async () => {
  const client = (await served(mockIntegrationApi())).client(IntegrationApi);
  await expect(client.status({ storeId: "s1" })).rejects.toThrow(
    "mock integration.api.IntegrationApi.status has no behaviour: call .returns(), .implements() or .throws()",
  );
});

it("an error the method does not declare becomes INTERNAL, as a handler's would", async () => {
  const integration = mockIntegrationApi().status.throws(new WineNotFound({ inventoryId: "i1" }));
  const client = (await served(integration)).client(IntegrationApi);
  await expect(client.status({ storeId: "s1" })).rejects.toMatchObject({
    code: "INTERNAL",
    message: expect.stringMatching(/which integration\.api\.IntegrationApi\.status does not declare$/),
  });
});
