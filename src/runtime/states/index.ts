/**
 * Replicated states (the ZeroMQ guide's Clone pattern) over every transport: the owner
 * (`owner.ts`) numbers updates within an epoch and publishes them on the service's event
 * path; watchers (`watch.ts`, state machine in `replica.ts`) subscribe, then snapshot over the
 * service's rpc path (the built-in `$state` rpc, `protocol.ts`), and resync on gaps, epochs and
 * missed heartbeats. See docs/states.md.
 */
export {
  ShardedState,
  StateOwner,
  StateOwners,
  type OwnerHost,
  type ShardedStatePublisher,
  type SnapshotStore,
  type StatePublisher,
} from "./owner.js";
export { statePublishers, type StatePublishers } from "./publishers.js";
export type { MergePatch } from "./merge-patch.js";
export { Replica, type ReplicaChange } from "./replica.js";
export { stateHandle, type WatchHost } from "./watch.js";
export {
  SHARD_SNAPSHOT_METHOD,
  SNAPSHOT_METHOD,
  asMessage,
  majorsOf,
  stateEvent,
  stateMajor,
  withSnapshotMethod,
  type StateMessage,
  type StateSnapshot,
} from "./protocol.js";
export { redisSnapshotStore, type PersistOptions } from "./redis-store.js";

export type { StatesOptions } from "./app-states.js";
