/**
 * The instance watch (call/instance-watch.ts) with a scripted instance set: a registry that
 * cannot say whether an instance with calls in flight is gone is asked again, and said so; calls
 * registered by a taken notice (`taken`) fail once their instance is gone, not before it was seen;
 * one named while its record is marked stopping (a drain) fails once that instance is killed.
 */
import type { Logger } from "pino";
import { describe, expect, it } from "vitest";
import { InstanceWatch, RECHECK_MS } from "../../src/runtime/call/instance-watch.js";
import type { PendingCall } from "../../src/runtime/call/pending.js";
import { RegistryDirectory } from "../../src/runtime/discovery/directory.js";
import { MemoryRegistry } from "../../src/runtime/discovery/memory.js";
import type { InstanceInfo } from "../../src/runtime/discovery/types.js";

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("the instance watch", () => {
  it("warns, once a minute per instance, when the registry fails to say whether an instance with calls in flight is gone", async () => {
    const warnings: string[] = [];
    const log = { warn: (_: object, msg: string) => void warnings.push(msg) } as unknown as Logger;
    let asked = 0;
    let instances: InstanceInfo[] = [{ instanceId: "Store-a" } as InstanceInfo];
    const listeners = new Set<() => void>();
    const set = {
      instances: () => instances,
      onChange: (fn: () => void) => {
        listeners.add(fn);
        return () => listeners.delete(fn);
      },
      gone: async () => {
        asked++;
        throw new Error("etcd: connect ECONNREFUSED 127.0.0.1:2379");
      },
    };
    const watch = new InstanceWatch(set, "test.Store", log);
    const failed: unknown[] = [];
    const call = { fail: (e: unknown) => void failed.push(e) } as unknown as PendingCall;
    watch.add("Store-a", call);
    instances = [];
    for (const fn of [...listeners]) fn();
    await tick(RECHECK_MS * 2 + 100);
    expect(asked).toBeGreaterThanOrEqual(3);
    expect(failed).toEqual([]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /instance Store-a of test\.Store left the instance set with 1 calls in flight to it, and asking the registry whether its lease ended failed \(etcd: connect ECONNREFUSED .*\): .* those calls wait for their answer or their deadline/,
    );
    watch.close();
  });

  it("a call an instance took (a taken notice) fails once that instance is gone; one named before its record was seen waits until it was", async () => {
    let instances: InstanceInfo[] = [{ instanceId: "w-a" } as InstanceInfo];
    const listeners = new Set<() => void>();
    const asked: string[] = [];
    const set = {
      instances: () => instances,
      onChange: (fn: () => void) => {
        listeners.add(fn);
        return () => listeners.delete(fn);
      },
      gone: async (id: string) => {
        asked.push(id);
        return true;
      },
    };
    const changed = () => {
      for (const fn of [...listeners]) fn();
    };
    const watch = new InstanceWatch(set, "test.Worker");
    const failed: { a: unknown[]; b: unknown[] } = { a: [], b: [] };
    // Settling drops it from the watch, as a PendingCall's does.
    const call = (k: "a" | "b"): PendingCall => {
      const p = {
        fail: (e: unknown) => {
          failed[k].push(e);
          watch.drop(p);
        },
      } as unknown as PendingCall;
      return p;
    };
    watch.taken("w-a", call("a"));
    // Not in the set yet (its record not seen): would read as gone.
    watch.taken("w-b", call("b"));
    instances = [];
    changed();
    await tick(10);
    expect(asked).toEqual(["w-a"]);
    expect(failed.a).toHaveLength(1);
    expect((failed.a[0] as Error).message).toMatch(/instance w-a of test\.Worker is gone/);
    expect(failed.b).toEqual([]);
    instances = [{ instanceId: "w-b" } as InstanceInfo];
    changed();
    instances = [];
    changed();
    await tick(10);
    expect(asked).toEqual(["w-a", "w-b"]);
    expect(failed.b).toHaveLength(1);
    watch.close();
  });
  it("a call taken by an instance whose record is marked stopping fails once that instance is killed mid-drain", async () => {
    const registry = new MemoryRegistry();
    const server = new RegistryDirectory(registry, { cluster: "iw", leaseTtlMs: 60_000, appId: "server-app" });
    const client = new RegistryDirectory(registry, { cluster: "iw", appId: "client-app" });
    try {
      const set = await client.watch("test.Worker");
      const reg = await server.register({
        service: "test.Worker",
        instanceId: "w-s",
        version: "1.0.0",
        endpoints: { nats: "nats://w-s" },
        shards: [],
        appId: "server-app",
      });
      // A graceful stop began: the record stays, marked stopping, while the instance drains.
      await reg.update({ serving: [], stopping: true });
      const waitFor = async (what: string, ok: () => boolean) => {
        for (let t0 = Date.now(); !ok(); await tick(10))
          if (Date.now() - t0 > 2000) throw new Error(`timed out waiting for ${what}`);
      };
      await waitFor("the stopping mark", () => set.records?.().some((i) => i.stopping === true) === true);
      expect(set.instances()).toEqual([]);
      const watch = new InstanceWatch(set, "test.Worker");
      const failed: unknown[] = [];
      const p = {
        fail: (e: unknown) => {
          failed.push(e);
          watch.drop(p);
        },
      } as unknown as PendingCall;
      // Its taken notice comes during the drain (100-200 ms after the call arrived).
      watch.taken("w-s", p);
      await tick(RECHECK_MS + 100);
      expect(failed).toEqual([]);
      // Killed before the drain ended: its lease ends, and the record goes with it.
      const lease = (await registry.list("")).items.find((kv) => kv.key.includes("w-s"))?.lease as string;
      registry.expireLease(lease);
      await waitFor("the call failed", () => failed.length > 0);
      expect((failed[0] as Error).message).toMatch(/instance w-s of test\.Worker is gone/);
      watch.close();
    } finally {
      await Promise.allSettled([server.close(), client.close()]);
      await registry.close();
    }
  });
});
