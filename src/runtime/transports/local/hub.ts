/**
 * The local hub: the in-process "broker" the local transport talks through. It holds the
 * served endpoints (calls), one push queue per service (consumed by every local instance of
 * it) and one topic per event (one delivery per subscribing group, or per instance for
 * broadcast). Apps that share discovery share a hub, so they can reach each other in-process;
 * apps that do not, cannot.
 */
import type { Logger } from "pino";
import { Code, FanError } from "../../errors.js";
import { shortId } from "../../ids.js";
import type { Envelope, EventDelivery, EventSubscription, Inbound } from "../transport.js";
import { deliver, type RedeliveryOptions } from "./delivery.js";

/** A served instance bound in the hub. */
export interface Bound {
  readonly service: string;
  readonly instanceId: string;
  readonly inbound: Inbound;
}

interface Member {
  readonly sub: EventSubscription;
  readonly deliver: EventDelivery;
}

/** One service's push queue: messages wait while no instance consumes. */
class PushQueue {
  readonly consumers: Bound[] = [];
  readonly waiting: Envelope[] = [];
  #cursor = 0;

  next(): Bound | undefined {
    if (this.consumers.length === 0) return undefined;
    return this.consumers[this.#cursor++ % this.consumers.length];
  }
}

/** One event's subscribers, by group. */
class Topic {
  readonly groups = new Map<string, { members: Member[]; cursor: number }>();
}

/** The shared in-process broker of the local transport. */
export class LocalHub {
  /** Distinguishes this hub's endpoints from another hub's. */
  readonly id = shortId();
  readonly #endpoints = new Map<string, Bound>();
  readonly #queues = new Map<string, PushQueue>();
  readonly #topics = new Map<string, Topic>();
  readonly #shared = new Map<string, unknown>();
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
    for (const env of q.waiting.splice(0)) this.#dispatchPush(q, env, opts, log);
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

  /** Queues a push for the service of `endpoint`'s instance (any of its instances may take it). */
  enqueue(endpoint: string, env: Envelope, opts: RedeliveryOptions, log: Logger): void {
    const q = this.#queue(env.service);
    if (!this.#endpoints.has(endpoint) && q.consumers.length === 0)
      throw new FanError(Code.UNAVAILABLE, `no instance of ${env.service} at ${endpoint}`);
    setImmediate(() => this.#dispatchPush(q, env, opts, log));
  }

  /** Publishes an event to every group subscribed to it. */
  publish(env: Envelope, copy: (env: Envelope) => Envelope, opts: RedeliveryOptions, log: Logger): void {
    const topic = this.#topics.get(topicKey(env.service, env.method));
    if (topic === undefined) return;
    for (const [group, g] of topic.groups) {
      if (g.members.length === 0) continue;
      if ((g.members[0] as Member).sub.broadcast) {
        for (const m of g.members)
          this.#dispatchEvent(copy(env), () => (g.members.includes(m) ? m : undefined), opts, log);
      } else {
        this.#dispatchEvent(
          copy(env),
          () => (g.members.length === 0 ? undefined : g.members[g.cursor++ % g.members.length]),
          opts,
          log,
          group,
        );
      }
    }
  }

  /** Adds a subscriber; returns its removal. */
  subscribe(sub: EventSubscription, fn: EventDelivery): () => void {
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
    const member: Member = { sub, deliver: fn };
    g.members.push(member);
    const group = g;
    const t = topic;
    return () => {
      const i = group.members.indexOf(member);
      if (i >= 0) group.members.splice(i, 1);
      if (group.members.length === 0) t.groups.delete(sub.group);
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

  #dispatchPush(q: PushQueue, env: Envelope, opts: RedeliveryOptions, log: Logger): void {
    deliver(
      env,
      (e) => q.next()?.inbound.push(e),
      opts,
      log,
      (outcome, last) => {
        if (outcome === "orphaned") q.waiting.push(last);
      },
    );
  }

  #dispatchEvent(
    env: Envelope,
    pick: () => Member | undefined,
    opts: RedeliveryOptions,
    log: Logger,
    group?: string,
  ): void {
    setImmediate(() =>
      deliver(
        env,
        (e) => pick()?.deliver(e),
        opts,
        log,
        (outcome) => {
          if (outcome === "orphaned")
            log.warn(
              { id: env.id, targetService: env.service, event: env.method, group },
              "event dropped: its subscriber left",
            );
        },
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
