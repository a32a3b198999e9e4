/**
 * A test app shows a handler's unexpected exception to the test: the INTERNAL error an
 * in-process caller gets has it as `cause` and says where the handler threw. It never crosses
 * a network transport, and a real App does not do it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type App, createApp, FanError } from "../../src/runtime/index.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { createTestApp } from "../../src/testing/index.js";
import { CatalogImpl, catalogConfig } from "./fixtures/impl.js";
import { Catalog } from "./fixtures/shop.js";

let apps: App[] = [];
afterEach(async () => {
  await Promise.all(apps.map((a) => a.stop()));
  apps = [];
});

async function boom(app: App, transport?: "http" | "local"): Promise<FanError> {
  apps.push(app);
  app.serve(Catalog, new CatalogImpl(), { config: catalogConfig });
  await app.start();
  const err = await app
    .client(Catalog, transport === undefined ? {} : { transport })
    .boom()
    .catch((e: unknown) => e);
  expect(FanError.is(err)).toBe(true);
  return err as FanError;
}

describe.each([{ serialize: false }, { serialize: true }])("createTestApp (serialize: $serialize)", ({ serialize }) => {
  it("gives the INTERNAL error the handler's exception as cause and says where it threw", async () => {
    const err = await boom(createTestApp({ serialize }));
    expect(err.code).toBe("INTERNAL");
    expect(err.cause).toBeInstanceOf(Error);
    expect((err.cause as Error).message).toContain("hunter2");
    expect(err.message).toMatch(
      /^internal error \(trace [0-9a-f]{32}\): test\.shop\.Catalog\.boom threw Error: .*hunter2.* \(at test\/runtime\/fixtures\/impl\.ts:\d+:\d+\)$/,
    );
  });
});

describe("where the exception does not go", () => {
  it("not over http, even in a test app: no cause, no message", async () => {
    const err = await boom(createTestApp({ transports: { http: {} } }), "http");
    expect(err.code).toBe("INTERNAL");
    expect(err.cause).toBeUndefined();
    expect(err.message).toMatch(/^internal error \(trace [0-9a-f]{32}\)$/);
    expect(JSON.stringify(err.details ?? null)).not.toContain("hunter2");
  });

  it("not in a real App, even in-process", async () => {
    const err = await boom(createApp({ logger: silentLogger() }));
    expect(err.code).toBe("INTERNAL");
    expect(err.cause).toBeUndefined();
    expect(err.message).not.toContain("hunter2");
  });
});
