/**
 * Config values of type `duration` written as the IDL writes durations (user trial: `tick:
 * 500ms` in a YAML file, `fanc config set Accounts lookupDelay=2s`) were refused: "expected a
 * duration (a non-negative integer of milliseconds), got string "500ms"". A config duration is
 * now the IDL's literal (`500ms`, `2s`, `1m`, `1h`, read by the compiler's own reader) or a
 * number of milliseconds, in a YAML file, an etcd key and `fanc config set`; the handler sees
 * milliseconds. `fanc` runs as a child process, the App's config lives on the shared etcd.
 */
import { createTestApp } from "fan/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configDecoder, liveConfig } from "../../src/runtime/discovery/live-config.js";
import { RegistryConfigSource } from "../../src/runtime/discovery/config.js";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { CatalogImpl, captureLogger } from "../runtime/fixtures/impl.js";
import { Catalog } from "../runtime/fixtures/shop.js";
import { runFanc, TempDir } from "./helpers.js";

const SCHEMA = {
  kind: "struct" as const,
  name: "test.shop.Catalog$config",
  fields: [
    { name: "lookupDelay", schema: { kind: "duration" as const } },
    { name: "retryAfter", schema: { kind: "duration" as const, max: 3_600_000 }, default: 1000 },
    { name: "backoff", schema: { kind: "list" as const, of: { kind: "duration" as const } }, default: [] },
  ],
};

/** Catalog with duration config: what `Timed`'s IDL below declares. */
const Timed = { ...Catalog, descriptor: { ...Catalog.descriptor, config: SCHEMA } };

const IDL_TEXT = `package test.shop

service Catalog {
  config {
    lookupDelay: duration
    retryAfter: duration = 1s @max(1h)
    backoff: list<duration> = []
  }
}
`;

/** The config the handler saw on its last call. */
async function seen(app: ReturnType<typeof createTestApp>, impl: CatalogImpl): Promise<Record<string, unknown>> {
  await app
    .client(Timed)
    .get({ id: "none" })
    .catch(() => undefined);
  return impl.seen.at(-1)?.config as unknown as Record<string, unknown>;
}

const FORMS = "expected a duration like 500ms, 2s, 1m, 1h or a whole number of milliseconds";

