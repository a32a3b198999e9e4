/**
 * Config sources (plain object, registry on memory and etcd, YAML file) and typed live config:
 * updates reach a running reader, a bad update is rejected with the old value kept.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ObjectConfigSource, RegistryConfigSource } from "../../src/runtime/discovery/config.js";
import { configDecoder, liveConfig } from "../../src/runtime/discovery/live-config.js";
import type { ConfigSource } from "../../src/runtime/discovery/types.js";
import { YamlConfigSource } from "../../src/runtime/discovery/yaml-config.js";
import type { StructSchema } from "../../src/runtime/codec/schema.js";
import { eachBackend, randomCluster, until, type Backend } from "./helpers.js";

const SVC = "retail.wines.PublicWines";

const schema: StructSchema = {
  kind: "struct",
  name: "retail.wines.PublicWines$config",
  fields: [
    { name: "pageSize", schema: { kind: "int", min: 1, max: 500 }, default: 50 },
    { name: "apiKey", schema: { kind: "string" }, secret: true },
    { name: "region", schema: { kind: "string" } },
  ],
};
interface Cfg {
  pageSize: number;
  apiKey: string;
  region: string;
}

/** The behaviour every source shares. */
function sourceSuite(
  open: () => Promise<{ source: ConfigSource; other: ConfigSource }>,
  close: () => Promise<void>,
): void {
  let source: ConfigSource;
  let other: ConfigSource;
  beforeEach(async () => ({ source, other } = await open()));
  afterEach(async () => {
    await Promise.allSettled([source.close(), other.close()]);
    await close();
  });

  it("get is {} for an unknown service; update merges top-level keys and null deletes", async () => {
    expect(await source.get(SVC)).toEqual({});
    await source.update(SVC, { pageSize: 10, region: "eu", nested: { a: [1, 2] } });
    expect(await other.get(SVC)).toEqual({ pageSize: 10, region: "eu", nested: { a: [1, 2] } });
    await source.update(SVC, { pageSize: 20, region: null });
    expect(await other.get(SVC)).toEqual({ pageSize: 20, nested: { a: [1, 2] } });
  });

  it("watch sees each change (whole new config) made by another client", async () => {
    const seen: Record<string, unknown>[] = [];
    const stop = await source.watch(SVC, (raw) => seen.push(raw));
    await other.update(SVC, { pageSize: 5 });
    await until("first change", () => seen.some((s) => s.pageSize === 5));
    await other.update(SVC, { apiKey: "k" });
    await until("second change", () => seen.some((s) => s.apiKey === "k" && s.pageSize === 5));
    await stop();
    const n = seen.length;
    await other.update(SVC, { pageSize: 6 });
    await new Promise((r) => setTimeout(r, 400));
    expect(seen.length).toBe(n);
  });

  it("an update of several keys reaches a watcher as one change (no half-applied config), and so does a delete", async () => {
    await other.update(SVC, { host: "a", port: 1, region: "eu" });
    const seen: Record<string, unknown>[] = [];
    const stop = await source.watch(SVC, (raw) => seen.push(raw));
    await other.update(SVC, { host: "b", port: 2, region: null });
    await until("the change", () => seen.some((s) => s.host === "b"));
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual([{ host: "b", port: 2 }]);
    await stop();
  });

  it("a typed live config follows good updates and rejects bad ones, keeping the old value", async () => {
    await other.update(SVC, { apiKey: "s3cret", region: "eu" });
    const cfg = await liveConfig<Cfg>(source, SVC, configDecoder<Cfg>(SVC, schema));
    expect(cfg.value).toEqual({ pageSize: 50, apiKey: "s3cret", region: "eu" });
    const changes: number[] = [];
    cfg.subscribe((v) => changes.push(v.pageSize));
    const rejected: string[] = [];
    cfg.onRejected((e) => rejected.push(e.message));
    await other.update(SVC, { pageSize: 25 });
    await until("update reaches the reader", () => cfg.value.pageSize === 25);
    await other.update(SVC, { pageSize: 9999 });
    await until("bad update rejected", () => rejected.length === 1);
    expect(cfg.value.pageSize).toBe(25);
    expect(rejected[0]).toContain("pageSize");
    expect(rejected[0]).not.toContain("s3cret");
    await other.update(SVC, { pageSize: 30 });
    await until("next good update", () => cfg.value.pageSize === 30);
    expect(changes).toEqual([25, 30]);
    await cfg.close();
  });

  it("a config that does not decode at start names every missing or wrong key", async () => {
    await other.update(SVC, { pageSize: "many" });
    const err = (await liveConfig(source, SVC, configDecoder(SVC, schema)).then(
      () => new Error("liveConfig accepted a bad config"),
      (e: unknown) => e,
    )) as Error;
    expect(err).toMatchObject({ code: "INVALID_ARGUMENT" });
    expect(err.message).toMatch(/pageSize/);
    expect(err.message).toMatch(/apiKey: missing/);
    expect(err.message).toMatch(/region: missing/);
  });

  it("a wrong @secret value is named by its key, never quoted", () => {
    const decode = configDecoder(SVC, schema);
    const err = (() => {
      try {
        decode({ apiKey: 987654321, region: 7 });
      } catch (e) {
        return e as Error;
      }
      return new Error("the decoder accepted a bad config");
    })();
    expect(err.message).toContain("apiKey: expected a string (the value is @secret: not shown)");
    expect(err.message).toContain("region: expected a string, got number 7");
    expect(err.message).not.toContain("987654321");
    // Each key once: the codec's message starts with it already.
    expect(err.message).not.toContain("region: region:");
    expect(err.message).not.toContain("apiKey: apiKey:");
  });

  it("bad patches get clear errors", async () => {
    await expect(source.update(SVC, [] as unknown as Record<string, unknown>)).rejects.toThrow(/object/);
    await expect(source.update(SVC, JSON.parse('{"__proto__": 1}') as Record<string, unknown>)).rejects.toThrow(
      /not allowed/,
    );
  });
}

