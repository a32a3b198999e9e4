/**
 * What replicated states put on the wire, shared by owners and watchers: the update message
 * (carried on the service's event path as envelope kind "state", event name
 * `$state.v<major>.<name>`: one stream per major version), the snapshot reply, and the built-in
 * `$state` rpc every served service with states answers.
 */
import semver from "semver";
import { SHARD_NUMBER } from "../call/shards.js";
import type { MethodDescriptor, ServiceDescriptor } from "../descriptor.js";

/**
 * One message of a state's stream: a full value, a merge patch, or a heartbeat. A heartbeat
 * names its owner (`o`: app id and version, for log lines); `last` marks the one an owner sends
 * when it stops publishing the epoch (a graceful stop, a lost leadership): its watchers say
 * `owner-absent` at once instead of after three silent heartbeat periods.
 */
export type StateMessage =
  | { readonly k: "f"; readonly e: number; readonly s: number; readonly v: unknown }
  | { readonly k: "p"; readonly e: number; readonly s: number; readonly v: unknown }
  | {
      readonly k: "h";
      readonly e: number;
      readonly s: number;
      readonly i: number;
      readonly o?: string;
      readonly last?: true;
    };

/** The owner's answer to a snapshot request; `v` is absent before the first value, `o` names the owner. */
export interface StateSnapshot {
  readonly e: number;
  readonly s: number;
  readonly v?: unknown;
  readonly o?: string;
}

/** The built-in rpc that answers snapshots (`{ state }` in, a `StateSnapshot` out). */
export const SNAPSHOT_METHOD = "$state";

/** The built-in rpc that answers snapshots of one shard of a sharded state (`{ state, $shard }` in), routed to the shard's owner. */
export const SHARD_SNAPSHOT_METHOD = "$stateShard";

/**
 * The event name a state's updates travel under (a sharded state's: one per shard); with
 * `major`, the name of that major version's stream (`$state.v2.inventory`).
 */
export function stateEvent(name: string, shard?: number, major?: number): string {
  const base = major === undefined ? "$state" : `$state.v${major}`;
  return shard === undefined ? `${base}.${name}` : `${base}.${name}.${shard}`;
}

/**
 * The event a state of `service` travels under between Apps: one stream per major version, as
 * pushes have one queue per major (a major is a new contract, docs/versions.md). Two majors
 * served side by side then never share a stream: a watcher of 1.x follows the 1.x owner only.
 */
export function stateStream(service: ServiceDescriptor, name: string, shard?: number): string {
  return stateEvent(name, shard, semver.major(service.version));
}

/** True when any state of the service is `@shard`ed. */
export function hasShardedStates(d: ServiceDescriptor): boolean {
  return Object.values(d.states).some((s) => s.sharded === true);
}

const snapshotMethod: MethodDescriptor = {
  name: SNAPSHOT_METHOD,
  kind: "rpc",
  input: { kind: "struct", name: "fan.StateRequest", fields: [{ name: "state", schema: { kind: "string" } }] },
  output: { kind: "json" },
  timeoutMs: 5000,
  idempotent: true,
  retry: 0,
  throws: [],
};

/**
 * The shard snapshot rpc: sharded by the shard number itself (the `$shard` path, shards.ts), so
 * clients route it to the shard's owner and an instance that does not own it redirects.
 */
const shardSnapshotMethod: MethodDescriptor = {
  ...snapshotMethod,
  name: SHARD_SNAPSHOT_METHOD,
  input: {
    kind: "struct",
    name: "fan.StateShardRequest",
    fields: [
      { name: "state", schema: { kind: "string" } },
      { name: SHARD_NUMBER, schema: { kind: "int" } },
    ],
  },
  shard: [[SHARD_NUMBER]],
};

/**
 * The descriptor a service is served under: the IDL's, plus the `$state` rpc when it has
 * states and the `$stateShard` rpc when one is sharded (transports refuse methods their
 * descriptor does not list).
 */
export function withSnapshotMethod(d: ServiceDescriptor): ServiceDescriptor {
  if (Object.keys(d.states).length === 0) return d;
  const methods: Record<string, MethodDescriptor> = { ...d.methods, [SNAPSHOT_METHOD]: snapshotMethod };
  if (hasShardedStates(d)) methods[SHARD_SNAPSHOT_METHOD] = shardSnapshotMethod;
  return { ...d, methods };
}

/** The snapshot method's descriptor (the watcher's call and the dispatcher's plan use it). */
export function snapshotMethodOf(): MethodDescriptor {
  return snapshotMethod;
}

/** Checks a received message's shape; undefined when it is not one. */
export function asMessage(p: unknown): StateMessage | undefined {
  if (typeof p !== "object" || p === null) return undefined;
  const m = p as Record<string, unknown>;
  if (typeof m.e !== "number" || typeof m.s !== "number" || !Number.isSafeInteger(m.s)) return undefined;
  if (m.k === "f" || m.k === "p") return "v" in m ? (m as StateMessage) : undefined;
  if (m.k === "h") return typeof m.i === "number" ? (m as StateMessage) : undefined;
  return undefined;
}

/** Checks a snapshot reply's shape. */
export function asSnapshot(p: unknown): StateSnapshot | undefined {
  if (typeof p !== "object" || p === null) return undefined;
  const m = p as Record<string, unknown>;
  if (typeof m.e !== "number" || typeof m.s !== "number") return undefined;
  return m as unknown as StateSnapshot;
}
