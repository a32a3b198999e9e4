/**
 * `ctx.states`: the owners of a served service's states, one property per state the IDL
 * declares (typed by the generated `XStates` map), each resolved on first read.
 */
import type { Sharded } from "../descriptor.js";
import type { ShardedStatePublisher, StatePublisher } from "./owner.js";

/**
 * The owner side of one state whose value type in the generated map is `S` (`Sharded<T>` for a
 * `@shard` state). In an untyped state map (AnyStates) it is `any`: either kind of owner, so a
 * hook typed by the service's own map (`LifecycleContext<C, E, XStates>`, a sharded state's
 * owner included) still implements `ServiceHooks`, whose context is untyped.
 */
export type StatePublisherOf<S> =
  // biome-ignore lint/suspicious/noExplicitAny: an untyped state map keeps any
  0 extends 1 & S ? any : S extends Sharded<infer T> ? ShardedStatePublisher<T> : StatePublisher<S>;

/** `ctx.states` typed by a service's generated state map (`{ inventory: Record<string, Wine> }`). */
export type StatePublishers<States> = { readonly [K in keyof States & string]: StatePublisherOf<States[K]> };

/** A read-only object with one getter per state name, each returning `owner(name)`. */
export function statePublishers(
  names: readonly string[],
  /** The owner of `name` (a sharded state's owner also implements StatePublisher, refusing its members). */
  owner: (name: string) => StatePublisher<unknown>,
): StatePublishers<Record<string, unknown>> {
  const out: Record<string, StatePublisher<unknown>> = {};
  for (const name of names) Object.defineProperty(out, name, { get: () => owner(name), enumerable: true });
  return Object.freeze(out);
}
