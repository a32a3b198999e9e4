/** The example IDL in idl/ uses every construct: it must check clean into the expected model. */
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import {
  checkSources,
  type DeclModel,
  type ProgramModel,
  readSources,
  type ServiceModel,
} from "../../src/compiler/index.js";

const root = fileURLToPath(new URL("../../idl", import.meta.url));
let model: ProgramModel;

function decl(fullName: string): DeclModel {
  const pkg = fullName.slice(0, fullName.lastIndexOf("."));
  const d = model.packages.find((p) => p.name === pkg)?.decls.find((x) => x.fullName === fullName);
  if (d === undefined) throw new Error(`no ${fullName}`);
  return d;
}
function service(fullName: string): ServiceModel {
  const d = decl(fullName);
  if (d.kind !== "service") throw new Error(`${fullName} is not a service`);
  return d;
}

describe("idl/", () => {
  beforeAll(async () => {
    const sources = await readSources(root);
    expect(sources.map((s) => s.path)).toEqual([
      "integration/api.fan",
      "retail/common.fan",
      "retail/wines.fan",
      "trading/exchange.fan",
    ]);
    const r = checkSources(sources, { strict: true });
    expect(r.diagnostics).toEqual([]);
    model = r.model!;
  });

  it("has every package and service", () => {
    expect(model.packages.map((p) => [p.name, p.files])).toEqual([
      ["integration.api", ["integration/api.fan"]],
      ["retail.common", ["retail/common.fan"]],
      ["retail.wines", ["retail/wines.fan"]],
      ["trading", ["trading/exchange.fan"]],
    ]);
    const services = model.packages.flatMap((p) => p.decls.filter((d) => d.kind === "service").map((d) => d.fullName));
    expect(services).toEqual([
      "integration.api.IntegrationApi",
      "integration.api.LightspeedSync",
      "retail.wines.PublicWines",
      "retail.wines.Lightspeed",
      "trading.Exchange",
    ]);
    expect(model.packages[2]!.doc).toBe("Wine catalogue of the retail domain.");
  });

  it("resolves versions, transports, shards and uniqueness", () => {
    const pick = (s: ServiceModel) => [s.version, s.transports, s.shards, s.unique];
    expect(pick(service("retail.wines.PublicWines"))).toEqual([
      "2.1.0",
      ["http", "amqp", "redis", "zmq", "local"],
      64,
      false,
    ]);
    expect(pick(service("retail.wines.Lightspeed"))).toEqual(["2.0.3", ["http", "local"], 16, false]);
    expect(pick(service("integration.api.IntegrationApi"))).toEqual(["1.4.0", ["http", "amqp", "local"], 16, false]);
    expect(pick(service("integration.api.LightspeedSync"))).toEqual(["1.4.0", ["amqp", "redis", "local"], 16, true]);
    expect(pick(service("trading.Exchange"))).toEqual(["1.0.0", ["amqp", "redis", "zmq", "local"], 8, false]);
  });

  it("resolves subscriptions and dependencies to full names", () => {
    expect(service("integration.api.LightspeedSync").subscriptions).toEqual([
      { service: "retail.wines.PublicWines", event: "wineChanged", handler: "onWineChanged" },
      { service: "retail.wines.PublicWines", event: "cacheFlush", handler: "onCacheFlush" },
      { service: "integration.api.IntegrationApi", event: "storeSynced", handler: "onStoreSynced" },
    ]);
    expect(service("retail.wines.PublicWines").depends).toEqual([
      { service: "integration.api.IntegrationApi", range: "^1.0", soft: false },
      { service: "retail.wines.Lightspeed", range: "^2", soft: true },
    ]);
    expect(service("trading.Exchange").depends).toEqual([
      { service: "integration.api.IntegrationApi", range: "^1", soft: true },
    ]);
  });

  it("fills method defaults and reads method decorators", () => {
    const m = Object.fromEntries(service("retail.wines.PublicWines").methods.map((x) => [x.name, x]));
    expect(m.get).toMatchObject({
      kind: "rpc",
      timeoutMs: 2000,
      route: { path: "/store/{storeId}/item/{inventoryId}", params: ["storeId", "inventoryId"] },
      shard: [["storeId"]],
      throws: ["retail.wines.WineNotFound"],
      doc: "Fetch one wine of a store.",
    });
    expect(m.list).toMatchObject({
      timeoutMs: 10_000,
      idempotent: true,
      retry: 3,
      returns: { kind: "list", element: { kind: "ref", target: "retail.wines.Wine", declKind: "struct" } },
    });
    expect(m.create).toMatchObject({
      since: "2.1.0",
      shard: [["storeId"], ["wine", "id"]],
      throws: ["retail.common.NotAuthorized"],
    });
    expect(m.add).toMatchObject({ deprecated: "use create" });
    expect(m.sell).toMatchObject({
      returns: { kind: "void" },
      throws: ["retail.wines.WineNotFound", "retail.wines.OutOfStock"],
    });
    expect(m.sell!.params[3]).toMatchObject({ name: "quantity", default: 1, constraints: { min: 1 } });
    expect(m.invalidate).toEqual({
      kind: "push",
      name: "invalidate",
      params: [expect.objectContaining({ name: "storeId" })],
      returns: { kind: "void" },
      throws: [],
      idempotent: false,
      retry: 0,
      ttlMs: 30_000,
      doc: "Drop cached entries of a store.",
    });
    const events = service("retail.wines.PublicWines").events;
    expect(events.map((e) => [e.name, e.broadcast])).toEqual([
      ["wineChanged", false],
      ["cacheFlush", true],
    ]);
    expect(service("retail.wines.PublicWines").states.map((s) => [s.name, s.mode])).toEqual([
      ["inventory", "delta"],
      ["settings", "full"],
    ]);
  });

  it("turns defaults into wire form and keeps constraints", () => {
    const wine = decl("retail.wines.Wine");
    if (wine.kind !== "struct") throw new Error("Wine is a struct");
    const f = Object.fromEntries(wine.fields.map((x) => [x.name, x]));
    expect(f.unit!.default).toBe("BOTTLE");
    expect(f.tags).toMatchObject({ default: [], constraints: { maxItems: 32 } });
    expect(f.abv).toMatchObject({ default: 12.5, constraints: { min: 0, max: 100 } });
    expect(f.decanting).toMatchObject({ optional: true, constraints: { max: 4 * 3_600_000 } });
    expect(f.barcode).toMatchObject({ type: { kind: "primitive", name: "int64" }, constraints: { min: "0" } });
    expect(f.byColor!.type).toEqual({
      kind: "map",
      key: { kind: "ref", target: "retail.wines.Color", declKind: "enum" },
      value: { kind: "primitive", name: "int" },
    });
    expect(f.class).toMatchObject({
      optional: true,
      doc: "`class` and `delete` are reserved in TypeScript; the generated code still compiles.",
    });
    const cfg = service("trading.Exchange").config;
    expect(cfg.map((c) => [c.name, c.default])).toEqual([
      ["symbols", ["WINE", "GRAPE"]],
      ["maxOrderQuantity", "1000000"],
      ["tick", 250],
    ]);
    expect(service("retail.wines.PublicWines").config.map((c) => [c.name, c.default, c.secret])).toEqual([
      ["pageSize", 50, false],
      ["apiKey", undefined, true],
      ["cacheTtl", 30_000, false],
    ]);
  });

  it("numbers enums and defaults error codes", () => {
    const unit = decl("retail.wines.Unit");
    expect(unit.kind === "enum" && unit.members.map((m) => m.value)).toEqual([0, 1, 2]);
    const oos = decl("retail.wines.OutOfStock");
    expect(oos.kind === "error" && oos.code).toBe("FAILED_PRECONDITION");
    expect(decl("integration.api.SyncFailed")).toMatchObject({ code: "UNAVAILABLE" });
  });
});
