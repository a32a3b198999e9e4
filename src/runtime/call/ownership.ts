/**
 * The serving side of sharding: which shards one served instance owns, recomputed from the
 * discovery cache of its own service whenever an instance joins or leaves (the same
 * `assignShards` every client runs), the guard that answers a call for a shard it does not
 * own with a redirect naming the owner, and the handler's `onShards` hook, called once after
 * registration and on every change.
 */
import semver from "semver";
import type { Logger } from "pino";
import type { LifecycleContext, ShardChange, ShardHooks } from "./context.js";
import type { ServiceDescriptor } from "../descriptor.js";
import type { Directory, InstanceInfo } from "../discovery/types.js";
import { Code, type WireError } from "../errors.js";
import { assignShards, ownedBy, shardOf, type Redirect } from "./shards.js";

/** True when a service has `@shard` methods or states (only those take part in ownership). */
export function isSharded(d: ServiceDescriptor): boolean {
  return (
    Object.values(d.methods).some((m) => m.shard !== undefined) ||
    Object.values(d.states).some((s) => s.sharded === true)
  );
}

/** What the owners of sharded states follow (states/owner.ts). */
export interface ShardOwnership {
  readonly instanceId: string;
  /** The shards owned now. */
  owned(): readonly number[];
  /** The owner of `shard` in this instance's view (undefined before the first view, or none). */
  ownerOf(shard: number): string | undefined;
  /** Calls `fn` on every change of the owned shards, after `onShards`; returns its removal. */
  onChange(fn: (change: ShardChange) => void | Promise<void>): () => void;
}

/** Ownership of one served instance. */
export class Ownership implements ShardOwnership {
  readonly #d: ServiceDescriptor;
  readonly #instanceId: string;
  readonly #pinned: readonly number[];
  readonly #log: Logger;
  readonly #handler: ShardHooks;
  readonly #context: () => LifecycleContext;
  #owners: (string | undefined)[] | undefined;
  #owned: readonly number[] = [];
  #off: (() => void) | undefined;
  #notified: Promise<void> = Promise.resolve();

  constructor(
    d: ServiceDescriptor,
    instanceId: string,
    pinned: readonly number[],
    handler: object,
    context: () => LifecycleContext,
    log: Logger,
  ) {
    this.#d = d;
    this.#instanceId = instanceId;
    this.#pinned = pinned;
    this.#handler = handler as ShardHooks;
    this.#context = context;
    this.#log = log;
  }

  /** The shards owned now (none before the first discovery view). */
  owned(): readonly number[] {
    return this.#owned;
  }

  get instanceId(): string {
    return this.#instanceId;
  }

  ownerOf(shard: number): string | undefined {
    return this.#owners?.[shard];
  }

  readonly #listeners = new Set<(change: ShardChange) => void | Promise<void>>();

  onChange(fn: (change: ShardChange) => void | Promise<void>): () => void {
    this.#listeners.add(fn);
    return () => void this.#listeners.delete(fn);
  }

  /** Follows the service's instances; resolves once the first `onShards` ran. */
  async start(directory: Directory): Promise<void> {
    const set = await directory.watch(this.#d.name);
    const update = (): void => this.#update(set.instances());
    this.#off = set.onChange(update);
    update();
    await this.#notified;
  }

  /** Stops following (the shared instance cache stays open for clients). */
  stop(): void {
    this.#off?.();
    this.#off = undefined;
    this.#owners = undefined;
  }

  /** The redirect of a call whose shard another instance owns; undefined when this one owns it. */
  readonly guard = (paths: readonly (readonly string[])[], input: unknown): WireError | undefined => {
    const owners = this.#owners;
    if (owners === undefined) return undefined;
    const shard = shardOf(input, paths, this.#d.shards);
    if (shard === undefined) return undefined;
    const owner = owners[shard];
    if (owner === this.#instanceId) return undefined;
    const details: Redirect = {
      redirect: true,
      shard,
      from: this.#instanceId,
      ...(owner === undefined ? {} : { owner }),
    };
    return {
      code: Code.UNAVAILABLE,
      message: `${this.#instanceId} does not own shard ${shard} of ${this.#d.name}${owner === undefined ? "" : `; ${owner} does`}`,
      details,
    };
  };

  #update(all: readonly InstanceInfo[]): void {
    const major = semver.major(this.#d.version);
    const domain: { instanceId: string; shards: readonly number[] }[] = all.filter(
      (i) => semver.major(i.version) === major,
    );
    // Before our own registration is visible here we still count ourselves, as clients will.
    if (!domain.some((i) => i.instanceId === this.#instanceId))
      domain.push({ instanceId: this.#instanceId, shards: this.#pinned });
    this.#owners = assignShards(domain, this.#d.shards);
    const owned = ownedBy(this.#owners, this.#instanceId);
    const before = this.#owned;
    if (sameList(before, owned) && this.#notifiedOnce) return;
    this.#owned = owned;
    const change: ShardChange = {
      owned,
      gained: owned.filter((s) => !before.includes(s) || !this.#notifiedOnce),
      lost: this.#notifiedOnce ? before.filter((s) => !owned.includes(s)) : [],
    };
    this.#notifiedOnce = true;
    this.#log.info({ owned: owned.length, gained: change.gained.length, lost: change.lost.length }, "shards changed");
    this.#notified = this.#notified.then(() => this.#notify(change));
  }

  #notifiedOnce = false;

  async #notify(change: ShardChange): Promise<void> {
    const fn = this.#handler.onShards;
    if (typeof fn === "function") {
      try {
        await fn.call(this.#handler, change, this.#context());
      } catch (e) {
        this.#log.error({ err: e }, "onShards hook failed");
      }
    }
    for (const l of [...this.#listeners]) {
      try {
        await l(change);
      } catch (e) {
        this.#log.error({ err: e }, "following a change of the owned shards failed");
      }
    }
  }
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
