/**
 * Nothing silent about states with several owners: a state that is not `@shard`ed has one
 * owner per service, so an instance of a service that is not `@unique` follows the other
 * instances of its major version and warns, naming the states, while any other is registered
 * (each instance publishes under its own epoch, and a watcher follows whichever answered its
 * last snapshot). It warns once per such period and says when it is the only owner again.
 */
import semver from "semver";
import type { Logger } from "pino";
import type { ServiceDescriptor } from "../descriptor.js";
import type { Directory } from "../discovery/types.js";

/** The states of `d` that need one owner per service, when `d` can have several instances serving them. */
export function singleOwnerStates(d: ServiceDescriptor): string[] {
  if (d.unique) return [];
  return Object.values(d.states)
    .filter((s) => s.sharded !== true)
    .map((s) => s.name);
}

/** Follows the instances of `d`; returns the stop. */
export async function warnOnSeveralOwners(
  d: ServiceDescriptor,
  instanceId: string,
  appId: string,
  directory: Directory,
  log: Logger,
): Promise<() => void> {
  const states = singleOwnerStates(d);
  if (states.length === 0) return () => undefined;
  const set = await directory.watch(d.name);
  const major = semver.major(d.version);
  let warned = false;
  const check = (): void => {
    const others = set
      .instances()
      // Instances in this App share its one owner; other Apps' instances are other owners.
      .filter((i) => i.instanceId !== instanceId && i.appId !== appId && semver.major(i.version) === major)
      .map((i) => i.instanceId);
    if (others.length > 0 && !warned) {
      warned = true;
      log.warn(
        { states: states.map((s) => `${d.name}.${s}`), others },
        `states ${states.join(", ")} of ${d.name} have one owner per service, but ${others.length + 1} instances serve it: ` +
          "each publishes its own value under its own epoch and watchers follow whichever answered last; " +
          "serve it from one instance, make the service @unique, or shard the state (@shard)",
      );
    } else if (others.length === 0 && warned) {
      warned = false;
      log.info({ states }, "this instance is the only owner of its states again");
    }
  };
  const off = set.onChange(check);
  check();
  return off;
}
