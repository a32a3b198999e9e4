/**
 * What replicated states put on the wire, shared by owners and watchers: the update message
 * (carried on the service's event path as envelope kind "state", event name `$state.<name>`),
 * the snapshot reply, and the built-in `$state` rpc every served service with states answers.
 */
import type { MethodDescriptor, ServiceDescriptor } from "../descriptor.js";

/** One message of a state's stream: a full value, a merge patch, or a heartbeat. */
export type StateMessage =
  | { readonly k: "f"; readonly e: number; readonly s: number; readonly v: unknown }
  | { readonly k: "p"; readonly e: number; readonly s: number; readonly v: unknown }
  | { readonly k: "h"; readonly e: number; readonly s: number; readonly i: number };

/** The owner's answer to a snapshot request; `v` is absent before the first value. */
export interface StateSnapshot {
  readonly e: number;
  readonly s: number;
  readonly v?: unknown;
}

/** The built-in rpc that answers snapshots (`{ state }` in, a `StateSnapshot` out). */
export const SNAPSHOT_METHOD = "$state";

/** The event name a state's updates travel under. */
export function stateEvent(name: string): string {
  return `$state.${name}`;
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
 * The descriptor a service is served under: the IDL's, plus the `$state` rpc when it has
 * states (transports refuse methods their descriptor does not list).
 */
export function withSnapshotMethod(d: ServiceDescriptor): ServiceDescriptor {
  if (Object.keys(d.states).length === 0) return d;
  return { ...d, methods: { ...d.methods, [SNAPSHOT_METHOD]: snapshotMethod } };
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
