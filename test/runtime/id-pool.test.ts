/**
 * Trace and span ids come from a pool of crypto-random bytes; refilling it is a system call of
 * ~7–14 µs, mostly fixed cost. With a 4 KB pool one in-process call in ~200 paid it (5 refills
 * per 1,000 calls): a thousand calls from the edge must not refill it more than once.
 */
import { createTestApp, type TestApp } from "fan/testing";
import { afterEach, expect, it } from "vitest";
import { randomRefills } from "../../src/runtime/ids.js";
import { CatalogImpl, catalogConfig } from "./fixtures/impl.js";
import { Catalog } from "./fixtures/shop.js";

let app: TestApp | undefined;
afterEach(async () => app?.stop());

it.each([{ serialize: false }, { serialize: true }])(
  "1,000 calls from the edge refill the random pool at most once (serialize: $serialize)",
  async ({ serialize }) => {
    const catalog = new CatalogImpl();
    catalog.items.set("a", { id: "a", name: "n", price: 1, tags: [], createdAt: new Date(0) });
    app = createTestApp({ serialize }).serve(Catalog, catalog, { config: catalogConfig });
    await app.start();
    const client = app.client(Catalog);
    const before = randomRefills();
    const traces = new Set<string>();
    for (let i = 0; i < 1000; i++) expect((await client.get({ id: "a" })).id).toBe("a");
    expect(randomRefills() - before).toBeLessThanOrEqual(1);
    // Each call from the edge still starts a trace of its own.
    for (const s of catalog.seen) if (s.traceId !== undefined) traces.add(s.traceId);
    expect(catalog.seen.length).toBe(1000);
    expect(traces.size).toBe(1000);
  },
);
