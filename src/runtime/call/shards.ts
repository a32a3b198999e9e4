/**
 * Sharding, the pure part: the shard number of a call's key and which instance owns each
 * shard. Both are stable functions of their inputs, the same in every process and computable
 * in another language (`docs/sharding.md` gives the algorithm with test vectors):
 *
 * - key → shard: FNV-1a 32 over the canonical encoding of the key tuple (each part as
 *   `{utf8 byte length}:{utf8 bytes}`, concatenated), modulo the service's `@shards(n)`;
 * - shard → owner: rendezvous (highest random weight) hashing; an instance's score for a shard
 *   is fmix32(FNV-1a 32 of `{instanceId}\0{shard}`); the highest score wins, ties go to the
 *   smaller instance id. Instances that pin explicit shards own exactly those; the other
 *   shards are split among the instances that pin none.
 */
import semver from "semver";
import type { InstanceInfo } from "../discovery/types.js";
import { Code, FanError } from "../errors.js";
import { fnv1aUtf8, keyPart, shardOfKey } from "../shard-key.js";

export { fnv1aUtf8, keyHash, keyPart, shardOfKey, shardOfKeyValue, utf8Length } from "../shard-key.js";

/** The key tuple of a call: the values at the `@shard` paths; undefined when one is missing. */
export function keyParts(input: unknown, paths: readonly (readonly string[])[]): string[] | undefined {
  const parts: string[] = [];
  for (const path of paths) {
    let v: unknown = input;
    for (const seg of path) v = typeof v === "object" && v !== null ? (v as Record<string, unknown>)[seg] : undefined;
    if (v === undefined || v === null) return undefined;
    parts.push(keyPart(v));
  }
  return parts;
}

/**
 * The one-segment path that names the shard itself rather than a key (no IDL parameter can be
 * called `$shard`): the built-in snapshot rpc of sharded states (states/protocol.ts) uses it.
 */
export const SHARD_NUMBER = "$shard";

/** The shard of a call's input, or undefined when a key part is missing. */
export function shardOf(input: unknown, paths: readonly (readonly string[])[], n: number): number | undefined {
  if (paths.length === 1 && paths[0]?.length === 1 && paths[0][0] === SHARD_NUMBER) {
    const s =
      typeof input === "object" && input !== null ? (input as Record<string, unknown>)[SHARD_NUMBER] : undefined;
    return typeof s === "number" && Number.isInteger(s) && s >= 0 && s < n ? s : undefined;
  }
  const parts = keyParts(input, paths);
  return parts === undefined ? undefined : shardOfKey(parts, n);
}

/** MurmurHash3's 32-bit finaliser: spreads FNV's weak high bits before scores are compared. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Rendezvous score of an instance for a shard. */
export function ownerScore(instanceId: string, shard: number): number {
  return fmix32(fnv1aUtf8(`${instanceId}\u0000${shard}`));
}

/** What ownership needs of an instance. */
export interface ShardMember {
  readonly instanceId: string;
  /** Pinned shards; empty = takes a share of the unpinned ones. */
  readonly shards: readonly number[];
}

/** The owner of each of `n` shards (instance id, undefined when nobody can own it). */
export function assignShards(members: readonly ShardMember[], n: number): (string | undefined)[] {
  const pinners = new Map<number, ShardMember[]>();
  const auto: ShardMember[] = [];
  for (const m of members) {
    if (m.shards.length === 0) auto.push(m);
    for (const s of m.shards) {
      if (!Number.isInteger(s) || s < 0 || s >= n) continue;
      const list = pinners.get(s) ?? [];
      list.push(m);
      pinners.set(s, list);
    }
  }
  const owners: (string | undefined)[] = [];
  for (let s = 0; s < n; s++) owners.push(best(pinners.get(s) ?? auto, s));
  return owners;
}

function best(candidates: readonly ShardMember[], shard: number): string | undefined {
  let id: string | undefined;
  let top = -1;
  for (const c of candidates) {
    const score = ownerScore(c.instanceId, shard);
    if (score > top || (score === top && id !== undefined && c.instanceId < id)) {
      id = c.instanceId;
      top = score;
    }
  }
  return id;
}

/** The shards `instanceId` owns in an assignment. */
export function ownedBy(owners: readonly (string | undefined)[], instanceId: string): number[] {
  const out: number[] = [];
  for (let s = 0; s < owners.length; s++) if (owners[s] === instanceId) out.push(s);
  return out;
}

/**
 * The instances that share a service's shards: one major version (a major is a new contract,
 * so it gets its own copy of the shards). A client whose candidates span majors uses the highest.
 */
export function shardDomain(infos: readonly InstanceInfo[], major?: number): InstanceInfo[] {
  if (infos.length === 0) return [];
  const m = major ?? Math.max(...infos.map((i) => semver.major(i.version)));
  return infos.filter((i) => semver.major(i.version) === m);
}

/** Validates explicit shards given to `serve(..., { shards })`. */
export function checkPinnedShards(service: string, shards: readonly number[] | undefined, n: number): number[] {
  if (shards === undefined) return [];
  const bad = shards.filter((s) => !Number.isInteger(s) || s < 0 || s >= n);
  if (bad.length > 0)
    throw new FanError(
      Code.INVALID_ARGUMENT,
      `serve ${service}: shards ${bad.join(", ")} are out of range (the service has @shards(${n}): 0..${n - 1})`,
    );
  return [...new Set(shards)].sort((a, b) => a - b);
}

/** The error of a call to a shard that has no reachable owner. */
export function shardUnavailable(service: string, shard: number, why: string, cause?: unknown): FanError {
  return new FanError(Code.UNAVAILABLE, `shard ${shard} of ${service} is unavailable: ${why}`, {
    details: { service, shard },
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * The error of a call or push whose shard's owner `owner` could not take it (`e`, its
 * transport's failure), as its caller gets it: UNAVAILABLE naming the shard and the owner, and
 * a push's `details.maybeDelivered` (the producer's to read) kept.
 */
export function ownerUnavailable(service: string, shard: number, owner: string, e: FanError): FanError {
  const err = shardUnavailable(service, shard, `its owner ${owner}: ${e.message}`, e);
  const maybeDelivered = (e.details as { maybeDelivered?: unknown } | undefined)?.maybeDelivered;
  if (typeof maybeDelivered !== "boolean") return err;
  return new FanError(err.code, err.message, { cause: e, details: { ...(err.details as object), maybeDelivered } });
}

/** The `details` of a redirect an instance answers when it does not own the call's shard. */
export interface Redirect {
  readonly redirect: true;
  readonly shard: number;
  /** The owner in the refusing instance's view, when it knows one. */
  readonly owner?: string;
  readonly from: string;
}

/** Reads a redirect out of an error's details. */
export function redirectOf(e: unknown): Redirect | undefined {
  if (!FanError.is(e) || e.code !== Code.UNAVAILABLE) return undefined;
  const d = e.details as Partial<Redirect> | undefined;
  return d !== undefined && d !== null && d.redirect === true && typeof d.shard === "number"
    ? (d as Redirect)
    : undefined;
}
