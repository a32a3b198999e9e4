/**
 * A YAML config file keyed by a service's short or misspelt name (`Catalog:` for
 * shop.catalog.Catalog; trial 2 finding 7): the App's start said only "missing apiKey" and
 * `fanc config get Catalog --file f.yml` printed `{}` with exit 0. Both now say the file has no
 * section for the service's full name, list the sections it has and name the one likely meant.
 */
import { createTestApp } from "fan/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run as config } from "../../src/cli/config.js";
import { RegistryConfigSource } from "../../src/runtime/discovery/config.js";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { noSection } from "../../src/runtime/discovery/yaml-config.js";
import { CatalogImpl, captureLogger, catalogConfig } from "../runtime/fixtures/impl.js";
import { Catalog } from "../runtime/fixtures/shop.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { captureIo, TempDir } from "./helpers.js";

/**
 * Catalog with every config key defaulted: nothing refuses its start when its section is kept
 * under another name (trial 4 finding 3: `Keyed:` started on its defaults without a word).
 */
const Defaulted = {
  ...Catalog,
  descriptor: {
    ...Catalog.descriptor,
    config: {
      kind: "struct" as const,
      name: "test.shop.Catalog$config",
      fields: [{ name: "pageSize", schema: { kind: "int" as const, min: 1 }, default: 50 }],
    },
  },
};

/** The App's warnings that its config's section is kept under another name. */
async function startWarnings(opts: Parameters<typeof createTestApp>[0]): Promise<string[]> {
  const { log, records } = captureLogger("info");
  const app = createTestApp({ ...opts, logger: log }).serve(Defaulted, new CatalogImpl());
  await app.start();
  await app.stop();
  return records.filter((r) => r.level === 40 && String(r.msg).startsWith("config:")).map((r) => String(r.msg));
}

const IDL_TEXT = `package shop.catalog

service Catalog {
  config { currency: string = "EUR", adminToken: string @secret }
}

service Orders {
  config { limit: int = 10 }
}
`;

describe("a config file with no section for the service's full name", () => {
  const tmp = new TempDir();
  let idl: string[];
  beforeAll(() => {
    tmp.write("idl/catalog.fan", IDL_TEXT);
    tmp.write("short.yml", "Catalog:\n  adminToken: tok\nshop.catalog.Orders:\n  limit: 5\n");
    tmp.write("typo.yml", "shop.catalog.Catalg:\n  adminToken: tok\n");
    tmp.write("good.yml", "shop.catalog.Catalog:\n  adminToken: tok\n");
    tmp.write("empty.yml", "");
    idl = ["--idl", `${tmp.path}/idl`];
  });
  afterAll(() => tmp.cleanup());

  it("fanc config get names the sections and the one meant, and exits 1 (it printed {} and exited 0)", async () => {
    const short = captureIo();
    expect(await config(["get", "Catalog", "--file", `${tmp.path}/short.yml`, ...idl], short)).toBe(1);
    expect(short.outText()).toBe("");
    expect(short.errText()).toBe(
      `fanc config: ${tmp.path}/short.yml has no section shop.catalog.Catalog (its top-level keys are services' full names); its sections: Catalog, shop.catalog.Orders; did you mean Catalog? Rename it to shop.catalog.Catalog`,
    );
    const typo = captureIo();
    expect(
      await config(["get", "shop.catalog.Catalog", "adminToken", "--file", `${tmp.path}/typo.yml`, ...idl], typo),
    ).toBe(1);
    expect(typo.errText()).toContain("its sections: shop.catalog.Catalg; did you mean shop.catalog.Catalg?");
    const empty = captureIo();
    expect(await config(["get", "Catalog", "--file", `${tmp.path}/empty.yml`, ...idl], empty)).toBe(1);
    expect(empty.errText()).toContain(
      "has no section shop.catalog.Catalog (its top-level keys are services' full names); it has no sections",
    );
  });

  it("fanc config get still prints a section keyed by the full name (a short name on the command line is fine)", async () => {
    const io = captureIo();
    expect(await config(["get", "Catalog", "--file", `${tmp.path}/good.yml`, "--json", ...idl], io), io.errText()).toBe(
      0,
    );
    expect(JSON.parse(io.outText())).toEqual({ adminToken: "[secret]" });
    const other = captureIo();
    expect(await config(["get", "Orders", "--file", `${tmp.path}/short.yml`, "--json", ...idl], other)).toBe(0);
    expect(JSON.parse(other.outText())).toEqual({ limit: 5 });
  });

  it("the App's start names the file's sections beside the missing keys", async () => {
    tmp.write(
      "app.yml",
      `Catalog:\n  ${Object.entries(catalogConfig)
        .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
        .join("\n  ")}\n`,
    );
    const app = createTestApp({ config: `${tmp.path}/app.yml` }).serve(Catalog, new CatalogImpl());
    const err = await app.start().catch((e: unknown) => e);
    await app.stop().catch(() => undefined);
    expect(err).toMatchObject({ code: "FAILED_PRECONDITION" });
    expect((err as Error).message).toContain(
      `config of test.shop.Catalog is missing apiKey, db; ${tmp.path}/app.yml has no section test.shop.Catalog (its top-level keys are services' full names); its sections: Catalog; did you mean Catalog? Rename it to test.shop.Catalog`,
    );
    // With the section under its full name, it starts.
    tmp.write("app.yml", `test.shop.Catalog: ${JSON.stringify(catalogConfig)}\n`);
    const ok = createTestApp({ config: `${tmp.path}/app.yml` }).serve(Catalog, new CatalogImpl());
    await ok.start();
    await ok.stop();
  });

  it("an App whose keys all have defaults starts on them and warns naming the section meant (it said nothing)", async () => {
    tmp.write("defaults.yml", "Catalog:\n  pageSize: 7\nshop.catalog.Orders:\n  limit: 5\n");
    expect(await startWarnings({ config: `${tmp.path}/defaults.yml` })).toEqual([
      `config: defaults in force: ${tmp.path}/defaults.yml has no section test.shop.Catalog (its top-level keys are services' full names); its sections: Catalog, shop.catalog.Orders; did you mean Catalog? Rename it to test.shop.Catalog`,
    ]);
    // No section meant for it (other services' only), or its own: no warning.
    tmp.write("others.yml", "shop.orders.Orders:\n  limit: 5\n");
    expect(await startWarnings({ config: `${tmp.path}/others.yml` })).toEqual([]);
    tmp.write("own.yml", "test.shop.Catalog:\n  pageSize: 7\nCatalog:\n  pageSize: 8\n");
    expect(await startWarnings({ config: `${tmp.path}/own.yml` })).toEqual([]);
  });

  it("suggests a section of another package or a typo, and nothing for an unrelated one", () => {
    expect(noSection("f.yml", "shop.catalog.Catalog", ["shop.Catalog"])).toContain("did you mean shop.Catalog?");
    expect(noSection("f.yml", "shop.catalog.Catalog", ["catalog"])).toContain("did you mean catalog?");
    expect(noSection("f.yml", "shop.catalog.Catalog", ["shop.orders.Orders"])).toBe(
      "f.yml has no section shop.catalog.Catalog (its top-level keys are services' full names); its sections: shop.orders.Orders",
    );
  });
});

