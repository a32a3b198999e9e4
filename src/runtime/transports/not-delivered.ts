/**
 * "Provably not delivered": a send that failed before any byte of the message left this
 * process (the connection was refused, or is known to be down and the message was never
 * handed to the socket). Such a message may go to another instance whatever the method
 * (idempotent or not, call or push): no handler can have seen it. The client's failover
 * (`call/failover.ts`) reads the mark; transports set it where they can prove it.
 */
import { FanError } from "../errors.js";

const NOT_DELIVERED = Symbol.for("fan.notDelivered");

/** Marks `err` as a send that provably never reached a server; returns it. */
export function notDelivered(err: FanError): FanError {
  (err as unknown as Record<symbol, boolean>)[NOT_DELIVERED] = true;
  return err;
}

/** Whether `e` is a send that provably never reached a server. */
export function isNotDelivered(e: unknown): boolean {
  return FanError.is(e) && (e as unknown as Record<symbol, unknown>)[NOT_DELIVERED] === true;
}
