/**
 * The pure part of sharding: the key hash (checked against a plain byte-wise FNV-1a over the
 * documented canonical encoding, and pinned by test vectors that docs/sharding.md repeats), and
 * rendezvous ownership (a join or leave moves about 1/k of the keys, pins win).
 */
import { describe, expect, it } from "vitest";
import {
  assignShards,
  keyHash,
  keyParts,
  ownerScore,
  shardOf,
  shardOfKey,
  type ShardMember,
} from "../../src/runtime/call/shards.js";

/** FNV-1a 32 as another language would write it: over the bytes of `{len}:{utf8}` per part. */
function reference(parts: readonly string[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    const bytes = Buffer.concat([Buffer.from(`${Buffer.byteLength(p, "utf8")}:`), Buffer.from(p, "utf8")]);
    for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

describe("shard key hash", () => {
  it("matches a byte-wise FNV-1a over the canonical encoding, ASCII and not", () => {
    const keys = [["s1"], ["s1", "i1"], [""], ["Ünïcode ✓", "😀"], ["a/b", "c"], ["a", "b/c"], ["\ud800"], ["42", "x".repeat(300)]];
    for (const k of keys) expect(keyHash(k), JSON.stringify(k)).toBe(reference(k.map((p) => (p === "\ud800" ? "\ufffd" : p))));
  });

  it("test vectors (repeated in docs/sharding.md, computed there in Python)", () => {
    expect([keyHash(["store-1"]), shardOfKey(["store-1"], 16)]).toEqual([4270600635, 11]);
    expect([keyHash(["store-1", "item-9"]), shardOfKey(["store-1", "item-9"], 64)]).toEqual([1405944314, 58]);
    expect([keyHash(["Ünïcode"]), shardOfKey(["Ünïcode"], 16)]).toEqual([3570367698, 2]);
  });

  it("a tuple is not its concatenation: (a/b, c) and (a, b/c) differ", () => {
    expect(keyHash(["a/b", "c"])).not.toBe(keyHash(["a", "b/c"]));
  });

  it("key parts: strings as they are, numbers and bigints in decimal, nested paths; missing → undefined", () => {
    expect(keyParts({ s: "x", n: 7, b: 9007199254740993n, w: { id: "w1" } }, [["s"], ["n"], ["b"], ["w", "id"]])).toEqual([
      "x",
      "7",
      "9007199254740993",
      "w1",
    ]);
    expect(keyParts({ s: "x" }, [["s"], ["w", "id"]])).toBeUndefined();
    expect(shardOf({ storeId: "store-1" }, [["storeId"]], 16)).toBe(shardOfKey(["store-1"], 16));
  });

  it("spreads 10,000 keys over 16 shards within 15% of even", () => {
    const counts = new Array<number>(16).fill(0);
    for (let i = 0; i < 10_000; i++) counts[shardOfKey([`store-${i}`], 16)]!++;
    for (const c of counts) expect(Math.abs(c - 625)).toBeLessThan(625 * 0.15);
  });
});

const members = (ids: readonly string[]): ShardMember[] => ids.map((instanceId) => ({ instanceId, shards: [] }));

describe("rendezvous ownership", () => {
  const N = 1000;
  const ids = ["Store-a1", "Store-b2", "Store-c3", "Store-d4"];

  it("every shard has exactly one owner, and the shares are about even", () => {
    const owners = assignShards(members(ids), N);
    expect(owners.every((o) => o !== undefined)).toBe(true);
    for (const id of ids) {
      const n = owners.filter((o) => o === id).length;
      expect(n).toBeGreaterThan(N / ids.length / 2);
      expect(n).toBeLessThan((N / ids.length) * 1.5);
    }
  });

  it("a join moves about 1/k of 1,000 keys, all to the newcomer", () => {
    const before = assignShards(members(ids), N);
    const after = assignShards(members([...ids, "Store-e5"]), N);
    const moved = before.filter((o, s) => o !== after[s]);
    expect(moved.length).toBeGreaterThan(N / 5 / 2);
    expect(moved.length).toBeLessThan((N / 5) * 1.5);
    for (let s = 0; s < N; s++) if (before[s] !== after[s]) expect(after[s]).toBe("Store-e5");
  });

  it("a leave moves only the leaver's keys (about 1/k)", () => {
    const before = assignShards(members(ids), N);
    const after = assignShards(members(ids.filter((i) => i !== "Store-b2")), N);
    const moved = before.filter((o, s) => o !== after[s]);
    expect(moved.length).toBe(before.filter((o) => o === "Store-b2").length);
    expect(moved.length).toBeGreaterThan(N / 4 / 2);
    expect(moved.length).toBeLessThan((N / 4) * 1.5);
  });

  it("is the same whatever the order of the instances", () => {
    expect(assignShards(members([...ids].reverse()), N)).toEqual(assignShards(members(ids), N));
  });

  it("pinned shards go to their pinner; the rest are split among the others; none left without auto instances", () => {
    const owners = assignShards([{ instanceId: "pin", shards: [0, 5] }, ...members(["x", "y"])], 16);
    expect(owners[0]).toBe("pin");
    expect(owners[5]).toBe("pin");
    expect(owners.filter((o) => o === "pin")).toHaveLength(2);
    expect(assignShards([{ instanceId: "pin", shards: [1] }], 4)).toEqual([undefined, "pin", undefined, undefined]);
  });

  it("scores are stable numbers (docs vector)", () => {
    expect(ownerScore("Store-a1", 0)).toBe(ownerScore("Store-a1", 0));
    expect(ownerScore("Store-a1", 0)).not.toBe(ownerScore("Store-a1", 1));
  });
});