describe("duration config in a YAML file", () => {
  const tmp = new TempDir();
  afterAll(() => tmp.cleanup());

  it("the App starts on 1m, 500ms, 1h and milliseconds, and its handler sees milliseconds", async () => {
    tmp.write(
      "cfg.yml",
      "test.shop.Catalog:\n  lookupDelay: 1m\n  retryAfter: 500ms\n  backoff: [100ms, 2s, 1h, 250]\n",
    );
    const impl = new CatalogImpl();
    const app = createTestApp({ config: `${tmp.path}/cfg.yml` }).serve(Timed, impl);
    await app.start();
    try {
      expect(await seen(app, impl)).toEqual({
        lookupDelay: 60_000,
        retryAfter: 500,
        backoff: [100, 2000, 3_600_000, 250],
      });
    } finally {
      await app.stop();
    }
  });

  it("a value that is no duration is refused naming the key and the forms; a bound names ms", async () => {
    tmp.write("bad.yml", "test.shop.Catalog:\n  lookupDelay: 5 parsecs\n  retryAfter: 2h\n  backoff: [1.5s]\n");
    const app = createTestApp({ config: `${tmp.path}/bad.yml` }).serve(Timed, new CatalogImpl());
    const err = await app.start().catch((e: unknown) => e);
    await app.stop().catch(() => undefined);
    expect((err as Error).message).toContain(`config.lookupDelay: ${FORMS}, got string "5 parsecs"`);
    expect((err as Error).message).toContain("config.retryAfter: must be at most 3600000 ms, got 7200000 ms");
    expect((err as Error).message).toContain(`config.backoff[0]: ${FORMS}, got string "1.5s"`);
  });

  it("fanc config get (a child) prints a duration as written, with no refusal; set takes 2s and milliseconds", async () => {
    tmp.write("idl/shop.fan", IDL_TEXT);
    tmp.write("cli.yml", "test.shop.Catalog:\n  lookupDelay: 1m\n  retryAfter: 500ms\n");
    const args = ["--file", `${tmp.path}/cli.yml`, "--idl", `${tmp.path}/idl`];
    const got = await runFanc(["config", "get", "Catalog", ...args]);
    expect(got.stderr).toBe("");
    expect(got.stdout).toBe("lookupDelay: 1m\nretryAfter: 500ms\n");
    const set = await runFanc(["config", "set", "Catalog", "lookupDelay=2s", "retryAfter=1500", ...args]);
    expect(set.stderr).toBe("");
    expect(set.code).toBe(0);
    expect(tmp.read("cli.yml")).toBe("test.shop.Catalog:\n  lookupDelay: 2s\n  retryAfter: 1500\n");
    const bad = await runFanc(["config", "set", "Catalog", "lookupDelay=5 parsecs", ...args]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe(
      `fanc config: config of test.shop.Catalog refused, nothing written: lookupDelay: ${FORMS}, got string "5 parsecs"`,
    );
  }, 120_000);
});

describeEtcd("duration config on etcd, live", () => {
  const cluster = randomCluster();
  const tmp = new TempDir();
  let registry: EtcdRegistry;
  let C: string[];
  const key = (k: string): string => `/fan/${cluster}/config/test.shop.Catalog/${k}`;

  beforeAll(() => {
    registry = new EtcdRegistry(SHARED_ETCD);
    tmp.write("idl/shop.fan", IDL_TEXT);
    C = ["--idl", `${tmp.path}/idl`, "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  });
  afterAll(async () => {
    for (const k of ["lookupDelay", "retryAfter", "backoff", "pool/idle"])
      await registry.delete(key(k)).catch(() => undefined);
    await registry.close();
    tmp.cleanup();
  });

  it("fanc config set 2s reaches a running App as 2000 ms; etcdctl's bare 90s too; a bad value keeps the old one", async () => {
    const set = await runFanc(["config", "set", "Catalog", "lookupDelay=1m", ...C]);
    expect(set.stderr).toBe("");
    expect(set.code).toBe(0);
    const { log, records } = captureLogger("info");
    const impl = new CatalogImpl();
    const app = createTestApp({ discovery: registry, cluster, logger: log }).serve(Timed, impl);
    await app.start();
    try {
      expect((await seen(app, impl)).lookupDelay).toBe(60_000);

      expect((await runFanc(["config", "set", "Catalog", "lookupDelay=2s", ...C])).code).toBe(0);
      expect(await registry.get(key("lookupDelay"))).toMatchObject({ value: '"2s"' });
      await waitFor(async () => (await seen(app, impl)).lookupDelay === 2000);

      // `etcdctl put .../lookupDelay 90s`: a bare string.
      await registry.put(key("lookupDelay"), "90s");
      await waitFor(async () => (await seen(app, impl)).lookupDelay === 90_000);
      const got = await runFanc(["config", "get", "Catalog", "lookupDelay", ...C]);
      expect(got.stderr).toBe("");
      expect(got.stdout).toBe("90s\n");

      await registry.put(key("lookupDelay"), "5 parsecs");
      await waitFor(async () => records.some((r) => r.msg === "config update rejected; keeping the previous config"));
      const rejected = records.find((r) => r.msg === "config update rejected; keeping the previous config");
      expect(JSON.stringify(rejected)).toContain(`config.lookupDelay: ${FORMS}, got string \\"5 parsecs\\"`);
      expect((await seen(app, impl)).lookupDelay).toBe(90_000);
      const remark = await runFanc(["config", "get", "Catalog", ...C]);
      expect(remark.stderr).toContain(`lookupDelay: ${FORMS}, got string "5 parsecs"`);

      // Milliseconds still work.
      expect((await runFanc(["config", "set", "Catalog", "lookupDelay=2500", ...C])).code).toBe(0);
      await waitFor(async () => (await seen(app, impl)).lookupDelay === 2500);
    } finally {
      await app.stop();
    }
  }, 120_000);

  it("liveConfig over the registry decodes literals at start and on change, in a struct too", async () => {
    const pool = {
      name: "pool",
      optional: true,
      schema: {
        kind: "struct" as const,
        name: "test.shop.Pool",
        fields: [{ name: "idle", schema: { kind: "duration" as const } }],
      },
    };
    const schema = { ...SCHEMA, fields: [...SCHEMA.fields, pool] };
    const source = new RegistryConfigSource(registry, cluster);
    await source.update("test.shop.Catalog", { lookupDelay: "1h", backoff: ["10ms", 20], pool: { idle: "5m" } });
    const live = await liveConfig(
      source,
      "test.shop.Catalog",
      configDecoder<Record<string, unknown>>("Catalog", schema),
    );
    try {
      expect(live.value).toEqual({
        lookupDelay: 3_600_000,
        retryAfter: 1000,
        backoff: [10, 20],
        pool: { idle: 300_000 },
      });
      const changed = new Promise<unknown>((resolve) => live.subscribe((v) => resolve(v)));
      await source.update("test.shop.Catalog", { retryAfter: "30s" });
      expect(await changed).toEqual({
        lookupDelay: 3_600_000,
        retryAfter: 30_000,
        backoff: [10, 20],
        pool: { idle: 300_000 },
      });
    } finally {
      await live.close();
      await source.close();
    }
  });
});

/** Polls an async condition until it holds or 10 s pass. */
async function waitFor(check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("condition not met in 10 s");
    await new Promise((r) => setTimeout(r, 50));
  }
}
