/**
 * 1,000 services × 3 instances registered and watched: every client cache ends equal to the
 * registry, through registration, partial deregistration and a late joiner.
 */
import { afterEach, beforeEach, expect, it } from "vitest";
import { RegistryDirectory } from "../../src/runtime/discovery/directory.js";
import type { InstanceSet, Registration } from "../../src/runtime/discovery/types.js";
import { eachBackend, randomCluster, until, type Backend } from "./helpers.js";

const SERVICES = 1000;
const PER_SERVICE = 3;

/** Runs `fn` over `items` with at most `n` in flight. */
async function pool<T, R>(items: readonly T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

const svc = (s: number): string => `scale.S${s}`;

eachBackend("scale: 1,000 services × 3 instances", (make) => {
  let backend: Backend;
  let server: RegistryDirectory;
  let client: RegistryDirectory;
  let cluster: string;
  beforeEach(() => {
    backend = make();
    cluster = randomCluster();
    server = new RegistryDirectory(backend.client(), { cluster, leaseTtlMs: 10_000 });
    client = new RegistryDirectory(backend.client(), { cluster });
  });
  afterEach(async () => {
    await Promise.allSettled([server.close(), client.close()]);
    await backend.close();
  });

  it("keeps every client cache consistent with the registry", async () => {
    const names = Array.from({ length: SERVICES }, (_, s) => svc(s));
    const sets = await pool(names, 50, (n) => client.watch(n));
    const work = names.flatMap((service) =>
      Array.from({ length: PER_SERVICE }, (_, i) => ({ service, instanceId: `i${i}` })),
    );
    const regs = await pool(work, 50, (w) =>
      server.register({
        ...w,
        version: `1.${w.instanceId.slice(1)}.0`,
        endpoints: { http: `http://h/${w.service}/${w.instanceId}` },
        shards: [],
        appId: "scale",
      }),
    );
    const full = (s: InstanceSet): boolean => s.instances().length === PER_SERVICE;
    await until("every watched cache holds 3 instances", () => sets.every(full), 60_000, 100);

    // drop instance i0 of every even service
    const dropped = regs.filter(
      (_r: Registration, k) => Math.floor(k / PER_SERVICE) % 2 === 0 && k % PER_SERVICE === 0,
    );
    await pool(dropped, 50, (r) => r.deregister());
    const expected = (s: number): string => (s % 2 === 0 ? "i1,i2" : "i0,i1,i2");
    const ids = (set: InstanceSet): string =>
      set
        .instances()
        .map((i) => i.instanceId)
        .sort()
        .join();
    await until("deregistrations seen", () => sets.every((set, s) => ids(set) === expected(s)), 60_000, 100);

    // a late client lists what is there now
    const late = new RegistryDirectory(backend.client(), { cluster });
    const lateSets = await pool(names, 50, (n) => late.watch(n));
    lateSets.forEach((set, s) => {
      expect(ids(set)).toBe(expected(s));
    });
    expect((await late.resolve(svc(7), { range: "~1.2" })).instanceId).toBe("i2");
    await late.close();
  }, 120_000);
});
