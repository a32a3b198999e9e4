/**
 * The local hub: the in-process "broker" the local transport talks through. It holds the
 * served endpoints (calls), one push queue per service (consumed by every local instance of
 * it; a `@shard` push goes to the instance it was sent to, its shard's owner) and one topic
 * per event (one delivery per subscribing group, or per instance for broadcast). Apps that
 * share discovery share a hub, so they can reach each other in-process; apps that do not,
 * cannot.
 */
import type { Logger } from "pino";
import { Code, FanError } from "../../errors.js";
import { shortId } from "../../ids.js";
import { redirectOf } from "../../call/shards.js";
import type { Envelope, EventDelivery, EventSubscription, Inbound } from "../transport.js";
import { deliver, type RedeliveryOptions } from "./delivery.js";
import { type DeliveryLimits, limitOf } from "../push-ends.js";
import { DeliveryWatch, type Tracked } from "./watch.js";

/** A served instance bound in the hub. */
export interface Bound {
  readonly service: string;
  readonly instanceId: string;
  readonly inbound: Inbound;
  /** Its service's pushes whose `@retry(n)` allows fewer attempts than the transport's (push-ends.ts). */
  readonly limits?: DeliveryLimits;
}

/**
 * One subscriber. A closing one takes no new events while its group has an open member, and
 * its close waits (bounded) until every delivery it holds has reached its handler: an event
 * accepted before a stop is not dropped, and the App's drain then waits for the handlers, as
 * for calls. A handler that unsubscribes its own subscription is not waited for by it.
 */
class Member {
  closing = false;
  /** Deliveries accepted for this member and not settled yet. */
  #held = 0;
  /** Those of them in its handler now. */
  #running = 0;
  #idle: Array<() => void> = [];

  constructor(
    readonly sub: EventSubscription,
    readonly deliver: EventDelivery,
  ) {}

  hold(): void {
    this.#held++;
  }

  release(): void {
    this.#held--;
    this.#check();
  }

  /** Hands a held delivery to the handler, counted as running until its promise settles. */
  run(e: Envelope): Promise<void> {
    this.#running++;
    this.#check();
    const left = (): void => {
      this.#running--;
      this.#check();
    };
    const p = this.deliver(e);
    p.then(left, left);
    return p;
  }

