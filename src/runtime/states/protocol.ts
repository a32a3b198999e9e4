/**
 * What replicated states put on the wire, shared by owners and watchers: the update message
 * (carried on the service's event path as envelope kind "state", event name
 * `$state.v<major>.<name>`: one stream per major version), the snapshot reply, and the built-in
 * `$state` rpc every served service with states answers.
 */
import semver from "semver";
import { SHARD_NUMBER } from "../call/shards.js";
import type { MethodDescriptor, ServiceDescriptor } from "../descriptor.js";
import { Code, FanError } from "../errors.js";

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

/**
 * The lowest majors (at most `most`) a semver range admits, in order: `[2]` for `2.x` or
 * `~2.1 || ^2.3`, `[1, 2]` for `1.x || 2.x`, `[1, 2, 3]` for `>=1.4`. Each comparator set is
 * taken on its own (`semver.minVersion` of a whole range misses a later set's minimum when an
 * earlier set is empty). Throws INVALID_ARGUMENT for a range that is not one.
 */
export function majorsOf(range: string, most = 3): number[] {
  if (semver.validRange(range) === null)
    throw new FanError(Code.INVALID_ARGUMENT, `invalid version range ${JSON.stringify(range)}`, { details: { range } });
  const sets = new semver.Range(range).set.map((cs) => cs.map((c) => c.value).join(" "));
  const majors: number[] = [];
  let above = "";
  while (majors.length < most) {
    let low: semver.SemVer | undefined;
    for (const s of sets) {
      const v = semver.minVersion(`${s} ${above}`);
      if (v !== null && (low === undefined || semver.lt(v, low))) low = v;
    }
    if (low === undefined) break;
    majors.push(low.major);
    above = `>=${low.major + 1}.0.0`;
  }
  return majors;
}

/**
 * The major whose state streams a client of `service` with version range `range` follows: the
 * descriptor's without a range, else the one major the range admits. A range that admits two
 * (`1.x || 2.x`, `>=1.4`, `*`) or none is refused, naming them: each major's state has its own
 * owner, epochs and stream, and a view follows one (docs/decisions.md, 2026-12-07).
 */
export function stateMajor(service: ServiceDescriptor, range: string | undefined, state: string): number {
  if (range === undefined) return semver.major(service.version);
  const majors = majorsOf(range);
  const [only, second] = majors;
  if (only !== undefined && second === undefined) return only;
  const label = `${service.name}.${state}`;
  if (only === undefined)
    throw new FanError(
      Code.INVALID_ARGUMENT,
      `${label}: the version range ${JSON.stringify(range)} admits no version`,
      {
        details: { service: service.name, state, range },
      },
    );
  const named = majors.length > 2 ? `${only}, ${second} and more` : `${only} and ${second}`;
  throw new FanError(
    Code.INVALID_ARGUMENT,
    `${label}: the version range ${JSON.stringify(range)} admits majors ${named}, and each major's state is ` +
      `its own (an owner and a stream per major): watch it with a client whose range is within one major, ` +
      `{ version: "${only}.x" } or { version: "${second}.x" }${majors.length > 2 ? ", ..." : ""}`,
    { details: { service: service.name, state, range, majors } },
  );
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
