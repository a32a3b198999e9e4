/**
 * Resolution strategies: each picks one instance from a non-empty list of candidates that
 * already fit the version range and transport. Pure functions of their inputs plus a little
 * per-client state (the round-robin cursor), so a pick does no I/O and no allocation.
 */
import type { InstanceInfo, StrategyName } from "./types.js";

/** What a strategy sees besides the candidates. */
export interface PickContext {
  /** This process's app id (prefer-local). */
  readonly appId: string;
  /** In-flight calls this client has on an instance (p2c). */
  readonly inFlight: (instanceId: string) => number;
  /** A counter the round-robin strategy advances (per service and filter). */
  readonly cursor: { n: number };
  readonly shardKey?: string;
}

/** A strategy; `candidates` is never empty. */
export type Strategy = (candidates: readonly InstanceInfo[], ctx: PickContext) => InstanceInfo;

/** Next instance in turn. */
export const roundRobin: Strategy = (c, ctx) => c[ctx.cursor.n++ % c.length]!;

/** A uniformly random instance. */
export const random: Strategy = (c) => c[Math.floor(Math.random() * c.length)]!;

/**
 * Power of two choices: two random distinct instances, the one with fewer in-flight calls
 * from this client (ties broken by the load it advertises) wins.
 */
export const p2c: Strategy = (c, ctx) => {
  if (c.length === 1) return c[0]!;
  const i = Math.floor(Math.random() * c.length);
  let j = Math.floor(Math.random() * (c.length - 1));
  if (j >= i) j++;
  const a = c[i]!;
  const b = c[j]!;
  const la = ctx.inFlight(a.instanceId);
  const lb = ctx.inFlight(b.instanceId);
  if (la !== lb) return la < lb ? a : b;
  return a.load <= b.load ? a : b;
};

/** An instance served by this process when there is one (round-robin among them), else round-robin. */
export const preferLocal: Strategy = (c, ctx) => {
  let local: InstanceInfo[] | undefined;
  for (const inst of c) {
    if (inst.appId !== ctx.appId) continue;
    local ??= [];
    local.push(inst);
  }
  return roundRobin(local ?? c, ctx);
};

/**
 * The default shard hook (the sharding issue replaces it with `Directory.setShardStrategy`):
 * rendezvous hashing of the shard key over instance ids, so every client agrees and only 1/n
 * of the keys move when an instance joins or leaves. Without a key: round-robin.
 */
export const rendezvous: Strategy = (c, ctx) => {
  const key = ctx.shardKey;
  if (key === undefined) return roundRobin(c, ctx);
  let best = c[0]!;
  let bestScore = -1;
  for (const inst of c) {
    const score = fnv1a(`${inst.instanceId}\u0000${key}`);
    if (score > bestScore || (score === bestScore && inst.instanceId < best.instanceId)) {
      best = inst;
      bestScore = score;
    }
  }
  return best;
};

/** 32-bit FNV-1a of a string (code units), as an unsigned number. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The built-in strategies by name; `shard` is replaceable with `Directory.setShardStrategy`. */
export const builtinStrategies: Readonly<Record<StrategyName, Strategy>> = {
  "round-robin": roundRobin,
  random,
  p2c,
  "prefer-local": preferLocal,
  shard: rendezvous,
};