// The same mistake in etcd (an `etcdctl put` under the short name or a typo, config left under an
// old package): start said only "missing apiKey, db" and `fanc config get` printed {} with exit 0.
describeEtcd("etcd config under a short or misspelt service name", () => {
  const tmp = new TempDir();
  const cluster = randomCluster(); // its own key prefix, /fan/<cluster>/config/
  const registry = new EtcdRegistry(SHARED_ETCD);
  const source = new RegistryConfigSource(registry, cluster);
  const C = ["--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster, "--idl", ""];
  beforeAll(async () => {
    tmp.write("idl/catalog.fan", IDL_TEXT);
    C[5] = `${tmp.path}/idl`;
    await source.update("Catalog", { adminToken: "tok" });
    await source.update("shop.catalog.Orders", { limit: 5 });
  });
  afterAll(async () => {
    for (const s of ["Catalog", "shop.catalog.Orders", "Catalg"]) await source.replace(s, {});
    await source.close();
    await registry.close();
    tmp.cleanup();
  });
  const head = (svc: string): string =>
    `cluster ${cluster} has no config for ${svc} (its keys are /fan/${cluster}/config/<service's full name>/<key>)`;

  it("fanc config get names the services the cluster has config for and the one meant, and exits 1", async () => {
    const io = captureIo();
    expect(await config(["get", "Catalog", ...C], io)).toBe(1);
    expect(io.outText()).toBe("");
    expect(io.errText()).toBe(
      `fanc config: ${head("shop.catalog.Catalog")}; it has config for: Catalog, shop.catalog.Orders; did you mean Catalog? Move its keys to /fan/${cluster}/config/shop.catalog.Catalog/`,
    );
    const orders = captureIo();
    expect(await config(["get", "Orders", "--json", ...C], orders), orders.errText()).toBe(0);
    expect(JSON.parse(orders.outText())).toEqual({ limit: 5 });
  });

  it("the App's start names them beside the missing keys", async () => {
    await source.update("Catalg", catalogConfig);
    const app = createTestApp({ discovery: registry, cluster }).serve(Catalog, new CatalogImpl());
    const err = await app.start().catch((e: unknown) => e);
    await app.stop().catch(() => undefined);
    expect(err).toMatchObject({ code: "FAILED_PRECONDITION" });
    expect((err as Error).message).toContain(
      `config of test.shop.Catalog is missing apiKey, db; ${head("test.shop.Catalog")}; it has config for: Catalg, Catalog, shop.catalog.Orders; did you mean Catalog?`,
    );
  });

  it("an App whose keys all have defaults warns naming the service meant", async () => {
    expect(await startWarnings({ discovery: registry, cluster })).toEqual([
      `config: defaults in force: ${head("test.shop.Catalog")}; it has config for: Catalg, Catalog, shop.catalog.Orders; did you mean Catalog? Move its keys to /fan/${cluster}/config/test.shop.Catalog/`,
    ]);
  });
});
