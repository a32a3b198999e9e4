/**
 * Versions served at once and traffic rules, over etcd and http between Apps: clients on ^1,
 * ^2 and ~2.0 reach their versions, the default range is the generated code's major, `@since`
 * members skip older instances, and `fanc route` pin / split / clear apply live to running
 * clients (the split checked over 1,000 calls); a short service name is resolved to the full
 * name Apps look rules up by, and an unknown or ambiguous one is refused.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { run as route } from "../../src/cli/route.js";
import { type App, createApp } from "../../src/runtime/index.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { describeEtcd, SHARED_ETCD, until } from "../discovery/helpers.js";
import { Store } from "./fixtures/generated/test/shards.js";
import { StoreImpl, storeAt } from "./fixtures/store.js";

describeEtcd("versions and live traffic rules (etcd, http)", () => {
  const cluster = `ver-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const versions = ["1.4.0", "2.0.3", "2.1.0"];
  const apps: App[] = [];
  let client: App;
  const D = ["--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  const io = { lines: [] as string[], out: (t: string) => io.lines.push(t), err: (t: string) => io.lines.push(t) };

  beforeAll(async () => {
    for (const v of versions) {
      const app = createApp({
        cluster,
        discovery: `etcd://${SHARED_ETCD}`,
        logger: silentLogger(),
        transports: { http: {} },
      }).serve(storeAt(v), new StoreImpl(v), { instanceId: `Store-${v.replaceAll(".", "_")}`, transports: ["http"] });
      apps.push(app);
    }
    await Promise.all(apps.map((a) => a.start()));
    client = createApp({
      cluster,
      discovery: `etcd://${SHARED_ETCD}`,
      logger: silentLogger(),
      transports: { http: {} },
    });
    await client.start();
    const set = await client.watch(Store.descriptor.name);
    await until("three versions", () => set.instances().length === 3, 10_000);
  }, 60_000);

  afterAll(async () => {
    await route(["clear", Store.descriptor.name, ...D], io);
    await Promise.allSettled([client?.stop(), ...apps.map((a) => a.stop())]);
  });

  const versionsOf = async (
    range: string | undefined,
    n = 60,
    method: "any" | "fresh" = "any",
  ): Promise<Set<string>> => {
    const c = client.client(Store, { transport: "http", ...(range === undefined ? {} : { version: range }) });
    const replies = await Promise.all(Array.from({ length: n }, (_, i) => c[method]({ n: i })));
    return new Set(replies.map((r) => r.version));
  };

  it("1.4.0, 2.0.3 and 2.1.0 at once: ^1, ^2 and ~2.0 each reach theirs; the default is the generated major (2.x)", async () => {
    expect(await versionsOf("^1")).toEqual(new Set(["1.4.0"]));
    expect(await versionsOf("~2.0")).toEqual(new Set(["2.0.3"]));
    expect(await versionsOf("^2")).toEqual(new Set(["2.0.3", "2.1.0"]));
    expect(await versionsOf(undefined)).toEqual(new Set(["2.0.3", "2.1.0"]));
  });

  it("@since(2.1.0) members go only to 2.1.0; a client that can reach only older versions gets UNIMPLEMENTED naming both", async () => {
    expect(await versionsOf("^2", 40, "fresh")).toEqual(new Set(["2.1.0"]));
    const e = await client
      .client(Store, { version: "~2.0", transport: "http" })
      .fresh({ n: 1 })
      .then(
        () => undefined,
        (err: { code: string; message: string }) => err,
      );
    expect(e?.code).toBe("UNIMPLEMENTED");
    expect(e?.message).toContain("test.shards.Store.fresh needs version 2.1.0 or later");
    expect(e?.message).toContain("run 2.0.3");
  });

  it("fanc route pin / split / clear apply live to a running client", async () => {
    const c = client.client(Store, { transport: "http" }); // default range 2.x
    const seen = async (n: number): Promise<string[]> =>
      (await Promise.all(Array.from({ length: n }, (_, i) => c.any({ n: i })))).map((r) => r.version);
    expect(new Set(await seen(40))).toEqual(new Set(["2.0.3", "2.1.0"]));

    // pin (blue/green switch, rollback button)
    expect(await route(["pin", Store.descriptor.name, "2.0.3", ...D], io)).toBe(0);
    const t0 = Date.now();
    await until("the pin to apply", async () => (await seen(20)).every((v) => v === "2.0.3"), 10_000, 10);
    const pinMs = Date.now() - t0;
    console.info(`pin applied after ${pinMs} ms`);
    expect(pinMs).toBeLessThan(3000);
    expect(new Set(await seen(200))).toEqual(new Set(["2.0.3"]));

    io.lines.length = 0;
    expect(await route(["show", ...D], io)).toBe(0);
    expect(io.lines.join("\n")).toContain("test.shards.Store: pinned to 2.0.3");

    // split (canary), checked over 1,000 calls: 10% expected, ~9.5 standard deviations of room on each side
    expect(await route(["split", Store.descriptor.name, "2.1.0=10", "2.0.3=90", ...D], io)).toBe(0);
    await until("the split to apply", async () => (await seen(50)).includes("2.1.0"), 10_000, 10);
    const calls = await seen(1000);
    const canary = calls.filter((v) => v === "2.1.0").length;
    console.info(`split 10/90: ${canary} of 1000 calls went to 2.1.0`);
    expect(calls.filter((v) => v !== "2.1.0" && v !== "2.0.3")).toEqual([]);
    expect(canary).toBeGreaterThan(55);
    expect(canary).toBeLessThan(150);

    // a pin nothing satisfies: calls fail naming the rule, nothing silent
    expect(await route(["pin", Store.descriptor.name, "3.0.0", ...D], io)).toBe(0);
    await until(
      "the bad pin to apply",
      () =>
        c.any({ n: 0 }).then(
          () => false,
          (e: { code: string; message: string }) => e.code === "UNAVAILABLE" && e.message.includes('{"pin":"3.0.0"}'),
        ),
      10_000,
      10,
    );

    // clear: back to the client's own range
    expect(await route(["clear", Store.descriptor.name, ...D], io)).toBe(0);
    // (calls made before the clear arrives still fail under the bad pin: not a failure of the clear)
    await until("the clear to apply", async () => new Set(await seen(60).catch(() => [])).size === 2, 10_000, 10);
  }, 60_000);

  it("fanc route refuses bad rules with exit code 2 and writes nothing", async () => {
    io.lines.length = 0;
    expect(await route(["split", Store.descriptor.name, "2.1.0=ten", ...D], io)).toBe(2);
    expect(await route(["pin", Store.descriptor.name, "not a range", ...D], io)).toBe(2);
    expect(await route(["split", Store.descriptor.name, "2.1.0=0", ...D], io)).toBe(2);
    expect(io.lines.join("\n")).toMatch(/every weight is 0/);
  });

  it("fanc route resolves a short name to the full name Apps look up, and refuses an unknown or ambiguous one (exit 2, naming the candidates)", async () => {
    const rules = async (): Promise<unknown> => {
      io.lines.length = 0;
      expect(await route(["show", "--json", ...D], io)).toBe(0);
      return JSON.parse(io.lines.join("\n"));
    };
    io.lines.length = 0;
    // Store is not in the IDL of the working directory (idl/): it is found among the registered services.
    expect(await route(["pin", "Store", "2.0.3", ...D], io)).toBe(0);
    expect(io.lines).toEqual(["test.shards.Store: pinned to 2.0.3"]);
    expect(await rules()).toEqual([{ service: "test.shards.Store", rule: { pin: "2.0.3" } }]);
    io.lines.length = 0;
    expect(await route(["show", "Store", ...D], io)).toBe(0);
    expect(io.lines).toEqual(["test.shards.Store: pinned to 2.0.3"]);
    expect(await route(["clear", "Store", ...D], io)).toBe(0);
    expect(await rules()).toEqual([]);

    io.lines.length = 0;
    expect(await route(["pin", "test.shards.Stor", "2.0.3", ...D], io)).toBe(2);
    expect(io.lines.join("\n")).toMatch(
      /no service "test\.shards\.Stor" in .*registered in cluster .*test\.shards\.Store/,
    );
    // Another Store in the IDL: the short name is ambiguous.
    const idl = mkdtempSync(join(tmpdir(), "route-idl-"));
    writeFileSync(
      join(idl, "other.fan"),
      'package other.shop\n\nversion "1.0.0"\n\nservice Store {\n  rpc ping(): void\n}\n',
    );
    io.lines.length = 0;
    expect(await route(["split", "Store", "2.1.0=10", "2.0.3=90", "--idl", idl, ...D], io)).toBe(2);
    expect(io.lines.join("\n")).toContain('"Store" is ambiguous: other.shop.Store, test.shards.Store');
    expect(await rules()).toEqual([]);
  });
});
