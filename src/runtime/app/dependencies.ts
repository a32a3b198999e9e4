/**
 * What `start` checks before it serves anything, beyond config: that each hard dependency has
 * an instance this App can reach (registered is not enough: one that shares no transport with
 * this App fails every call "no common transport"), and that the events its services emit or
 * subscribe to can travel between processes. Both are impossible configurations a deploy would
 * otherwise only discover at the first call or `emit`, after a handler's side effects.
 */
import type { Logger } from "pino";
import semver from "semver";
import type { ServiceDescriptor, TransportName } from "../descriptor.js";
import type { InstanceInfo, InstanceSet } from "../discovery/types.js";
import { Code, FanError } from "../errors.js";

/** A hard dependency start waits for, and the served services that declare it. */
export interface Wanted {
  readonly service: string;
  readonly range: string;
  readonly by: readonly string[];
}

/** What the wait needs from the App. */
export interface ReachHost {
  /** Whether this App can call `info` (a transport both have, or its local endpoint in this hub). */
  reaches(info: InstanceInfo): boolean;
  /** This App's network transports. */
  readonly network: readonly TransportName[];
  readonly log: Logger;
}

/**
 * Why the registered instances of `set` that satisfy `range` cannot be reached, naming both
 * sides' transports; undefined when one can be, or none is registered (the plain wait's case).
 */
export function unreachableReason(
  instances: readonly InstanceInfo[],
  range: string,
  host: Pick<ReachHost, "reaches" | "network">,
): string | undefined {
  const fitting = instances.filter((i) => semver.satisfies(i.version, range));
  if (fitting.length === 0 || fitting.some((i) => host.reaches(i))) return undefined;
  const theirs = [...new Set(fitting.flatMap((i) => Object.keys(i.endpoints) as TransportName[]))]
    .filter((t) => t !== "local")
    .sort();
  const offered = theirs.length === 0 ? "only local, in their own process" : theirs.join(", ");
  const mine = host.network.length === 0 ? "only local" : host.network.join(", ");
  return `registered but sharing no transport with this app: its instances (${named(fitting)}) serve on ${offered}, this app has ${mine}`;
}

/**
 * Resolves once `set` has an instance satisfying `w.range` that this App can reach (the caller
 * has waited for one to be registered). While only unreachable ones are registered it warns
 * once, naming both sides' transports, and keeps waiting, as start waits for an absent
 * dependency: one on a shared transport may still register. At `deadline` it rejects with
 * `UNAVAILABLE` naming the mismatch.
 */
export function untilReachable(
  set: InstanceSet,
  w: Wanted,
  host: ReachHost,
  deadline: number,
  signal: AbortSignal,
): Promise<void> {
  const why = (): string | undefined => unreachableReason(set.instances(), w.range, host);
  const first = why();
  if (first === undefined) return Promise.resolve();
  const left = Math.max(0, deadline - Date.now());
  host.log.warn(
    { dependency: w.service, range: w.range, neededBy: w.by, transports: host.network },
    `waiting for hard dependency ${w.service} ${w.range} (needed by ${w.by.join(", ")}): ${first}; add one of theirs to this app (createApp({ transports }) or FAN_TRANSPORTS) or serve ${w.service} on one of this app's; start fails in ${left} ms unless an instance this app can reach registers`,
  );
  const reached = (): boolean => set.instances().some((i) => semver.satisfies(i.version, w.range) && host.reaches(i));
  return new Promise<void>((resolve, reject) => {
    const finish = (err?: Error): void => {
      off();
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      if (err === undefined) resolve();
      else reject(err);
    };
    const off = set.onChange(() => {
      if (reached()) finish();
    });
    const timer = setTimeout(
      () => finish(new FanError(Code.UNAVAILABLE, why() ?? "no instance is registered any more")),
      left,
    );
    const onAbort = (): void => finish(signal.reason as Error);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** The events of the served services that no transport of the App can carry between processes. */
export interface EventProblems {
  /** Services that declare events this App cannot publish: every `emit` of them fails. */
  readonly emits: readonly { readonly service: string; readonly events: readonly string[]; readonly why: string }[];
  /** `on` subscriptions that could never receive anything: the start fails. */
  readonly subscribes: readonly string[];
}

/**
 * What of `served`'s events cannot travel between processes: a service that declares events,
 * or one that subscribes to some, when `eventTransportName` (app/infra.ts) throws for the
 * publishing service, naming what is missing.
 */
export function eventProblems(
  served: readonly ServiceDescriptor[],
  eventTransportName: (source: ServiceDescriptor) => TransportName,
): EventProblems {
  const emits: { service: string; events: string[]; why: string }[] = [];
  const subscribes: string[] = [];
  const why = (source: ServiceDescriptor): string | undefined => {
    try {
      eventTransportName(source);
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  };
  for (const d of served) {
    const events = Object.keys(d.events);
    const w = events.length === 0 ? undefined : why(d);
    if (w !== undefined) emits.push({ service: d.name, events, why: w });
    const bySource = new Map<string, { source: ServiceDescriptor; events: string[] }>();
    for (const s of d.subscriptions) {
      const b = bySource.get(s.service) ?? { source: s.source(), events: [] };
      b.events.push(`${s.service}.${s.event}`);
      bySource.set(s.service, b);
    }
    for (const b of bySource.values()) {
      const w = why(b.source);
      if (w !== undefined) subscribes.push(`${d.name} subscribes to ${b.events.join(", ")}, but ${w}`);
    }
  }
  return { emits, subscribes };
}

function named(instances: readonly InstanceInfo[]): string {
  const ids = instances.map((i) => `${i.instanceId}@${i.version}`);
  return ids.length <= 3 ? ids.join(", ") : `${ids.slice(0, 3).join(", ")} and ${ids.length - 3} more`;
}
