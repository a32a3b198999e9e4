/**
 * Codecs and mocks driven by real `fanc` output: the committed golden files of the `idl`
 * scenario (three packages that import each other), not hand-written schemas.
 */
import { describe, expect, it } from "vitest";
import { FanError } from "../../src/runtime/errors.js";
import { mockIntegrationApi, mockLightspeedSync } from "../../generated/integration/api.js";
import {
  mockPublicWines,
  OutOfStock,
  PaymentCodec,
  type Wine,
  WineCodec,
  WineNotFound,
} from "../../generated/retail/wines.js";

const wire = {
  id: "123e4567-e89b-12d3-a456-426614174000",
  name: "Margaux",
  color: "RED",
  price: { amount: "12.50", currency: "EUR" },
  stock: { s1: 2 },
  byColor: { RED: 1 },
  byYear: { "2015": "great" },
  createdAt: "2024-05-01T10:00:00Z",
  barcode: "1234567890123456789",
  class: "premier cru",
};

describe("generated codecs", () => {
  it("decode with defaults across packages and round-trip", () => {
    const wine = WineCodec.decode(wire, "wine");
    expect(wine).toMatchObject({
      unit: "BOTTLE",
      tags: [],
      abv: 12.5,
      barcode: 1234567890123456789n,
      class: "premier cru",
    });
    expect(WineCodec.decode(JSON.parse(JSON.stringify(WineCodec.encode(wine))))).toEqual(wine);
  });

  it("reject bad input with the field path, in another package's struct too", () => {
    const bad = { ...wire, price: { amount: "12.50", currency: "euro" } };
    expect(() => WineCodec.decode(bad, "wine")).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT", details: { path: "wine.price.currency" } }),
    );
    expect(() => WineCodec.decode({ ...wire, byColor: { BLUE: 1 } }, "wine")).toThrow(
      /wine\.byColor\["BLUE"\]: invalid key/,
    );
    expect(() => PaymentCodec.decode({ kind: "cheque" })).toThrow(/kind: expected one of/);
  });
});

describe("generated mocks", () => {
  const wine = (): Wine => WineCodec.decode(wire);

  it("serve a configured reply, record calls, and chain as in the docs", async () => {
    const integration = mockIntegrationApi().ping.returns("pong");
    expect(await integration.client.ping({})).toBe("pong");
    expect(integration.ping.calls).toHaveLength(1);
    const wines = mockPublicWines().get.returns(wine());
    expect(await wines.client.get({ storeId: "s1", inventoryId: "i1" })).toEqual(wine());
  });

  it("fill a defaulted parameter the caller left out, and reject typed errors as given", async () => {
    const wines = mockPublicWines().sell.throws(new OutOfStock({ inventoryId: "i1", available: 0 }));
    const payment = { kind: "cash" as const, value: { tendered: { amount: "10", currency: "EUR" } } };
    const err = await wines.client.sell({ storeId: "s1", inventoryId: "i1", payment }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutOfStock);
    expect(wines.sell.calls[0]?.req.quantity).toBe(1);
    wines.get.throws(new WineNotFound({ inventoryId: "nope" }));
    await expect(wines.client.get({ storeId: "s", inventoryId: "nope" })).rejects.toBeInstanceOf(WineNotFound);
  });

  it("catch a reply that breaks the IDL", async () => {
    const wines = mockPublicWines().get.returns({ ...wine(), vintage: 1200 });
    const err = await wines.client.get({ storeId: "s1", inventoryId: "i1" }).catch((e: unknown) => e);
    expect(FanError.is(err) && err.code).toBe("INTERNAL");
    expect(FanError.is(err) && err.details).toEqual({ path: "reply.vintage" });
  });

  it("give subscription handlers (onX) their own method mocks, and deliver emitted events", async () => {
    const sync = mockLightspeedSync().onWineChanged.implements(() => undefined);
    await sync.handler.onWineChanged({ wine: wine() }, {} as never);
    expect(sync.onWineChanged.calls).toHaveLength(1);
    const wines = mockPublicWines();
    const seen: Wine[] = [];
    await wines.client.events.wineChanged.subscribe(({ wine: w }) => {
      seen.push(w);
    });
    await wines.emit("wineChanged", { wine: wine() });
    expect(seen).toEqual([wine()]);
  });
});
