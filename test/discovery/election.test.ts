/**
 * Leader election and unique ids, on memory and on a real etcd: one leader at a time, a
 * standby takes over within the TTL with a larger fencing token, resign hands over at once.
 */
import { afterEach, beforeEach, expect, it } from "vitest";
import { campaign, leader, type Leadership } from "../../src/runtime/discovery/election.js";
import { nextId } from "../../src/runtime/discovery/ids.js";
import type { Registry } from "../../src/runtime/discovery/registry.js";
import { eachBackend, randomCluster, sleep, until, type Backend } from "./helpers.js";

const SVC = "retail.sync.LightspeedSync";

eachBackend("election", (make) => {
  let backend: Backend;
  let a: Registry;
  let b: Registry;
  let cluster: string;

  beforeEach(() => {
    backend = make();
    a = backend.client();
    b = backend.client();
    cluster = randomCluster();
  });
  afterEach(() => backend.close());

  it("the first candidate leads; the standby waits and takes over when the leader resigns", async () => {
    const first = await campaign(a, { cluster, service: SVC, instanceId: "one", ttlMs: 2000 });
    let second: Leadership | undefined;
    const standby = campaign(b, { cluster, service: SVC, instanceId: "two", ttlMs: 2000 }).then((l) => (second = l));
    await sleep(200);
    expect(second).toBeUndefined();
    expect(await leader(b, cluster, SVC)).toEqual({ instanceId: "one", fencingToken: first.fencingToken });
    const lostFirst: string[] = [];
    first.onLost(() => lostFirst.push("lost"));
    await first.resign();
    await standby;
    expect(second!.active).toBe(true);
    expect(BigInt(second!.fencingToken)).toBeGreaterThan(BigInt(first.fencingToken));
    expect((await leader(a, cluster, SVC))?.instanceId).toBe("two");
    expect(first.active).toBe(false);
    await second!.resign();
    expect(await leader(a, cluster, SVC)).toBeUndefined();
  });

  it("a leader whose lease is lost (died, wiped) is replaced within the TTL, with a new fencing token", async () => {
    const first = await campaign(a, { cluster, service: SVC, instanceId: "one", ttlMs: 2000 });
    let lostAt = 0;
    first.onLost(() => (lostAt = Date.now()));
    const standby = campaign(b, { cluster, service: SVC, instanceId: "two", ttlMs: 2000 });
    await sleep(100);
    const leaseId = (await a.get(`/fan/${cluster}/election/${SVC}/one`))!.lease!;
    const t0 = Date.now();
    await backend.revoke(a, leaseId);
    const second = await standby;
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(BigInt(second.fencingToken)).toBeGreaterThan(BigInt(first.fencingToken));
    await until("old leader told it lost", () => lostAt > 0, 3000);
    expect(first.active).toBe(false);
    await second.resign();
  });

  it("aborting the signal withdraws a waiting candidate", async () => {
    const first = await campaign(a, { cluster, service: SVC, instanceId: "one", ttlMs: 2000 });
    const ac = new AbortController();
    const waiting = campaign(b, { cluster, service: SVC, instanceId: "two", ttlMs: 2000, signal: ac.signal });
    const candidates = async () => (await a.list(`/fan/${cluster}/election/${SVC}/`)).items.length;
    await until("second candidate waiting", async () => (await candidates()) === 2); // else the abort proves nothing
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ name: "AbortError" });
    await until("candidate key removed", async () => (await candidates()) === 1);
    await first.resign();
  });

  it("an abort that lands while the standby reads the candidate list still withdraws it", async () => {
    const first = await campaign(a, { cluster, service: SVC, instanceId: "one", ttlMs: 2000 });
    const ac = new AbortController();
    // The signal aborts during the standby's list call, before it starts waiting for the
    // leader's key to go: a listener added after that would never fire.
    const abortingList: Registry = {
      get: (k) => b.get(k),
      put: (k, v, o) => b.put(k, v, o),
      delete: (k) => b.delete(k),
      watch: (p, r, fn) => b.watch(p, r, fn),
      grantLease: (t) => b.grantLease(t),
      close: () => b.close(),
      list: async (p) => {
        const r = await b.list(p);
        ac.abort();
        return r;
      },
    };
    const t0 = Date.now();
    const waiting = campaign(abortingList, {
      cluster,
      service: SVC,
      instanceId: "two",
      ttlMs: 2000,
      signal: ac.signal,
    });
    await expect(waiting).rejects.toMatchObject({ name: "AbortError" });
    expect(Date.now() - t0).toBeLessThan(1500);
    const candidates = async () => (await a.list(`/fan/${cluster}/election/${SVC}/`)).items.length;
    await until("candidate key removed", async () => (await candidates()) === 1);
    expect(first.active).toBe(true);
    await first.resign();
  });

  it("campaigning again with the same instance id supersedes its stale candidacy", async () => {
    const first = await campaign(a, { cluster, service: SVC, instanceId: "one", ttlMs: 2000 });
    let lost = false;
    first.onLost(() => {
      lost = true;
    });
    const again = await campaign(b, { cluster, service: SVC, instanceId: "one", ttlMs: 2000 });
    expect(BigInt(again.fencingToken)).toBeGreaterThan(BigInt(first.fencingToken));
    await until("the stale leadership is told it lost", () => lost, 3000);
    expect(first.active).toBe(false);
    expect(again.active).toBe(true);
    await again.resign();
  });

  it("registry failures while campaigning are retried, not fatal", async () => {
    let failures = 2;
    const flaky: Registry = {
      get: (k) => a.get(k),
      put: (k, v, o) => (failures-- > 0 ? Promise.reject(new Error("registry unreachable")) : a.put(k, v, o)),
      delete: (k) => a.delete(k),
      list: (p) => a.list(p),
      watch: (p, r, fn) => a.watch(p, r, fn),
      grantLease: (t) => a.grantLease(t),
      close: async () => undefined,
    };
    const lead = await campaign(flaky, { cluster, service: SVC, instanceId: "one", ttlMs: 2000 });
    expect(failures).toBeLessThan(0);
    expect(lead.active).toBe(true);
    await lead.resign();
    await expect(campaign(a, { cluster, service: SVC, instanceId: "x", ttlMs: -1 })).rejects.toThrow(/ttlMs/);
  });

  it("nextId is unique and increasing across clients", async () => {
    const got = await Promise.all(Array.from({ length: 40 }, (_, i) => nextId(i % 2 ? a : b, "orders", cluster)));
    expect(new Set(got).size).toBe(40);
    const more = await nextId(a, "invoices", cluster);
    for (const id of got) expect(more > id).toBe(true);
    await expect(nextId(a, "bad name", cluster)).rejects.toThrow(/id name/);
  });
});
