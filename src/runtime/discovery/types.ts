/**
 * Discovery and config as the App sees them. Implemented over a `Registry` (memory or etcd)
 * by the files beside this one; the App codes only against these interfaces.
 */
import type { TransportName } from "../descriptor.js";

/** What an instance advertises under `/fan/{cluster}/services/{service}/{instanceId}`. */
export interface InstanceInfo {
  readonly service: string;
  readonly instanceId: string;
  readonly version: string;
  /** Endpoint per transport: `{ http: "http://127.0.0.1:8080", amqp: "amqp://127.0.0.1:5672" }`. */
  readonly endpoints: Partial<Record<TransportName, string>>;
  /**
   * The transport this instance's App publishes the service's events and state updates on (its
   * first event transport the service allows, `app/infra.ts`), which need not be one it serves
   * on. Absent in records of older versions and when the App carries them only in-process; readers
   * then fall back to the first event transport in `endpoints` (`cli/events.ts`).
   */
  readonly events?: TransportName;
  /**
   * Shards pinned to this instance (`serve(..., { shards })`); empty = it takes a share of the
   * unpinned shards by rendezvous hashing (`call/shards.ts`).
   */
  readonly shards: readonly number[];
  /** The service's `@shards(n)`, advertised by instances of services with `@shard` methods (`fanc ls`). */
  readonly shardCount?: number;
  /**
   * Sharded services: the shards this instance serves now, those it owns and those it lost but
   * has not released yet (calls admitted for them still run). An instance that gains a shard
   * waits until no other record serves it (call/ownership.ts). Absent in records of older
   * versions (nothing is waited for).
   */
  readonly serving?: readonly number[];
  /**
   * While it releases shards: by when it means to have released them (epoch ms): the latest
   * deadline of the calls it still runs for them, at most `maxReleaseMs` past the move; on a
   * graceful stop, the end of its drain (`stopGraceMs`).
   */
  readonly releasingUntil?: number;
  /**
   * A graceful stop began: the record stays, serving the shards it still releases, until its
   * calls drained and its states saved, then goes. Routing counts it as gone
   * (`InstanceSet.instances` leaves it out); the instances taking its shards wait for it as for
   * any release (call/ownership.ts).
   */
  readonly stopping?: true;
  readonly zone?: string;
  /** Epoch ms. */
  readonly startedAt: number;
  /** In-flight calls at the last update (for power-of-two-choices across processes). */
  readonly load: number;
  /** The App (process) that serves it: prefer-local calls in-process when it is this App. */
  readonly appId: string;
}

/** What a sharded instance's record says it serves (`InstanceInfo.serving`). */
export interface ServingInfo {
  readonly serving: readonly number[];
  readonly releasingUntil?: number;
  readonly stopping?: true;
}

/** A live registration; kept alive by a lease until `deregister`. */
export interface Registration {
  readonly info: InstanceInfo;
  /** `releasingUntil` absent from a patch that has `serving`: none any more. */
  update(
    patch: Partial<Pick<InstanceInfo, "load" | "shards" | "endpoints" | "serving" | "releasingUntil" | "stopping">>,
  ): Promise<void>;
  deregister(): Promise<void>;
}

/** The client-side cache of one service's instances, kept current by a watch. */
export interface InstanceSet {
  /** Current instances (no I/O), without those stopping (`InstanceInfo.stopping`): nothing is routed to them. */
  instances(): readonly InstanceInfo[];
  /** Every record, those of stopping instances too (the hand-over waits for their release). */
  records?(): readonly InstanceInfo[];
  /** Called after every change. */
  onChange(fn: () => void): () => void;
  close(): Promise<void>;
}

export type StrategyName = "round-robin" | "random" | "p2c" | "prefer-local" | "shard";

export interface ResolveOptions {
  /** A semver range; instances whose version does not satisfy it are skipped. */
  readonly range?: string;
  readonly strategy?: StrategyName;
  /** Only instances that advertise this transport. */
  readonly transport?: TransportName;
  /** Shard key, for the shard strategy. */
  readonly shardKey?: string;
}

export interface Directory {
  register(
    info: Omit<InstanceInfo, "startedAt" | "load"> & Partial<Pick<InstanceInfo, "startedAt" | "load">>,
  ): Promise<Registration>;
  /** Watch a service's instances (one shared cache per service per Directory). */
  watch(service: string): Promise<InstanceSet>;
  /**
   * Picks an instance from the cache; throws `FanError(UNAVAILABLE)` naming the range asked
   * for and the versions available when none fits.
   */
  resolve(service: string, opts?: ResolveOptions): Promise<InstanceInfo>;
  /** Resolves when an instance satisfying `range` is discoverable, or rejects after `timeoutMs`. */
  waitFor(service: string, range: string, timeoutMs: number, signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** A source of one service's config: a plain object, a YAML file or etcd. */
export interface ConfigSource {
  /** The raw (wire-form) config object for a service; `{}` when none. */
  get(service: string): Promise<Record<string, unknown>>;
  /** Replace or merge keys (etcd and YAML write through). */
  update(service: string, patch: Record<string, unknown>): Promise<void>;
  /** Called with the whole new raw config after each change. */
  watch(service: string, fn: (raw: Record<string, unknown>) => void): Promise<() => Promise<void>>;
  /**
   * When the source holds nothing for `service`, what it holds instead, for a refusal to quote
   * (`settings.yml has no section shop.catalog.Catalog; its sections: Catalog ...`); undefined
   * when it has the service, or cannot tell.
   */
  absence?(service: string): Promise<string | undefined>;
  /**
   * `absence`, only when the source holds a section likely meant for `service` (its short name
   * in any case, a near miss): a service whose keys all have defaults starts on them, and warns.
   */
  misplaced?(service: string): Promise<string | undefined>;
  close(): Promise<void>;
}
