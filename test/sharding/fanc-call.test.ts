/**
 * `fanc call` and `fanc push` on `@shard` methods, as a user runs them: `bin/fanc.mjs` in a child
 * process against two `test.shards.Store` instances in processes of their own (etcd discovery).
 * A sharded call goes to its shard's owner as the generated client sends it, over http and over
 * each broker (where it must reach the owner's own queue, not the version's shared one): before
 * this, fanc picked a random instance, and half the calls came back refused with a redirect.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEtcd, SHARED_ETCD, until } from "../discovery/helpers.js";
import { runFanc } from "../cli/helpers.js";
import { deleteByPrefix } from "../transports/amqp-broker.js";
import { deleteKeys } from "../transports/redis-server.js";
import { type Child, kill, serveStore } from "./helpers.js";

const IDL = ["--idl", "test/sharding/fixtures/idl"];
const TRANSPORTS = ["http", "redis", "amqp", "nats"] as const;

interface Where {
  instanceId: string;
  shard: number;
  owned: number[];
}

/** The latest shards a child's `onShards` said it owns (undefined before the first change). */
function owned(c: Child): number[] | undefined {
  const lines = c
    .stdout()
    .split("\n")
    .filter((l) => l.startsWith("shards "));
  const last = lines.at(-1);
  return last === undefined ? undefined : (JSON.parse(last.slice("shards ".length)) as { owned: number[] }).owned;
}

describeEtcd("fanc call / push on @shard methods (child processes, etcd)", () => {
  const cluster = `fanc-shard-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const C = [...IDL, "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  let children: Child[] = [];

  beforeAll(async () => {
    children = await Promise.all(
      ["fc-a", "fc-b"].map((instanceId) =>
        serveStore({ etcd: SHARED_ETCD, cluster, instanceId, transports: [...TRANSPORTS], leaseTtlMs: 5000 }),
      ),
    );
    // Each has heard of the other: the 16 shards are split between them.
    await until("both instances own part of the shards", () =>
      children.every((c) => {
        const o = owned(c);
        return o !== undefined && o.length > 0 && o.length < 16;
      }),
    );
  }, 120_000);

  afterAll(async () => {
    await Promise.all(children.map(kill));
    await Promise.allSettled([deleteKeys(`fan.${cluster}*`), deleteByPrefix(`fan.${cluster}`)]);
  }, 60_000);

  it("a sharded rpc reaches its shard's owner over http and every broker, and says so", async () => {
    const answeredBy = new Set<string>();
    for (const via of TRANSPORTS) {
      for (let k = 0; k < 5; k++) {
        const r = await runFanc(["call", "Store.store", `{"storeId":"store-${k}"}`, ...C, "--via", via, "--json"]);
        expect(r.stderr, `${via} store-${k}`).toBe("");
        expect(r.code, `${via} store-${k}: ${r.stdout}`).toBe(0);
        const o = JSON.parse(r.stdout) as { instance: string; shard: number; value: Where };
        // The instance that answered owns the shard, is the one fanc names, and fanc's shard is the server's.
        expect(o.value.owned, `${via} store-${k}`).toContain(o.value.shard);
        expect(o.instance).toBe(o.value.instanceId);
        expect(o.shard).toBe(o.value.shard);
        answeredBy.add(o.value.instanceId);
      }
    }
    expect([...answeredBy].sort()).toEqual(["fc-a", "fc-b"]);
    const t = await runFanc(["call", "Store.store", '{"storeId":"store-1"}', ...C, "--via", "redis"]);
    expect(t.code).toBe(0);
    expect(t.stderr).toMatch(/^ok · [\d.]+ ms · fc-[ab] \(shard \d+'s owner\) over redis · trace [0-9a-f]{32}\n$/);
  }, 300_000);

  it("a sharded push is handled by its shard's owner over each broker", async () => {
    for (const via of ["redis", "amqp", "nats"]) {
      for (let k = 0; k < 4; k++) {
        const storeId = `push-${via}-${k}`;
        const r = await runFanc([
          "push",
          "Store.stock",
          `{"storeId":"${storeId}","count":1}`,
          ...C,
          "--via",
          via,
          "--json",
        ]);
        expect(r.code, `${via} ${storeId}: ${r.stdout}${r.stderr}`).toBe(0);
        const o = JSON.parse(r.stdout) as { instance: string; shard: number };
        let handled: (Where & { storeId: string }) | undefined;
        await until(`${storeId} handled`, () => {
          for (const c of children)
            for (const l of c.stdout().split("\n"))
              if (l.startsWith('{"stock"') && l.includes(`"${storeId}"`))
                handled = (JSON.parse(l) as { stock: Where & { storeId: string } }).stock;
          return handled !== undefined;
        });
        expect(handled?.instanceId, `${via} ${storeId}`).toBe(o.instance);
        expect(handled?.owned).toContain(o.shard);
      }
    }
  }, 300_000);

  it("follows a redirect once: an owner fanc's --version left out is called there, and both are named", async () => {
    // fc-c (2.2.0) shares major 2's shards with fc-a and fc-b, so the instances see it own some;
    // `--version 2.1.0` hides it from fanc, which sends those shards' calls to another instance.
    const c = await serveStore({
      etcd: SHARED_ETCD,
      cluster,
      instanceId: "fc-c",
      version: "2.2.0",
      transports: [...TRANSPORTS],
      leaseTtlMs: 5000,
    });
    children.push(c);
    await until("fc-c owns part of the shards", () => (owned(c)?.length ?? 0) > 0);
    await until("the others gave fc-c its shards", () => {
      const all = children.flatMap((x) => owned(x) ?? []);
      return all.length === 16 && new Set(all).size === 16;
    });
    for (const via of TRANSPORTS) {
      type Redirected = { instance: string; redirectedFrom: string; value: Where };
      let redirected: Redirected | undefined;
      for (let k = 0; k < 16 && redirected === undefined; k++) {
        const args = ["call", "Store.store", `{"storeId":"redirect-${k}"}`, ...C, "--via", via, "--version", "2.1.0"];
        const r = await runFanc([...args, "--json"]);
        expect(r.code, `${via} redirect-${k}: ${r.stdout}${r.stderr}`).toBe(0);
        const o = JSON.parse(r.stdout) as { instance: string; redirectedFrom?: string; value: Where };
        expect(o.instance, `${via} redirect-${k}`).toBe(o.value.instanceId);
        if (o.redirectedFrom === undefined) continue;
        redirected = o as Redirected;
        const text = await runFanc(args);
        expect(text.code).toBe(0);
        expect(text.stderr).toMatch(/fc-c \(shard \d+'s owner, redirected there by fc-[ab]\) over /);
      }
      expect(redirected, `${via}: no call was redirected to fc-c`).toBeDefined();
      expect(redirected?.instance).toBe("fc-c");
      expect(redirected?.redirectedFrom).toMatch(/^fc-[ab]$/);
      expect(redirected?.value.owned).toContain(redirected?.value.shard);
    }
  }, 300_000);

  it("arguments missing a shard key field are refused by the codec before anything is sent (exit 2)", async () => {
    const r = await runFanc(["call", "Store.item", '{"storeId":"s"}', ...C]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid argument itemId/);
  }, 60_000);
});
