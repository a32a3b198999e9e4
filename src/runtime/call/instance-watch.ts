/**
 * Calls in flight to one known instance that dies, on a transport that cannot see it die. A
 * sharded call goes to its shard's owner only: on nats to the instance's own subject, on amqp
 * to its exclusive queue. Killed, the owner never answers, and neither broker tells the caller
 * (NATS forgets a message once delivered; the exclusive queue and the calls in it go with the
 * connection): without this, each such call waited out its whole deadline.
 *
 * The client registers such an attempt's pending call under its instance (only sharded calls on
 * a transport with `watchInstances`: no cost to any other call) and drops it when it settles.
 * On each change of the service's instance set, an instance with calls registered that is no
 * longer in it is asked about once (`WatchedSet.gone`, one registry read per removal, none per
 * call): once its registration's lease is gone (the process was killed, or its App closed),
 * its calls fail with UNAVAILABLE, `maybeDelivered: true` (the handler may have run): the retry
 * policy sends an `@idempotent` one to the shard's new owner, as any other UNAVAILABLE. While
 * the lease lives, the instance is stopping gracefully (its record is deleted first, then it
 * finishes its calls and answers them): asked again every `RECHECK_MS` until it is gone or its
 * calls settled. While the registry does not answer (unreachable, refused, closed) the calls
 * cannot be told apart from a drain's: asked again likewise, with a warning naming the instance
 * and the error at most once a minute per instance (`WARN_EVERY_MS`).
 *
 * An unsharded call on nats goes to its version's subject, where NATS hands it to one instance
 * the caller does not know. A server tells the caller which instance took a call still running
 * after about 100 ms (a taken notice: nats/rpc-server.ts), and the client registers the call
 * under that instance then (`taken`), to be failed the same way. An instance named while not in
 * the set (its record not yet seen, or deleted already by a graceful stop) is not asked about
 * until it has been seen in it: a record not seen yet would read as gone; such calls wait for
 * their answer (a draining instance answers them) or their deadline. A record marked `stopping`
 * (a sharded instance draining: routing leaves it out) counts as seen: its calls fail once it
 * is gone, as a killed drain's must.
 */
import type { Logger } from "pino";
import type { InstanceInfo, InstanceSet } from "../discovery/types.js";
import { Code, FanError } from "../errors.js";
import { lostWith } from "./lost.js";
import type { PendingCall } from "./pending.js";

/** How often an instance that left the set while its lease lived (draining) is asked about again. */
export const RECHECK_MS = 500;
/** How often a registry that fails to say whether one instance is gone is warned about. */
export const WARN_EVERY_MS = 60_000;

/**
 * The instance set as the watch reads it. `gone` (`WatchedSet`, instance-set.ts): true once the
 * instance, no longer in the set, is known to be gone with its process (its registration's lease
 * expired or was revoked), not merely deregistered and still draining its calls. A set without
 * it: gone once its record is.
 */
export type WatchedInstances = Pick<InstanceSet, "instances" | "records" | "onChange"> & {
  gone?(instanceId: string): Promise<boolean>;
};

/** The pending calls of one client sent to (or taken by) one instance each, failed once that instance is gone. */
export class InstanceWatch {
  readonly #set: WatchedInstances;
  readonly #service: string;
  readonly #calls = new Map<string, Set<PendingCall>>();
  /** The set's change listener's removal, while any call is registered. */
  #off: (() => void) | undefined;
  /** Instances of `taken` calls not seen in the set yet: not asked about (see the file's comment). */
  readonly #unseen = new Set<string>();
  /** Instances asked about now (`WatchedInstances.gone`). */
  readonly #asking = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #log: Pick<Logger, "warn"> | undefined;
  /** When a failed question about each instance was last warned about. */
  readonly #warned = new Map<string, number>();

  constructor(set: WatchedInstances, service: string, log?: Pick<Logger, "warn">) {
    this.#set = set;
    this.#service = service;
    this.#log = log;
  }

