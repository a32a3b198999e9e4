/**
 * The Directory (registration, watched cache, resolution), run unchanged against the memory
 * registry and a real etcd. Two Directories on two registry clients stand for two processes.
 */
import { afterEach, beforeEach, expect, it } from "vitest";
import { FanError } from "../../src/runtime/errors.js";
import { RegistryDirectory } from "../../src/runtime/discovery/directory.js";
import type { InstanceInfo } from "../../src/runtime/discovery/types.js";
import type { Registry } from "../../src/runtime/discovery/registry.js";
import { eachBackend, randomCluster, sleep, until, type Backend } from "./helpers.js";

const SVC = "retail.wines.PublicWines";

function info(instanceId: string, version = "1.0.0", extra: Partial<InstanceInfo> = {}) {
  return {
    service: SVC,
    instanceId,
    version,
    endpoints: { http: `http://127.0.0.1/${instanceId}` },
    shards: [],
    appId: "server-app",
    ...extra,
  };
}

eachBackend("directory", (make) => {
  let backend: Backend;
  let serverReg: Registry;
  let server: RegistryDirectory;
  let client: RegistryDirectory;
  let cluster: string;

  beforeEach(() => {
    backend = make();
    cluster = randomCluster();
    serverReg = backend.client();
    server = new RegistryDirectory(serverReg, { cluster, leaseTtlMs: 2000, appId: "server-app" });
    client = new RegistryDirectory(backend.client(), { cluster, appId: "client-app" });
  });
  afterEach(async () => {
    await Promise.allSettled([server.close(), client.close()]);
    await backend.close();
  });

  const ids = (list: readonly InstanceInfo[]): string[] => list.map((i) => i.instanceId).sort();

  it("a registration shows in another client's cache with everything it advertised; a graceful stop removes it at once", async () => {
    const set = await client.watch(SVC);
    expect(set.instances()).toEqual([]);
    const changes: number[] = [];
    set.onChange(() => changes.push(set.instances().length));
    const reg = await server.register(
      info("i1", "1.2.3", { zone: "eu-1", shards: [1, 2], endpoints: { http: "http://h:1", amqp: "amqp://h" } }),
    );
    await until("i1 visible", () => set.instances().length === 1);
    expect(set.instances()[0]).toMatchObject({
      service: SVC,
      instanceId: "i1",
      version: "1.2.3",
      zone: "eu-1",
      shards: [1, 2],
      endpoints: { http: "http://h:1", amqp: "amqp://h" },
      appId: "server-app",
      load: 0,
    });
    expect(set.instances()[0]!.startedAt).toBeGreaterThan(Date.now() - 60_000);
    await reg.update({ load: 7 });
    await until("load update", () => set.instances()[0]?.load === 7);
    const t0 = Date.now();
    await reg.deregister();
    await until("i1 gone", () => set.instances().length === 0, 1000);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(changes).toEqual([1, 1, 0]);
    await expect(reg.update({ load: 1 })).rejects.toThrow(/not registered/);
    await expect(reg.deregister()).resolves.toBeUndefined();
  });

  it("a client that starts watching late lists what is already there", async () => {
    await server.register(info("i1"));
    await server.register(info("i2"));
    const set = await client.watch(SVC);
    expect(ids(set.instances())).toEqual(["i1", "i2"]);
    expect(await client.watch(SVC)).toBe(set);
  });

  it("closing a directory deregisters all its instances", async () => {
    const set = await client.watch(SVC);
    await server.register(info("i1"));
    await server.register(info("i2"));
    await until("two", () => set.instances().length === 2);
    await server.close();
    await until("none", () => set.instances().length === 0, 1000);
  });

  it("version ranges filter instances; none fitting is UNAVAILABLE naming the range and the versions there", async () => {
    await server.register(info("a", "1.4.0"));
    await server.register(info("b", "2.1.0"));
    await server.register(info("c", "2.3.1"));
    await client.watch(SVC);
    for (let i = 0; i < 10; i++) expect((await client.resolve(SVC, { range: "^2.2" })).instanceId).toBe("c");
    expect((await client.resolve(SVC, { range: "~1.4" })).instanceId).toBe("a");
    const err = await client.resolve(SVC, { range: "^3" }).catch((e: unknown) => e);
    expect(FanError.is(err)).toBe(true);
    expect((err as FanError).code).toBe("UNAVAILABLE");
    expect((err as FanError).message).toContain("^3");
    expect((err as FanError).message).toContain("1.4.0, 2.1.0, 2.3.1");
    expect((err as FanError).details).toMatchObject({
      service: SVC,
      range: "^3",
      available: ["1.4.0", "2.1.0", "2.3.1"],
    });
    await expect(client.resolve(SVC, { range: "not a range!" })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });

  it("an unknown service is UNAVAILABLE saying nothing is registered", async () => {
    await expect(client.resolve("no.Such")).rejects.toMatchObject({
      code: "UNAVAILABLE",
      message: expect.stringContaining("no instance is registered"),
    });
  });

  it("transport filter keeps instances that advertise it", async () => {
    await server.register(info("h", "1.0.0", { endpoints: { http: "http://h" } }));
    await server.register(info("q", "1.0.0", { endpoints: { amqp: "amqp://q" } }));
    await client.watch(SVC);
    expect((await client.resolve(SVC, { transport: "amqp" })).instanceId).toBe("q");
    await expect(client.resolve(SVC, { transport: "zmq" })).rejects.toMatchObject({
      code: "UNAVAILABLE",
      message: expect.stringContaining("over zmq"),
    });
  });

  it("round-robin visits every instance in turn; random stays in the set", async () => {
    for (const id of ["a", "b", "c"]) await server.register(info(id));
    await client.watch(SVC);
    const rr = Array.from({ length: 6 }, () => client.pick(SVC, { strategy: "round-robin" }).instanceId);
    expect(rr.slice(0, 3).sort()).toEqual(["a", "b", "c"]);
    expect(rr.slice(3)).toEqual(rr.slice(0, 3));
    const seen = new Set(Array.from({ length: 200 }, () => client.pick(SVC, { strategy: "random" }).instanceId));
    expect([...seen].sort()).toEqual(["a", "b", "c"]);
  });

  it("p2c avoids the instance with the most in-flight calls", async () => {
    for (const id of ["a", "b"]) await server.register(info(id));
    await client.watch(SVC);
    const release = Array.from({ length: 5 }, () => client.acquire("a"));
    expect(client.inFlight("a")).toBe(5);
    for (let i = 0; i < 50; i++) expect(client.pick(SVC, { strategy: "p2c" }).instanceId).toBe("b");
    for (const r of release) r();
    release[0]!();
    expect(client.inFlight("a")).toBe(0);
  });

  it("prefer-local picks an instance of this app when there is one", async () => {
    await server.register(info("remote", "1.0.0", { appId: "other-app" }));
    const local = new RegistryDirectory(serverReg, { cluster, appId: "server-app" });
    try {
      await local.watch(SVC);
      await local.register(info("mine", "1.0.0", { appId: "server-app" }));
      await until("two", async () => (await local.watch(SVC)).instances().length === 2);
      for (let i = 0; i < 10; i++) expect(local.pick(SVC, { strategy: "prefer-local" }).instanceId).toBe("mine");
      await client.watch(SVC);
      await until("two in client", async () => (await client.watch(SVC)).instances().length === 2);
      const picks = new Set(Array.from({ length: 4 }, () => client.pick(SVC, { strategy: "prefer-local" }).instanceId));
      expect([...picks].sort()).toEqual(["mine", "remote"]);
    } finally {
      await local.close();
    }
  });

  it("shard: a key always maps to the same instance, and the hook can replace the strategy", async () => {
    for (const id of ["a", "b", "c", "d"]) await server.register(info(id));
    await client.watch(SVC);
    const owners = new Map<string, string>();
    for (let k = 0; k < 100; k++)
      owners.set(`store-${k}`, client.pick(SVC, { strategy: "shard", shardKey: `store-${k}` }).instanceId);
    for (const [k, id] of owners) expect(client.pick(SVC, { strategy: "shard", shardKey: k }).instanceId).toBe(id);
    expect(new Set(owners.values()).size).toBe(4);
    client.setShardStrategy((c, ctx) => c.find((i) => i.instanceId === `${ctx.shardKey}`) ?? c[0]!);
    expect(client.pick(SVC, { strategy: "shard", shardKey: "c" }).instanceId).toBe("c");
  });

  it("waitFor resolves when a fitting instance appears, and times out naming the range", async () => {
    const waiting = client.waitFor(SVC, "^2", 5000);
    await server.register(info("old", "1.0.0"));
    await sleep(50);
    await server.register(info("new", "2.0.0"));
    await expect(waiting).resolves.toBeUndefined();
    await expect(client.waitFor(SVC, "^9", 150)).rejects.toMatchObject({
      code: "UNAVAILABLE",
      message: expect.stringMatching(/\^9.*150 ms.*1\.0\.0, 2\.0\.0/),
    });
    const ac = new AbortController();
    const aborted = client.waitFor(SVC, "^9", 5000, ac.signal);
    ac.abort();
    await expect(aborted).rejects.toMatchObject({ code: "CANCELLED" });
  });

  it("a lost lease (wiped or expired) makes the instances register again with a new lease", async () => {
    const set = await client.watch(SVC);
    await server.register(info("i1"));
    await server.register(info("i2"));
    await until("registered", () => set.instances().length === 2);
    const before = (await serverReg.get(`/fan/${cluster}/services/${SVC}/i1`))!.lease!;
    let sawGone = false;
    set.onChange(() => (sawGone ||= set.instances().length === 0));
    await backend.revoke(serverReg, before);
    await until("gone after the revoke", () => sawGone, 5000);
    await until("back with a new lease", () => set.instances().length === 2, 5000);
    const after = (await serverReg.get(`/fan/${cluster}/services/${SVC}/i1`))!.lease!;
    expect(after).not.toBe(before);
  });

  it("bad registrations get clear errors", async () => {
    await expect(server.register(info("x", "not-semver"))).rejects.toThrow(/semver/);
    await expect(server.register(info("bad/id"))).rejects.toThrow(/instanceId/);
    await expect(server.register({ ...info("y"), appId: "" })).rejects.toThrow(/appId/);
    await expect(server.register(info("z", "1.0.0", { shards: [1.5] }))).rejects.toThrow(/shards/);
    await server.register(info("dup"));
    await expect(server.register(info("dup"))).rejects.toThrow(/already registered/);
    expect(() => new RegistryDirectory(serverReg, { cluster: "bad cluster" })).toThrow(/cluster/);
  });

  it("a malformed record written by someone else is ignored, not a crash", async () => {
    const set = await client.watch(SVC);
    await serverReg.put(`/fan/${cluster}/services/${SVC}/junk`, "{not json");
    await serverReg.put(`/fan/${cluster}/services/${SVC}/nover`, JSON.stringify({ endpoints: {} }));
    await server.register(info("good"));
    await until("good visible", () => set.instances().length === 1);
    expect(set.instances()[0]!.instanceId).toBe("good");
  });
});