describe("config [object]", () => {
  let shared: ObjectConfigSource;
  sourceSuite(
    async () => {
      shared = new ObjectConfigSource();
      return { source: shared, other: shared };
    },
    async () => undefined,
  );
  it("starts from the objects given", async () => {
    const s = new ObjectConfigSource({ [SVC]: { pageSize: 3 } });
    expect(await s.get(SVC)).toEqual({ pageSize: 3 });
    const copy = await s.get(SVC);
    copy.pageSize = 4;
    expect(await s.get(SVC)).toEqual({ pageSize: 3 });
  });
});

eachBackend("config [registry]", (make) => {
  let backend: Backend;
  let cluster: string;
  sourceSuite(
    async () => {
      backend = make();
      cluster = randomCluster();
      return {
        source: new RegistryConfigSource(backend.client(), cluster),
        other: new RegistryConfigSource(backend.client(), cluster),
      };
    },
    () => backend.close(),
  );
  it("keeps one key per top-level config key, readable as plain JSON", async () => {
    const reg = backend.client();
    const s = new RegistryConfigSource(reg, cluster);
    await s.update(SVC, { pageSize: 7, tags: ["a"] });
    expect((await reg.get(`/fan/${cluster}/config/${SVC}/pageSize`))?.value).toBe("7");
    expect((await reg.get(`/fan/${cluster}/config/${SVC}/tags`))?.value).toBe('["a"]');
    await reg.put(`/fan/${cluster}/config/${SVC}/region`, "eu-west"); // a bare etcdctl put
    expect(await s.get(SVC)).toEqual({ pageSize: 7, tags: ["a"], region: "eu-west" });
    await s.close();
  });
});

describe("config [yaml file]", () => {
  let dir: string;
  let file: string;
  sourceSuite(
    async () => {
      dir = mkdtempSync(join(tmpdir(), "fan-cfg-"));
      file = join(dir, "settings.yml");
      const source = new YamlConfigSource(file, { pollMs: 50 });
      return { source, other: source };
    },
    async () => rmSync(dir, { recursive: true, force: true }),
  );

  it("reads the file, follows edits to it, and keeps the old values when an edit does not parse", async () => {
    file = join(dir, "edited.yml");
    writeFileSync(file, `${SVC}:\n  pageSize: 10\n  apiKey: k\n  region: eu\n`);
    const source = new YamlConfigSource(file, { pollMs: 50 });
    const cfg = await liveConfig<Cfg>(source, SVC, configDecoder<Cfg>(SVC, schema));
    expect(cfg.value.pageSize).toBe(10);
    writeFileSync(file, `${SVC}:\n  pageSize: 11\n  apiKey: k\n  region: eu\n`);
    await until("file edit applied", () => cfg.value.pageSize === 11, 20_000);
    writeFileSync(file, `${SVC}:\n  pageSize: [unclosed\n`);
    await new Promise((r) => setTimeout(r, 400));
    expect(cfg.value.pageSize).toBe(11);
    expect(await source.get(SVC)).toMatchObject({ pageSize: 11 });
    await source.update(SVC, { pageSize: 12 });
    expect(readFileSync(file, "utf8")).toContain("pageSize: 12");
    await cfg.close();
    await source.close();
  });

  it("an edit made after the first read but before the watch starts is still picked up", async () => {
    file = join(dir, "early-edit.yml");
    writeFileSync(file, `${SVC}:\n  pageSize: 10\n  apiKey: k\n  region: eu\n`);
    const source = new YamlConfigSource(file, { pollMs: 50 });
    expect(await source.get(SVC)).toMatchObject({ pageSize: 10 }); // read, not yet watched
    writeFileSync(file, `${SVC}:\n  pageSize: 11\n  apiKey: k\n  region: eu\n`);
    const cfg = await liveConfig<Cfg>(source, SVC, configDecoder<Cfg>(SVC, schema));
    await until("the early edit applied", () => cfg.value.pageSize === 11, 3000);
    await cfg.close();
    await source.close();
  });

  it("a file whose top level is not a map of services is a clear error", async () => {
    file = join(dir, "bad.yml");
    writeFileSync(file, "- just\n- a list\n");
    await expect(new YamlConfigSource(file).get(SVC)).rejects.toThrow(/service names/);
  });
});

describe("configDecoder", () => {
  it("names each bad or missing value inside a struct by its path, and never quotes a @secret one there", () => {
    const withDb: StructSchema = {
      kind: "struct",
      name: "retail.wines.PublicWines$config",
      fields: [
        {
          name: "db",
          schema: {
            kind: "struct",
            name: "retail.wines.Db",
            fields: [
              { name: "url", schema: { kind: "string" } },
              { name: "password", schema: { kind: "string" }, secret: true },
              { name: "pool", schema: { kind: "int", min: 1 } },
            ],
          },
        },
      ],
    };
    let err: { message: string; details: { problems: { key: string }[] } } | undefined;
    try {
      configDecoder(SVC, withDb)({ db: { password: 24681357, pool: 0 } });
    } catch (e) {
      err = e as typeof err;
    }
    expect(err?.details.problems.map((p) => p.key)).toEqual(["db.url", "db.password", "db.pool"]);
    expect(err?.message).toContain("db.url: missing");
    expect(err?.message).toContain("expected a string (the value is @secret: not shown)");
    expect(err?.message).not.toContain("24681357");
  });
});
