import { FanError } from "fan/runtime";
import { createTestApp, type TestApp, type TestAppOptions } from "fan/testing";
import { afterEach, expect, it } from "vitest";
import { IntegrationApi, type LightspeedSyncMock, mockLightspeedSync } from "../../generated/integration/api.js";
import { IntegrationService } from "../services/integration.js";

/** IntegrationApi served for real; LightspeedSync, which subscribes to its storeSynced, by a mock. */
async function serveWith(sync: LightspeedSyncMock, opts: TestAppOptions = {}): Promise<TestApp> {
  const app = createTestApp(opts);
  app.serve(IntegrationApi, new IntegrationService(() => app.publisher(IntegrationApi))).mock(sync);
  await app.start();
  return app;
}

let app: TestApp | undefined;
afterEach(() => app?.stop());

it("settled: waits for the push's handler and what it set off", async () => {
  const sync = mockLightspeedSync().onStoreSynced.returns(undefined);
  app = await serveWith(sync);
  // A push resolves once it is queued; its handler runs after.
  await app.client(IntegrationApi).resync({ storeId: "s1" });
  await app.settled();
  expect(sync.onStoreSynced.calls.map((c) => c.req.status.storeId)).toEqual(["s1"]);
});

it("settled: rejects when a handler failed, naming it, its attempts and the last error", async () => {
  const sync = mockLightspeedSync().onStoreSynced.throws(new FanError("UNAVAILABLE", "point of sale down"));
  // maxAttempts 1: no redelivery (by default a failed delivery is made again, 5 times in all).
  app = await serveWith(sync, { transports: { local: { maxAttempts: 1 } } });
  await app.client(IntegrationApi).resync({ storeId: "s1" });
  await expect(app.settled()).rejects.toThrow(
    "event integration.api.IntegrationApi.storeSynced to integration.api.LightspeedSync failed once: UNAVAILABLE point of sale down",
  );
});
