/**
 * Pushes made while no instance of their service is registered. Over amqp, redis and nats a
 * push goes to a queue of the service's major version that outlives its consumers, not to an
 * instance, so such a push need not be refused: it is sent to that queue and waits for the first
 * instance that starts (a deploy, a crash loop, a consumer scaled to zero). It can, when the
 * client knows which queue: one major (the client's range and the traffic rule admit no other)
 * and one transport (the client is pinned to one of those three, or only one of them is both in
 * this App and allowed by the service's `@transports`). Sharded pushes (to their shard's owner)
 * and `@since` pushes (an instance of the major too old for them could take them) are not
 * parked. An rpc never is: it needs an answer.
 */
import semver from "semver";
import type { TransportName } from "../descriptor.js";
import type { InstanceInfo } from "../discovery/types.js";
import type { Target } from "./route.js";
import type { TrafficRule } from "./versions.js";

/**
 * The one major a push of a client with `range` (semver's form; undefined: any) under `rule` may
 * wait in a queue of, or undefined when there is none: whichever instance of that major starts
 * first takes the push, so the range and the rule must admit every version of it (a client at
 * `~1.5`, or a pin to 1.5.0, would have a 1.2 instance take it), and no other major. `fallback`:
 * the version of the client's generated code, for a client that accepts any version.
 */
export function parkingMajor(
  range: string | undefined,
  rule: TrafficRule | undefined,
  fallback: string,
): number | undefined {
  const low = range === undefined ? semver.parse(fallback) : semver.minVersion(range);
  if (low === null) return undefined;
  const major = low.major;
  const whole = `${major}.x`;
  if (range !== undefined) {
    if (!semver.subset(whole, range)) return undefined;
    if (semver.intersects(range, `>=${major + 1}.0.0-0`, { includePrerelease: true })) return undefined;
  }
  // A split sends each push to one version: a queue shared by the major cannot honour it.
  if (rule !== undefined && !("pin" in rule && semver.subset(whole, rule.pin))) return undefined;
  return major;
}

/** What parking needs from the App: its transports that keep a queue per service major. */
export interface ParkingHost {
  /**
   * The transport and queue endpoint for `service`'s pushes of `version`'s major: the one transport
   * among `pinned` (or else the App's) that is allowed by `allowed` (empty: any) and keeps such a
   * queue; undefined when there is none or more than one.
   */
  parked?(
    service: string,
    version: string,
    pinned: TransportName | undefined,
    allowed: readonly TransportName[],
  ): Omit<Target, "info"> | undefined;
}

/** The instance record a parked push's target carries (no instance: the queue itself). */
export function queueInfo(service: string, version: string, transport: TransportName, endpoint: string): InstanceInfo {
  return {
    service,
    instanceId: `${service}@${version.split(".")[0]}.x (${transport} queue)`,
    version,
    endpoints: { [transport]: endpoint },
    shards: [],
    startedAt: 0,
    load: 0,
    appId: "",
  };
}
