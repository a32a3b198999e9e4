/**
 * Failures the runtime attributes to an instance lost with the call (its process killed: its
 * registration's lease ended, its alive entry expired, it took the call and said nothing more).
 * The retry budget counts one such loss once however many calls it failed (policy/budget.ts):
 * the death is one event, and the retries go to other instances. The mark is a property of the
 * error object only (a symbol: never on the wire, so a server cannot claim it), kept by
 * `copyError` and found through `cause` when a layer rewords the error.
 */
import { FanError } from "../errors.js";

const LOST = Symbol("fan.lostInstance");

/**
 * `e`, marked as failed because the instance `key` names was lost with the call. `key`: the
 * instance id, or what names the unknown taker (a transport and the list it took the call from).
 */
export function lostWith<E extends FanError>(e: E, key: string): E {
  Object.defineProperty(e, LOST, { value: key, enumerable: false, configurable: true });
  return e;
}

/** The lost instance `e` (or an error it wraps) is marked with, or undefined. */
export function lostInstanceOf(e: unknown): string | undefined {
  let err: unknown = e;
  for (let depth = 0; depth < 4 && FanError.is(err); depth++) {
    const key = (err as unknown as Record<symbol, unknown>)[LOST];
    if (typeof key === "string") return key;
    err = err.cause;
  }
  return undefined;
}
