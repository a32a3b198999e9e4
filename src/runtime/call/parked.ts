/**
 * Pushes made while no instance of their service is registered. Over amqp, redis and nats a
 * push goes to a queue of the service's major version that outlives its consumers, not to an
 * instance, so such a push need not be refused: it is sent to that queue and waits for the first
 * instance that starts (a deploy, a crash loop, a consumer scaled to zero). It can, when the
 * client knows which queue: one major (the client's range and the traffic rule admit no other;
 * a client of any version: its generated code's) and one transport (the client is pinned to one
 * of those three, or only one of them is both in this App and allowed by the service's
 * `@transports`), and no instance the push could be meant for is registered (that one is out of
 * reach, not down: `mayPark`). Sharded pushes (to their shard's owner) and `@since` pushes (an
 * instance of the major too old for them could take them) are not parked. An rpc never is: it
 * needs an answer.
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
 * `~1.5`, or a pin to 1.5.0, would have a 1.2 instance take it), and no other major (the default
 * of a client generated at a prerelease, `2.x || >=2.0.0-beta.1 <2.0.0`, admits `2.x`). A client
 * that accepts any version (`*`, `x`, `>=0.0.0`) waits in the major of `fallback`, the version
 * of its generated code, whose contract its pushes follow (`mayPark` says when).
 */
export function parkingMajor(
  range: string | undefined,
  rule: TrafficRule | undefined,
  fallback: string,
): number | undefined {
  const any = anyVersion(range);
  const low = any ? semver.parse(fallback) : semver.minVersion(range as string);
  if (low === null) return undefined;
  const major = low.major;
  const whole = `${major}.x`;
  if (range !== undefined && !any) {
    if (!semver.subset(whole, range)) return undefined;
    if (semver.intersects(range, `>=${major + 1}.0.0-0`, { includePrerelease: true })) return undefined;
  }
  // A split sends each push to one version: a queue shared by the major cannot honour it.
  if (rule !== undefined && !("pin" in rule && semver.subset(whole, rule.pin))) return undefined;
  return major;
}

/**
 * Whether a push of a client with `range` (as for `parkingMajor`) may wait in `major`'s queue
 * while `registered` (the service's instances in discovery, reachable or not) are registered. A
 * registered instance the push could be meant for is out of reach, not down: the push is refused.
 * For a client of one major, those are that major's instances (one of another major neither takes
 * its calls nor reads the queue). For a client of any version, every instance, of any major or
 * prerelease and whatever the traffic rule (a live choice: what it excludes now it may admit before
 * the queue is read): its calls could go to any of them, and one of another major never reads it.
 */
export function mayPark(range: string | undefined, major: number, registered: readonly InstanceInfo[]): boolean {
  if (anyVersion(range)) return registered.length === 0;
  return !registered.some((i) => semver.major(i.version) === major);
}

/** Whether `range` (semver's form; undefined: any) admits every version, every major. */
function anyVersion(range: string | undefined): boolean {
  return range === undefined || semver.subset("*", range);
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
