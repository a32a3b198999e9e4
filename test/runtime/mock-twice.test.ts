/**
 * A test app refuses a second instance of a service version it mocks (`.mock` twice, `.mock`
 * and `.serve`, either order) at the second call, naming the service and what to do: calls
 * would otherwise alternate between the two (B, A, B, A) and the test's assertions flake. Two
 * instances on purpose (failover, routing) stay possible: each names its `instanceId`.
 */
import { createMock, createTestApp, type TestApp } from "fan/testing";
import { afterEach, describe, expect, it } from "vitest";
import { CatalogImpl, catalogConfig } from "./fixtures/impl.js";
import { Catalog, item } from "./fixtures/shop.js";

let app: TestApp | undefined;
afterEach(() => app?.stop());

const twice =
  /test\.shop\.Catalog 1\.2\.0: this test app has it (mocked|served by a handler) already, and calls would alternate between the two/;

describe("one service version mocked twice", () => {
  it("a second .mock is refused, naming the service and saying to reuse the first", () => {
    const first = createMock(Catalog);
    app = createTestApp().mock(first);
    let err: unknown;
    try {
      app.mock(createMock(Catalog));
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "ALREADY_EXISTS", message: expect.stringMatching(twice) });
    expect((err as Error).message).toMatch(/^mock .*configure the first mock instead \(its methods' \.reset\(\)/);
    expect((err as Error).message).toMatch(/give each its own instanceId$/);
  });

  it("the same mock object twice too", () => {
    const m = createMock(Catalog);
    app = createTestApp().mock(m);
    expect(() => app?.mock(m)).toThrow(twice);
  });

  it(".mock and .serve of one service, in either order, are refused", () => {
    app = createTestApp().mock(createMock(Catalog));
    expect(() => app?.serve(Catalog, new CatalogImpl(), { config: catalogConfig })).toThrow(
      /^serve test\.shop\.Catalog 1\.2\.0: this test app has it mocked already.*; mock it or serve it, not both\./,
    );
    const other = createTestApp().serve(Catalog, new CatalogImpl(), { config: catalogConfig });
    expect(() => other.mock(createMock(Catalog))).toThrow(/^mock test\.shop\.Catalog 1\.2\.0: .*served by a handler/);
  });

  it("a refused mock leaves the first one serving every call", async () => {
    const first = createMock(Catalog).method("get").returns(item("first"));
    app = createTestApp().mock(first);
    expect(() => app?.mock(createMock(Catalog).method("get").returns(item("second")))).toThrow(twice);
    await app.start();
    const client = app.client(Catalog);
    for (let i = 0; i < 4; i++) expect(await client.get({ id: "x" })).toEqual(item("first"));
    expect(first.method("get").calls).toHaveLength(4);
  });

  it("two instances on purpose: each names its instanceId", async () => {
    const a = createMock(Catalog).method("get").returns(item("a"));
    const b = createMock(Catalog).method("get").returns(item("b"));
    app = createTestApp().mock(a, { instanceId: "cat-a" }).mock(b, { instanceId: "cat-b" });
    // One unnamed instance among them would be a mistake again.
    expect(() => app?.mock(createMock(Catalog))).toThrow(twice);
    await app.start();
    const client = app.client(Catalog);
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) seen.add((await client.get({ id: "x" })).id);
    expect(seen).toEqual(new Set(["a", "b"]));
  });

  it("two real instances of one service stay possible, as in any App", () => {
    app = createTestApp().serve(Catalog, new CatalogImpl(), { config: catalogConfig });
    expect(() => app?.serve(Catalog, new CatalogImpl(), { config: catalogConfig })).not.toThrow();
  });
});
