/**
 * The Registry contract, run unchanged against the memory registry and a real etcd.
 */
import { afterEach, beforeEach, expect, it } from "vitest";
import type { Registry, WatchEvent } from "../../src/runtime/discovery/registry.js";
import { eachBackend, randomCluster, sleep, until, type Backend } from "./helpers.js";

eachBackend("registry contract", (make) => {
  let backend: Backend;
  let reg: Registry;
  let p: string;

  beforeEach(() => {
    backend = make();
    reg = backend.client();
    p = `/fan/${randomCluster()}/`;
  });
  afterEach(() => backend.close());

  it("puts, gets and deletes with revisions", async () => {
    const r1 = await reg.put(`${p}a`, "1");
    const r2 = await reg.put(`${p}a`, "2");
    expect(r1).toBeTypeOf("number");
    expect(r2).toBeGreaterThan(r1!);
    const kv = await reg.get(`${p}a`);
    expect(kv).toMatchObject({ key: `${p}a`, value: "2", createRevision: r1, modRevision: r2 });
    await reg.delete(`${p}a`);
    expect(await reg.get(`${p}a`)).toBeUndefined();
    await expect(reg.delete(`${p}missing`)).resolves.toBeUndefined();
  });

  it("lists a prefix with the store revision, not its siblings", async () => {
    await reg.put(`${p}svc/b`, "b");
    const last = await reg.put(`${p}svc/a`, "a");
    await reg.put(`${p}svc2/x`, "x");
    const { items, revision } = await reg.list(`${p}svc/`);
    expect(items.map((i) => i.key)).toEqual([`${p}svc/a`, `${p}svc/b`]);
    expect(revision).toBeGreaterThan(last!);
  });

  it("ifAbsent writes only when the key does not exist", async () => {
    expect(await reg.put(`${p}k`, "first", { ifAbsent: true })).toBeTypeOf("number");
    expect(await reg.put(`${p}k`, "second", { ifAbsent: true })).toBeUndefined();
    expect((await reg.get(`${p}k`))?.value).toBe("first");
  });

  it("watches from a revision: replays what came after it, then live changes, in order", async () => {
    const r0 = await reg.put(`${p}w/a`, "1");
    await reg.put(`${p}w/a`, "2");
    await reg.put(`${p}other`, "x");
    const seen: WatchEvent[] = [];
    const w = await reg.watch(`${p}w/`, r0!, (ev) => seen.push(ev));
    await reg.delete(`${p}w/a`);
    await reg.put(`${p}w/b`, "3");
    await until("4 watch events", () => seen.length >= 3);
    await w.close();
    expect(
      seen.map((e) =>
        e.type === "put"
          ? `put ${e.kv.key.slice(p.length)}=${e.kv.value}`
          : e.type === "delete"
            ? `del ${e.key.slice(p.length)}`
            : "reset",
      ),
    ).toEqual(["put w/a=2", "del w/a", "put w/b=3"]);
    const revs = seen.map((e) => e.revision);
    expect([...revs].sort((a, b) => a - b)).toEqual(revs);
  });

  it("a closed watch sees nothing more", async () => {
    const seen: WatchEvent[] = [];
    const { revision } = await reg.list(`${p}c/`);
    const w = await reg.watch(`${p}c/`, revision, (ev) => seen.push(ev));
    await reg.put(`${p}c/1`, "1");
    await until("first event", () => seen.length === 1);
    await w.close();
    await reg.put(`${p}c/2`, "2");
    await sleep(200);
    expect(seen).toHaveLength(1);
  });

  it("keys under a lease vanish when it is revoked, and lost leases tell their owner", async () => {
    const lease = await reg.grantLease(2000);
    expect(lease.ttlMs).toBeGreaterThanOrEqual(2000);
    await reg.put(`${p}l/1`, "x", { lease });
    expect((await reg.get(`${p}l/1`))?.lease).toBe(lease.id);
    let lost = 0;
    lease.onLost(() => lost++);
    await backend.revoke(reg, lease.id);
    await until("key gone", async () => (await reg.get(`${p}l/1`)) === undefined);
    await until("onLost", () => lost === 1, 5000);
    await expect(reg.put(`${p}l/2`, "x", { lease })).rejects.toThrow();
  });

  it("revoke by the owner deletes its keys and does not report a loss", async () => {
    const lease = await reg.grantLease(2000);
    let lost = 0;
    lease.onLost(() => lost++);
    await reg.put(`${p}r/1`, "x", { lease });
    await lease.revoke();
    expect(await reg.get(`${p}r/1`)).toBeUndefined();
    await sleep(100);
    expect(lost).toBe(0);
  });

  it("bad input gets a clear error", async () => {
    await expect(reg.put("", "x")).rejects.toThrow(/non-empty/);
    await expect(reg.put(`${p}x`, 5 as unknown as string)).rejects.toThrow(/string/);
    await expect(reg.grantLease(0)).rejects.toThrow(/positive/);
    await expect(reg.grantLease(Number.NaN)).rejects.toThrow(/positive/);
  });
});
