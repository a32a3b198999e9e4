/**
 * The client side of sharding: a call to a `@shard` method goes to its shard's owner, on
 * whatever transport reaches it (on amqp and redis to the owner's own queue, because the call
 * carries a `shard` header). The ownership table is computed from the discovery cache, once
 * per change. No owner, or an owner this App cannot reach or whose call fails with
 * UNAVAILABLE: the call fails with UNAVAILABLE naming the shard, unless the method allows
 * fallback (`@fallback` in the IDL, or the client's `shardFallback` option, which overrides
 * it either way): then it goes to another instance, marked `shardFallback` so that instance
 * serves it instead of redirecting it to the owner. An owner that answers with a redirect
 * (its view says another instance owns the shard) gets the call retried once at the owner,
 * unless that owner's circuit breaker is open (then as when `pick` finds it open).
 */
import type { MethodDescriptor, ServiceDescriptor, TransportName } from "../descriptor.js";
import type { InstanceInfo } from "../discovery/types.js";
import { Code, FanError } from "../errors.js";
import type { OutgoingRequest } from "./interceptors.js";
import type { Route, Target } from "./route.js";
import { sinceFits, tooOld } from "./versions.js";
import { hasDeliveryFlag, maybeDelivered as mayHaveArrived } from "./outcome.js";
import { isNotDelivered } from "../transports/not-delivered.js";
import {
  assignShards,
  redirectOf,
  shardDomain,
  shardOf,
  ownerUnavailable,
  shardUnavailable,
  type Redirect,
} from "./shards.js";

/**
 * What the policy chain lends `deliver`: `blocked`, instances whose breaker admits no attempt
 * (a fallback skips them); `moved`, told before a call the owner refused goes to another
 * instance, so the owner's breaker records the refusal and the other's the outcome;
 * `redirected`, told when the instance the call went to answered with a redirect: it goes to
 * `to` (undefined: it cannot follow, or the owner's breaker is open), whose breaker records the
 * outcome, not the redirecting one's.
 */
export interface ShardHooks {
  readonly blocked?: ((t: Target) => boolean) | undefined;
  readonly moved?: ((from: Target, err: unknown, to: Target) => void) | undefined;
  readonly redirected?: ((from: Target, to: Target | undefined) => void) | undefined;
}

/** Longest wait for the discovery cache to learn a new owner after a redirect. */
const REDIRECT_WAIT_MS = 1000;

/** Routes one client's sharded calls. */
export class ShardRoute {
  readonly #route: Route;
  readonly #service: ServiceDescriptor;
  /** The client's `shardFallback` option: undefined follows each method's `@fallback`. */
  readonly #fallback: boolean | undefined;
  #owners: (string | undefined)[] | undefined;
  #byId = new Map<string, InstanceInfo>();
  readonly #off: () => void;

