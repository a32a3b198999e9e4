/**
 * A push to one instance on a broker transport: a `@shard` push to its shard's owner. It goes
 * the way a sharded call goes, onto the owner's own queue (amqp) or list (redis), with a reply
 * address, and the owner answers once its handler finished (an empty reply) or failed
 * (UNAVAILABLE: deliver again) — so it is acknowledged as an http push is, by the consumer
 * rather than the broker. Not acknowledged, it is sent again with the same id and `attempt`
 * incremented (the consumer's dedupe window drops a duplicate) until the attempts run out or
 * the deadline would pass. Shared by amqp and redis (`ackEnvelope` and `handlePush` are the
 * serving side).
 */
import { Code, FanError } from "../errors.js";
import { notSent } from "../call/outcome.js";
import { pushRefusal, refusalError, sendAgain } from "./acked-push.js";
import { isNotDelivered } from "./not-delivered.js";
import type { Envelope, EnvelopeHeaders, Inbound, SendOptions } from "./transport.js";

/** Attempts of a push to an owner, and the first delay between them (doubling, at most 1 s). */
export const OWNER_PUSH_ATTEMPTS = 5;
const FIRST_DELAY_MS = 50;

/**
 * Whether a push with `headers` to `addr` goes to its shard's owner (`pushToOwner`, on the
 * transport's call path) rather than to its service's queue or stream (its push path).
 */
export function toOwner(headers: EnvelopeHeaders, addr: { readonly instance?: string }): boolean {
  return headers.shard !== undefined && addr.instance !== undefined;
}

/** Sends `env` through `send` (a call to the owner) until the owner acknowledges it. */
export async function pushToOwner(
  send: (env: Envelope) => Promise<Envelope>,
  env: Envelope,
  opts: SendOptions,
  attempts = OWNER_PUSH_ATTEMPTS,
): Promise<void> {
  let delay = FIRST_DELAY_MS;
  let attempt = typeof env.headers.attempt === "number" ? env.headers.attempt : 1;
  for (let i = 1; ; i++) {
    let reply: Envelope;
    try {
      reply = await send(i === 1 ? env : { ...env, headers: { ...env.headers, attempt } });
    } catch (e) {
      // Never reached the owner (its queue is gone, it is not alive): the first attempt never left.
      if (i === 1 && isNotDelivered(e)) throw notSent(e);
      throw e;
    }
    if (reply.kind !== "error") return;
    const err = refusalError(reply.payload, "push not acknowledged");
    if (!sendAgain(err) || i >= attempts || Date.now() + delay >= opts.deadline) throw err;
    await new Promise((r) => setTimeout(r, delay));
    if (opts.signal.aborted) throw new FanError(Code.CANCELLED, "cancelled");
    delay = Math.min(delay * 2, 1000);
    attempt++;
  }
}

/** Runs a push that arrived on an instance's own queue or list; resolves with the envelope answering it. */
export function handlePush(inbound: Inbound, env: Envelope): Promise<Envelope> {
  return inbound.push(env, "call").then(
    () => ackEnvelope(env),
    (e: unknown): Envelope => ({ ...ackEnvelope(env), kind: "error", payload: pushRefusal(e) }),
  );
}

/** The empty reply that acknowledges a push. */
export function ackEnvelope(env: Envelope): Envelope {
  return { v: 1, id: env.id, kind: "reply", service: env.service, method: env.method, headers: {}, payload: null };
}
