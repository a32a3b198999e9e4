/**
 * `ctx.states`: the owners of a served service's states, one property per state the IDL
 * declares (typed by the generated `XStates` map), each resolved on first read.
 */
import type { StatePublisher } from "./owner.js";

/** `ctx.states` typed by a service's generated state map (`{ inventory: Record<string, Wine> }`). */
export type StatePublishers<States> = { readonly [K in keyof States & string]: StatePublisher<States[K]> };

/** A read-only object with one getter per state name, each returning `owner(name)`. */
export function statePublishers(
  names: readonly string[],
  owner: (name: string) => StatePublisher<unknown>,
): StatePublishers<Record<string, unknown>> {
  const out: Record<string, StatePublisher<unknown>> = {};
  for (const name of names) Object.defineProperty(out, name, { get: () => owner(name), enumerable: true });
  return Object.freeze(out);
}