  constructor(route: Route, service: ServiceDescriptor, fallback: boolean | undefined) {
    this.#route = route;
    this.#service = service;
    this.#fallback = fallback;
    this.#off = route.onChange(() => {
      this.#owners = undefined;
    });
  }

  /** Stops following the route's changes (its client is released). */
  close(): void {
    this.#off();
  }

  /**
   * The target of one attempt of a sharded call: its shard's owner (the `shard` header set),
   * resolved again on every attempt, so a retry follows an ownership change. `blocked`: the
   * policy's skip of instances whose circuit breaker is open; the owner blocked throws
   * UNAVAILABLE naming the shard (retryable: ownership may move), or, with fallback, another
   * instance. Throws UNAVAILABLE naming the shard when no owner is reachable (unless fallback),
   * INVALID_ARGUMENT when a key part is missing, UNIMPLEMENTED when the owner is older than `@since`.
   */
  pick(req: OutgoingRequest, blocked?: (t: Target) => boolean): Target {
    const method = req.method;
    const shard = shardOf(req.input, method.shard ?? [], this.#service.shards);
    const pinned = req.opts?.transport;
    // Set again by #fallbackOr when this attempt goes to another instance.
    if (req.headers.shardFallback !== undefined) delete req.headers.shardFallback;
    if (shard === undefined) return this.#fallbackOr(req, undefined, pinned, blocked, "a shard key part is missing");
    req.headers.shard = shard;
    let target: Target;
    try {
      target = this.#owner(shard, pinned);
    } catch (e) {
      if (!this.#allows(method)) throw e;
      return this.#fallbackOr(req, shard, pinned, blocked, (e as Error).message);
    }
    if (blocked?.(target) === true) {
      const why = `the circuit breaker of its owner ${target.info.instanceId} is open`;
      if (!this.#allows(method)) throw shardUnavailable(this.#service.name, shard, why);
      return this.#fallbackOr(req, shard, pinned, blocked, why);
    }
    if (method.since !== undefined && !sinceFits(method.since, target.info))
      throw tooOld(this.#service.name, method.name, method.since, [target.info.version]);
    return target;
  }

  /**
   * Sends one attempt to `target` (from `pick`) through `sendTo`, the client's own send: at
   * the shard's owner, follows one redirect and names the shard in an UNAVAILABLE, or falls
   * back to another instance (`hooks`: see ShardHooks).
   */
  deliver(
    req: OutgoingRequest,
    target: Target,
    sendTo: (t: Target) => Promise<unknown>,
    hooks?: ShardHooks,
  ): Promise<unknown> {
    const shard = req.headers.shard;
    if (typeof shard !== "number" || this.#table()[shard] !== target.info.instanceId) return sendTo(target);
    const pinned = req.opts?.transport;
    return sendTo(target).catch((e: unknown) => this.#failed(e, shard, target, pinned, req, sendTo, hooks));
  }

  /** Whether `method`'s calls may go to another instance when the owner is unavailable. */
  #allows(method: MethodDescriptor): boolean {
    return this.#fallback ?? method.shardFallback === true;
  }

  /** The target of `shard`'s owner; UNAVAILABLE naming the shard when there is none this App reaches. */
  #owner(shard: number, pinned: TransportName | undefined): Target {
    const owners = this.#table();
    const id = owners[shard];
    if (id === undefined)
      throw shardUnavailable(
        this.#service.name,
        shard,
        owners.length === 0 || this.#byId.size === 0 ? "no instance is registered" : "no instance owns it",
      );
    const info = this.#byId.get(id) as InstanceInfo;
    const target = this.#route.targetOf(info, pinned);
    if (target === undefined)
      throw shardUnavailable(
        this.#service.name,
        shard,
        `its owner ${id} offers ${Object.keys(info.endpoints).join(", ") || "no transport"}, which this app cannot use`,
      );
    return target;
  }

  #table(): (string | undefined)[] {
    if (this.#owners !== undefined) return this.#owners;
    const domain = shardDomain(this.#route.fitting());
    this.#byId = new Map(domain.map((i) => [i.instanceId, i]));
    this.#owners = domain.length === 0 ? [] : assignShards(domain, this.#service.shards);
    return this.#owners;
  }

  async #failed(
    e: unknown,
    shard: number,
    target: Target,
    pinned: TransportName | undefined,
    req: OutgoingRequest,
    sendTo: (t: Target) => Promise<unknown>,
    hooks: ShardHooks | undefined,
  ): Promise<unknown> {
    const redirect = redirectOf(e);
    if (redirect !== undefined) {
      let next: Target;
      try {
        const owner = await this.#redirected(shard, redirect, target, pinned, req.deadline);
        // As `pick` does for the owner it resolves: an owner whose breaker is open is not sent
        // the call (UNAVAILABLE naming the shard, or another instance with fallback).
        const blocked = hooks?.blocked;
        next =
          blocked?.(owner) === true
            ? this.#fallbackOr(
                req,
                shard,
                pinned,
                blocked,
                `the circuit breaker of its owner ${owner.info.instanceId} is open`,
              )
            : owner;
      } catch (e2) {
        hooks?.redirected?.(target, undefined);
        throw e2;
      }
      // The redirecting instance answered; the outcome is the owner's (or the fallback's).
      hooks?.redirected?.(target, next);
      return sendTo(next);
    }
    if (
      FanError.is(e) &&
      e.code === Code.UNAVAILABLE &&
      (e.details as { shard?: unknown } | undefined)?.shard === undefined &&
      !answered(e)
    ) {
      const why = `its owner ${target.info.instanceId}: ${e.message}`;
      // The owner provably never saw it (refused, returned by the broker, gone from the alive
      // set): with fallback another instance takes it, whatever the method, within the deadline.
      const unseen = isNotDelivered(e) || (hasDeliveryFlag(e) && !mayHaveArrived(e));
      if (unseen && this.#allows(req.method) && Date.now() < req.deadline) {
        const owner = target.info.instanceId;
        const blocked = hooks?.blocked;
        const skip = (t: Target): boolean => t.info.instanceId === owner || blocked?.(t) === true;
        const other = this.#fallbackOr(req, shard, pinned, skip, why);
        // The owner's refusal is its attempt's outcome; the other instance's answer is its own.
        hooks?.moved?.(target, e, other);
        return sendTo(other).catch((e2: unknown) => {
          if (!FanError.is(e2) || e2.code !== Code.UNAVAILABLE) throw e2;
          throw shardUnavailable(
            this.#service.name,
            shard,
            `${why}; fallback to ${other.info.instanceId}: ${e2.message}`,
            e2,
          );
        });
      }
      // A push's `maybeDelivered` is the producer's to read: the reworded error keeps it.
      throw ownerUnavailable(this.#service.name, shard, target.info.instanceId, e);
    }
    throw e;
  }

  /**
   * Where to retry after `refused` redirected: this client's own view once it names another
   * owner, else the owner the redirect named once the cache knows it; waits for the cache up to
   * 1 s (bounded by the deadline).
   */
  async #redirected(
    shard: number,
    r: Redirect,
    refused: Target,
    pinned: TransportName | undefined,
    deadline: number,
  ): Promise<Target> {
    const until = Math.min(deadline, Date.now() + REDIRECT_WAIT_MS);
    for (;;) {
      const mine = this.#table()[shard];
      const id = mine !== undefined && mine !== refused.info.instanceId ? mine : r.owner;
      const info =
        id === undefined ? undefined : (this.#byId.get(id) ?? this.#route.fitting().find((i) => i.instanceId === id));
      if (info !== undefined && id !== refused.info.instanceId) {
        const t = this.#route.targetOf(info, pinned);
        if (t === undefined)
          throw shardUnavailable(this.#service.name, shard, `redirected to ${id}, which this app cannot reach`);
        return t;
      }
      const left = until - Date.now();
      // Past the deadline the outcome is DEADLINE_EXCEEDED, whatever else went wrong.
      if (Date.now() >= deadline)
        throw new FanError(
          Code.DEADLINE_EXCEEDED,
          `${this.#service.name}: deadline exceeded while following a redirect of shard ${shard}`,
        );
      if (left <= 0)
        throw shardUnavailable(
          this.#service.name,
          shard,
          `${refused.info.instanceId} no longer owns it and ${r.owner === undefined ? "names no owner" : `its owner ${r.owner} is not discoverable`}`,
        );
      await this.#changed(left);
    }
  }

  #changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, Math.min(ms, 50));
      const off = this.#route.onChange(done);
      function done(): void {
        clearTimeout(t);
        off();
        resolve();
      }
    });
  }

  /**
   * Another instance for a call whose shard's owner is unavailable (`why`), when the method
   * allows fallback; `skip`: instances not to use (breakers open, the owner that refused it).
   * The call is marked `shardFallback` so that instance serves it instead of redirecting it.
   */
  #fallbackOr(
    req: OutgoingRequest,
    shard: number | undefined,
    pinned: TransportName | undefined,
    skip: ((t: Target) => boolean) | undefined,
    why: string,
  ): Target {
    const method = req.method;
    if (!this.#allows(method)) {
      throw shard === undefined
        ? new FanError(Code.INVALID_ARGUMENT, `cannot route a call to ${this.#service.name}: ${why}`)
        : shardUnavailable(this.#service.name, shard, why);
    }
    req.headers.shardFallback = 1;
    if (skip === undefined) return this.#route.pick(undefined, pinned, method);
    const t = this.#route.pickWhere(undefined, pinned, skip, method);
    if (t !== undefined) return t;
    const all = `${why}, and no other instance takes it (breakers open or none left)`;
    throw shard === undefined
      ? new FanError(Code.UNAVAILABLE, `no instance of ${this.#service.name} takes the call: ${all}`)
      : shardUnavailable(this.#service.name, shard, all);
  }
}

/**
 * An UNAVAILABLE the owner's handler answered with — an IDL error (a generated class), or one
 * relayed from the handler's own calls — and not the owner being out of reach: it reaches the
 * caller as it is, class and fields kept, rather than reworded as the shard being unavailable.
 */
function answered(e: FanError): boolean {
  return (
    // A generated error class names itself; by name, not class, as two copies of the runtime
    // loaded side by side have two FanError classes.
    e.name !== "FanError" ||
    e.relayedFrom !== undefined ||
    typeof (e.details as { error?: unknown } | undefined)?.error === "string"
  );
}
