/**
 * `client.states.x.watchAll()` of a sharded state: one view per shard, watched together. Each
 * view follows its own shard (its owner, epoch and resyncs); the set reports each change with
 * its shard, the value of every shard by number, and one status: `live` once every shard is,
 * else the furthest from it (`owner-absent` before `resyncing` before `connecting`), with the
 * reasons of the shards that are not live.
 */
import type { ShardStateChange, ShardedStateSet, ShardedStateView, StateStatus } from "../descriptor.js";
import { Code, FanError } from "../errors.js";
import { changes } from "./changes.js";

/** Worst first: the status the set shows when its shards disagree. */
const RANK: Record<StateStatus, number> = { closed: 0, "owner-absent": 1, resyncing: 2, connecting: 3, live: 4 };

export class ShardSet<T> implements ShardedStateSet<T> {
  readonly views: readonly ShardedStateView<T>[];
  readonly #label: string;
  #closed = false;

  constructor(label: string, views: readonly ShardedStateView<T>[]) {
    this.#label = label;
    this.views = views;
  }

  get current(): readonly (T | undefined)[] {
    return this.views.map((v) => v.current);
  }

  get status(): StateStatus {
    if (this.#closed) return "closed";
    let worst: StateStatus = "live";
    for (const v of this.views) if (RANK[v.status] < RANK[worst]) worst = v.status;
    return worst;
  }

  get reasons(): ReadonlyMap<number, string> {
    const out = new Map<number, string>();
    for (const v of this.views) if (v.status !== "live") out.set(v.shard, v.reason ?? v.status);
    return out;
  }

  subscribe(fn: (change: ShardStateChange<T>) => void): () => void {
    const offs = this.views.map((v) => v.subscribe((c) => fn({ ...c, shard: v.shard })));
    return () => {
      for (const off of offs) off();
    };
  }

  onStatus(fn: (status: StateStatus, reasons: ReadonlyMap<number, string>) => void): () => void {
    let last = this.status;
    const offs = this.views.map((v) =>
      v.onStatus(() => {
        const now = this.status;
        if (now === last) return;
        last = now;
        fn(now, this.reasons);
      }),
    );
    return () => {
      for (const off of offs) off();
    };
  }

  ready(timeoutMs = 10_000): Promise<(T | undefined)[]> {
    const done = (): (T | undefined)[] | undefined => (this.status === "live" ? [...this.current] : undefined);
    const now = done();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(t);
        off();
      };
      const off = this.onStatus((status) => {
        if (status === "closed") {
          finish();
          reject(new FanError(Code.CANCELLED, `the watch of every shard of ${this.#label} was closed`));
          return;
        }
        const got = done();
        if (got === undefined) return;
        finish();
        resolve(got);
      });
      const t = setTimeout(() => {
        off();
        const waiting = [...this.reasons].map(([s, r]) => `shard ${s}: ${r}`).join("; ");
        reject(
          new FanError(Code.UNAVAILABLE, `${this.#label}: not every shard is live after ${timeoutMs} ms (${waiting})`),
        );
      }, timeoutMs);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.views.map((v) => v.close()));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ShardStateChange<T>> {
    yield* changes<ShardStateChange<T>>(
      (push, wake) => {
        const off = this.subscribe(push);
        const offS = this.views.map((v) => v.onStatus(wake));
        return () => {
          off();
          for (const o of offS) o();
        };
      },
      // What each shard already holds, as a snapshot change of that shard.
      () =>
        this.views.flatMap((v) =>
          v.current !== undefined && v.status === "live"
            ? [
                {
                  value: v.current,
                  patch: undefined,
                  epoch: v.epoch,
                  seq: v.seq,
                  cause: "snapshot" as const,
                  shard: v.shard,
                },
              ]
            : [],
        ),
      () => this.#closed,
    );
  }
}
