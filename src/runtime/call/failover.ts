/**
 * Failover of one call or push to another instance, for sends that provably never reached a
 * server (`transports/not-delivered.ts`: refused at connect, or the connection known down):
 * no handler can have seen them, so they go elsewhere whatever the method (idempotent or not),
 * within the call's deadline. Sends that may have arrived are never repeated here: that is the
 * retry policy's decision, per method.
 *
 * Also where a pick avoids an endpoint its transport knows is down (zmq after a SIGKILL), so
 * calls do not wait on it until discovery drops the instance.
 */
import type { TransportName } from "../descriptor.js";
import { isNotDelivered } from "../transports/not-delivered.js";
import type { Envelope, SendOptions } from "../transports/transport.js";
import type { Member, Target } from "./route.js";

/** Where a call may go: a route's targets (pinned to a transport if given, fitting a member's `@since`). */
export interface Targets {
  targets(pinned: TransportName | undefined, member?: Member): readonly Target[];
}

/** Rotates the start of the search so that the calls moved off a down instance spread. */
let turn = 0;

/** `target`, or another target when `target`'s transport knows its endpoint is down (and one is up). */
export function avoidDown(target: Target, route: Targets, pinned: TransportName | undefined, member?: Member): Target {
  if (target.transport.reachable?.(target.endpoint) !== false) return target;
  return other(target, route.targets(pinned, member), undefined) ?? target;
}

/**
 * Sends `env` to the other targets in turn while each refuses it as not delivered (`err`: the
 * first target's refusal); rejects with the last error when none is left, the deadline
 * passed, the signal aborted, or a send failed in a way that may have delivered it.
 * `onTarget` is told of each target before the send to it (the caller's in-flight count moves).
 */
export async function resend(
  first: Target,
  err: unknown,
  env: Envelope,
  kind: "call" | "push",
  opts: SendOptions,
  route: Targets,
  pinned: TransportName | undefined,
  member?: Member,
  onTarget?: (target: Target) => void,
): Promise<Envelope | undefined> {
  const tried = new Set<string>([keyOf(first)]);
  let last = err;
  for (;;) {
    if (!isNotDelivered(last) || opts.signal.aborted || Date.now() >= opts.deadline) throw last;
    const list = route.targets(pinned, member);
    const next = other(first, list, tried);
    if (next === undefined) throw last;
    tried.add(keyOf(next));
    onTarget?.(next);
    const sendOpts: SendOptions = { signal: opts.signal, deadline: opts.deadline, elsewhere: tried.size < list.length };
    try {
      if (kind === "call") return await next.transport.call(next.endpoint, env, sendOpts);
      await next.transport.push(next.endpoint, env, sendOpts);
      return undefined;
    } catch (e) {
      last = e;
    }
  }
}

/** A target that takes the same envelope form as `first`, not tried yet, preferring reachable ones. */
function other(first: Target, list: readonly Target[], tried: ReadonlySet<string> | undefined): Target | undefined {
  let fallback: Target | undefined;
  const start = turn++;
  for (let i = 0; i < list.length; i++) {
    const t = list[(start + i) % list.length] as Target;
    if (t.values !== first.values || (t.info === first.info && t.endpoint === first.endpoint)) continue;
    if (tried?.has(keyOf(t)) === true) continue;
    if (t.transport.reachable?.(t.endpoint) !== false) return t;
    fallback ??= t;
  }
  return fallback;
}

function keyOf(t: Target): string {
  return `${t.info.instanceId}\u0000${t.endpoint}`;
}