  /** Watches `p`, a call in flight to `instanceId`, until it settles (`drop`). */
  add(instanceId: string, p: PendingCall): void {
    if (this.#closed) return;
    let calls = this.#calls.get(instanceId);
    if (calls === undefined) {
      calls = new Set();
      this.#calls.set(instanceId, calls);
    }
    calls.add(p);
    p.watch = this;
    p.watchedOn = instanceId;
    this.#off ??= this.#set.onChange(() => this.#check());
  }

  /** `p`, a call to its version, was taken by `instanceId` (its transport said so): watched from now on. */
  taken(instanceId: string, p: PendingCall): void {
    if (this.#closed) return;
    if (!this.#calls.has(instanceId) && !this.#records().some((i) => i.instanceId === instanceId))
      this.#unseen.add(instanceId);
    this.add(instanceId, p);
  }

  /** `p` settled. */
  drop(p: PendingCall): void {
    const id = p.watchedOn;
    const calls = this.#calls.get(id);
    if (calls === undefined || !calls.delete(p) || calls.size > 0) return;
    this.#calls.delete(id);
    this.#unseen.delete(id);
    if (this.#calls.size === 0) this.#idle();
  }

  /** Stops watching (the client was released); calls in flight wait for their own outcome. */
  close(): void {
    this.#closed = true;
    this.#calls.clear();
    this.#unseen.clear();
    this.#idle();
  }

  #idle(): void {
    this.#off?.();
    this.#off = undefined;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Every record, a stopping instance's too: it is there (still running its calls), not gone. */
  #records(): readonly InstanceInfo[] {
    return this.#set.records?.() ?? this.#set.instances();
  }

  /** The set changed (or a recheck is due): asks about each watched instance no longer in it. */
  #check(): void {
    if (this.#calls.size === 0) return;
    const present = new Set<string>();
    for (const i of this.#records()) present.add(i.instanceId);
    for (const id of this.#calls.keys())
      if (present.has(id)) this.#unseen.delete(id);
      else if (!this.#unseen.has(id)) void this.#ask(id);
  }

  async #ask(id: string): Promise<void> {
    if (this.#asking.has(id)) return;
    this.#asking.add(id);
    let gone: boolean;
    try {
      gone = this.#set.gone === undefined ? true : await this.#set.gone(id);
    } catch (e) {
      // The registry did not answer: asked again later.
      gone = false;
      this.#warn(id, e);
    } finally {
      this.#asking.delete(id);
    }
    const calls = this.#calls.get(id);
    if (calls === undefined) return;
    if (!gone) {
      this.#recheck();
      return;
    }
    const err = instanceGone(this.#service, id);
    for (const p of [...calls]) p.fail(err);
  }

  #warn(id: string, e: unknown): void {
    const now = Date.now();
    const last = this.#warned.get(id);
    if (this.#log === undefined || (last !== undefined && now - last < WARN_EVERY_MS) || !this.#calls.has(id)) return;
    for (const [other, at] of this.#warned) if (now - at >= WARN_EVERY_MS) this.#warned.delete(other);
    this.#warned.set(id, now);
    const n = this.#calls.get(id)?.size ?? 0;
    this.#log.warn(
      { err: e, service: this.#service, instance: id, calls: n },
      `instance ${id} of ${this.#service} left the instance set with ${n} calls in flight to it, and asking the registry whether its lease ended failed (${e instanceof Error ? e.message : String(e)}): asked again every ${RECHECK_MS} ms; until it answers, those calls wait for their answer or their deadline (said at most once a minute per instance)`,
    );
  }

  #recheck(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#check();
    }, RECHECK_MS);
    this.#timer.unref();
  }
}

/**
 * The error of a call whose instance's registration ended while it was in flight: UNAVAILABLE,
 * maybe delivered (the shard route adds the shard: `shard-route.ts`), marked lost with the
 * instance (`lost.ts`: the retry budget counts the death once).
 */
export function instanceGone(service: string, instanceId: string): FanError {
  return lostWith(
    new FanError(
      Code.UNAVAILABLE,
      `instance ${instanceId} of ${service} is gone (its registration's lease ended) while the call was in flight; the call may have run there`,
      { details: { instance: instanceId, maybeDelivered: true } },
    ),
    instanceId,
  );
}