  /** Resolves once every delivery it holds is in its handler (or none is held), or after `ms`. */
  idle(ms: number): Promise<void> {
    if (this.#held === this.#running || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  #check(): void {
    if (this.#held === this.#running) for (const f of this.#idle.splice(0)) f();
  }
}

/** A subscription group: its members take turns (one delivery per event), or all get it (broadcast). */
interface Group {
  readonly members: Member[];
  cursor: number;
}

/** The next open member of `g` in turn; else `prev` while it is still there (draining); else any member still there. */
function nextIn(g: Group, prev?: Member): Member | undefined {
  const n = g.members.length;
  for (let i = 0; i < n; i++) {
    const m = g.members[g.cursor++ % n] as Member;
    if (!m.closing) return m;
  }
  if (prev !== undefined && g.members.includes(prev)) return prev;
  return g.members[0];
}

/** Removes a subscriber after waiting up to `drainMs` for the deliveries it holds to reach its handler (0: at once). */
export type RemoveSubscriber = (drainMs: number) => Promise<void>;

/** A push waiting for an instance to consume it, and its watch's record. */
interface Waiting {
  readonly env: Envelope;
  readonly tracked: Tracked | undefined;
}

/** One service's push queue: messages wait while no instance consumes. */
class PushQueue {
  readonly consumers: Bound[] = [];
  readonly waiting: Waiting[] = [];
  #cursor = 0;

  next(): Bound | undefined {
    if (this.consumers.length === 0) return undefined;
    return this.consumers[this.#cursor++ % this.consumers.length];
  }
}

/** One event's subscribers, by group. */
class Topic {
  readonly groups = new Map<string, Group>();
}

/** The shared in-process broker of the local transport. */
export class LocalHub {
  /** Distinguishes this hub's endpoints from another hub's. */
  readonly id = shortId();
  readonly #endpoints = new Map<string, Bound>();
  readonly #queues = new Map<string, PushQueue>();
  readonly #topics = new Map<string, Topic>();
  readonly #shared = new Map<string, unknown>();
  /** Follows the deliveries under way, once asked for (`watch`). */
  #watch: DeliveryWatch | undefined;
  /** The last lookup (cleared by bind and unbind). */
  #lastEndpoint: string | undefined;
  #lastBound: Bound | undefined;

  /** Per-hub shared state of other in-process features (replicated states), made on first use. */
  shared<T>(key: string, create: () => T): T {
    let v = this.#shared.get(key) as T | undefined;
    if (v === undefined) {
      v = create();
      this.#shared.set(key, v);
    }
    return v;
  }

  /**
   * Follows every push and event delivery of this hub from now on, until it is acked, given
   * up or dropped (a test app's `settled()` waits on it); one watch per hub, made on first use.
   */
  watch(): DeliveryWatch {
    this.#watch ??= new DeliveryWatch();
    return this.#watch;
  }

  /** The endpoint of an instance in this hub. */
  endpointOf(instanceId: string): string {
    return `local://${this.id}/${instanceId}`;
  }

  /** Binds an instance: its endpoint takes calls and it consumes its service's pushes. */
  bind(b: Bound, opts: RedeliveryOptions, log: Logger): string {
    const endpoint = this.endpointOf(b.instanceId);
    if (this.#endpoints.has(endpoint))
      throw new FanError(Code.ALREADY_EXISTS, `instance ${b.instanceId} is already served`);
    this.#endpoints.set(endpoint, b);
    this.#lastEndpoint = undefined;
    const q = this.#queue(b.service);
    q.consumers.push(b);
    for (const w of q.waiting.splice(0)) this.#dispatchPush(q, w.env, opts, log, undefined, w.tracked);
    return endpoint;
  }

  /** Unbinds an instance: no new calls or pushes reach it. */
  unbind(endpoint: string): void {
    const b = this.#endpoints.get(endpoint);
    if (b === undefined) return;
    this.#endpoints.delete(endpoint);
    this.#lastEndpoint = undefined;
    this.#lastBound = undefined;
    const q = this.#queues.get(b.service);
    if (q !== undefined) q.consumers.splice(q.consumers.indexOf(b), 1);
  }

  /** The instance bound at `endpoint`. */
  lookup(endpoint: string): Bound | undefined {
    // Callers pass the same string object call after call (a route's target): an identity
    // check beats hashing and comparing the ~40-character key.
    if (endpoint === this.#lastEndpoint) return this.#lastBound;
    const b = this.#endpoints.get(endpoint);
    this.#lastEndpoint = endpoint;
    this.#lastBound = b;
    return b;
  }

  /**
   * Queues a push for the service of `endpoint`'s instance: any of its instances may take it,
   * but a `@shard` push goes to that instance, its shard's owner (as the broker transports send
   * it to the owner's own queue: owner-push.ts), since any other would redirect it.
   */
  enqueue(endpoint: string, env: Envelope, opts: RedeliveryOptions, log: Logger): void {
    const q = this.#queue(env.service);
    const at = this.#endpoints.get(endpoint);
    if (at === undefined && q.consumers.length === 0)
      throw new FanError(Code.UNAVAILABLE, `no instance of ${env.service} at ${endpoint}`);
    const owner = env.headers.shard === undefined ? undefined : at;
    const tracked = this.#watch?.begin("push", env);
    setImmediate(() => this.#dispatchPush(q, env, opts, log, owner, tracked));
  }

  /**
   * Publishes an event to every group subscribed to it. Each delivery is held by the member it
   * goes to until it settles; `settled` (when given) is called once all of them have.
   */
  publish(
    env: Envelope,
    copy: (env: Envelope) => Envelope,
    opts: RedeliveryOptions,
    log: Logger,
    settled?: () => void,
  ): void {
    const topic = this.#topics.get(topicKey(env.service, env.method));
    let open = 1;
    const done = settled === undefined ? undefined : () => void (--open === 0 && settled());
    if (topic !== undefined)
      for (const [group, g] of topic.groups) {
        if (g.members.length === 0) continue;
        if ((g.members[0] as Member).sub.broadcast) {
          for (const m of g.members) {
            if (m.closing) continue;
            open++;
            this.#dispatchEvent(copy(env), m, () => (g.members.includes(m) ? m : undefined), opts, log, done);
          }
        } else {
          open++;
          const pick = (prev: Member | undefined, first: boolean) =>
            first && prev !== undefined && g.members.includes(prev) ? prev : nextIn(g, prev);
          this.#dispatchEvent(copy(env), nextIn(g), pick, opts, log, done, group);
        }
      }
    done?.();
  }

  /** Adds a subscriber; returns its removal. */
  subscribe(sub: EventSubscription, fn: EventDelivery): RemoveSubscriber {
    const key = topicKey(sub.source.name, sub.event);
    let topic = this.#topics.get(key);
    if (topic === undefined) {
      topic = new Topic();
      this.#topics.set(key, topic);
    }
    let g = topic.groups.get(sub.group);
    if (g === undefined) {
      g = { members: [], cursor: 0 };
      topic.groups.set(sub.group, g);
    }
    const member = new Member(sub, fn);
    g.members.push(member);
    const group = g;
    const t = topic;
    return async (drainMs) => {
      member.closing = true;
      await member.idle(drainMs);
      const i = group.members.indexOf(member);
      if (i >= 0) group.members.splice(i, 1);
      if (group.members.length === 0 && t.groups.get(sub.group) === group) t.groups.delete(sub.group);
    };
  }

  #queue(service: string): PushQueue {
    let q = this.#queues.get(service);
    if (q === undefined) {
      q = new PushQueue();
      this.#queues.set(service, q);
    }
    return q;
  }

  /**
   * Delivers a push to `owner` while it is bound, else to the next consumer. A `@shard` push
   * refused with a redirect goes next to the owner the redirect names (the sender's view lagged,
   * or the shard moved since), else (not bound here) to the next consumer, not to the refuser.
   */
  #dispatchPush(
    q: PushQueue,
    env: Envelope,
    opts: RedeliveryOptions,
    log: Logger,
    owner: Bound | undefined,
    tracked: Tracked | undefined,
  ): void {
    let to = owner;
    const follow =
      env.headers.shard === undefined
        ? undefined
        : (e: unknown): void => {
            const r = redirectOf(e);
            if (r !== undefined) to = r.owner === undefined ? undefined : this.#endpoints.get(this.endpointOf(r.owner));
          };
    // Its method's @retry limit, which every instance of the service declares alike.
    const limit = limitOf(q.consumers[0]?.limits, env, opts.maxAttempts);
    deliver(
      env,
      (e) => {
        const b = to !== undefined && q.consumers.includes(to) ? to : q.next();
        const p = b?.inbound.push(e);
        if (follow !== undefined) p?.catch(follow);
        return p;
      },
      limit < opts.maxAttempts ? { ...opts, maxAttempts: limit } : opts,
      log,
      (outcome, last) => {
        if (outcome === "orphaned") {
          if (tracked !== undefined) tracked.waiting = true;
          q.waiting.push({ env: last, tracked });
        } else if (outcome === "acked" && tracked !== undefined) this.#watch?.end(tracked);
      },
      tracked,
    );
  }

  /**
   * Delivers `env` to `first` (held by it from now on) through `pick`, which may move a
   * redelivery, or a delivery whose member left, to another member of the group.
   */
  #dispatchEvent(
    env: Envelope,
    first: Member | undefined,
    pick: (prev: Member | undefined, first: boolean) => Member | undefined,
    opts: RedeliveryOptions,
    log: Logger,
    settled: (() => void) | undefined,
    group?: string,
  ): void {
    let at = first;
    at?.hold();
    const tracked = this.#watch?.begin("event", env, group ?? first?.sub.group);
    let tries = 0;
    const send = (e: Envelope): Promise<void> | undefined => {
      const m = pick(at, tries++ === 0);
      if (m !== at) {
        m?.hold();
        at?.release();
        at = m;
      }
      return m?.run(e);
    };
    setImmediate(() =>
      deliver(
        env,
        send,
        opts,
        log,
        (outcome) => {
          at?.release();
          at = undefined;
          if (outcome === "orphaned") {
            log.warn(
              { id: env.id, targetService: env.service, event: env.method, group },
              "event dropped: its subscriber left",
            );
            if (tracked !== undefined)
              this.#watch?.end(tracked, { error: new FanError(Code.UNAVAILABLE, "dropped: its subscriber left") });
          } else if (outcome === "acked" && tracked !== undefined) this.#watch?.end(tracked);
          settled?.();
        },
        tracked,
      ),
    );
  }
}

function topicKey(service: string, event: string): string {
  return `${service}\u0000${event}`;
}

const byObject = new WeakMap<object, Map<string, LocalHub>>();
const byName = new Map<string, LocalHub>();

/**
 * The hub of a discovery domain: apps given the same key (the same Registry object, or the
 * same discovery address) and cluster share one hub.
 */
export function localHub(key: object | string, cluster: string): LocalHub {
  if (typeof key === "string") {
    const name = `${key}\u0000${cluster}`;
    let hub = byName.get(name);
    if (hub === undefined) {
      hub = new LocalHub();
      byName.set(name, hub);
    }
    return hub;
  }
  let m = byObject.get(key);
  if (m === undefined) {
    m = new Map();
    byObject.set(key, m);
  }
  let hub = m.get(cluster);
  if (hub === undefined) {
    hub = new LocalHub();
    m.set(cluster, hub);
  }
  return hub;
}
