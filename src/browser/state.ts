/**
 * `client.states.<name>` in a browser: the gateway's `/_fan/states/<service>/<state>` stream
 * (the owner's snapshot, then the value after every change) read with EventSource. `get` takes
 * the first value and closes; `watch(fn)` calls `fn` with each value; `watch()` is a small
 * `StateView` (no epochs or sequence numbers from the owner: `seq` counts values received).
 * A sharded state (`@shard`) takes `{ shard }` or `{ key }` as on Node and streams that one
 * shard (`?shard=N`; the key is hashed here, as the runtime hashes it).
 */
import type { Codec } from "../runtime/codec/index.js";
import type {
  CallOptions,
  ShardedStateHandle,
  ShardedStateView,
  ShardSelector,
  StateChange,
  StateHandle,
  StateStatus,
  StateView,
  Subscription,
} from "../runtime/descriptor.js";
import { Code, FanError } from "../runtime/errors.js";
import { shardOfKeyValue } from "../runtime/shard-key.js";
import { openStream } from "./stream.js";

export class BrowserState implements StateHandle<unknown> {
  constructor(
    private readonly url: string,
    private readonly codec: Codec<unknown>,
    private readonly name: string,
  ) {}

  async get(opts?: CallOptions): Promise<unknown> {
    const view = this.watch();
    try {
      return await view.ready(opts?.timeout ?? 10_000);
    } finally {
      await view.close();
    }
  }

  watch(): StateView<unknown>;
  watch(fn: (value: unknown) => void): Promise<Subscription>;
  watch(fn?: (value: unknown) => void): StateView<unknown> | Promise<Subscription> {
    const view = new View(this.url, this.codec, this.name);
    if (fn === undefined) return view;
    view.subscribe((c) => fn(c.value));
    return view.opened.then(() => ({ unsubscribe: () => view.close() }));
  }
}

/** `client.states.<name>` of a sharded state: one shard's stream per watch. */
export class BrowserShardedState implements ShardedStateHandle<unknown> {
  constructor(
    private readonly url: string,
    private readonly codec: Codec<unknown>,
    private readonly name: string,
    readonly shards: number,
  ) {}

  shardOf(key: unknown): number {
    return shardOfKeyValue(key, this.shards);
  }

  async get(where: ShardSelector, opts?: CallOptions): Promise<unknown> {
    const view = this.watch(where);
    try {
      return await view.ready(opts?.timeout ?? 10_000);
    } finally {
      await view.close();
    }
  }

  watch(where: ShardSelector): ShardedStateView<unknown>;
  watch(where: ShardSelector, fn: (value: unknown) => void): Promise<Subscription>;
  watch(where: ShardSelector, fn?: (value: unknown) => void): ShardedStateView<unknown> | Promise<Subscription> {
    let shard: number;
    try {
      shard = this.#shard(where);
    } catch (e) {
      if (fn === undefined) throw e;
      return Promise.reject(e);
    }
    const view = new View(`${this.url}?shard=${shard}`, this.codec, this.name, shard);
    if (fn === undefined) return view;
    view.subscribe((c) => fn(c.value));
    return view.opened.then(() => ({ unsubscribe: () => view.close() }));
  }

  /**
   * Every shard at once is not served to pages yet: watch the shards needed, one view each.
   * (Declared so the handle stays a `ShardedStateHandle` where the runtime has `watchAll`.)
   */
  watchAll(): never {
    throw new FanError(
      Code.UNIMPLEMENTED,
      `${this.name}: watchAll() is not available in fan/browser; watch({ shard }) each shard the page needs`,
    );
  }

  /** As the runtime's `watch({ shard } | { key })` checks it. */
  #shard(where: unknown): number {
    const w = (typeof where === "object" && where !== null ? where : {}) as { shard?: unknown; key?: unknown };
    if (w.shard !== undefined) {
      const n = w.shard;
      if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n >= this.shards)
        throw new FanError(Code.INVALID_ARGUMENT, `${this.name} has shards 0..${this.shards - 1}, not ${String(n)}`);
      return n;
    }
    if (w.key !== undefined) return this.shardOf(w.key);
    throw new FanError(
      Code.INVALID_ARGUMENT,
      `${this.name} is sharded (@shard): name the shard, watch({ shard }) or watch({ key })`,
    );
  }
}

class View implements ShardedStateView<unknown> {
  current: unknown = undefined;
  readonly epoch = 0;
  seq = 0;
  status: StateStatus = "connecting";
  reason: string | undefined = undefined;
  readonly opened: Promise<void>;
  readonly #changes = new Set<(c: StateChange<unknown>) => void>();
  readonly #statuses = new Set<(s: StateStatus, r: string | undefined) => void>();
  #close: (() => void) | undefined;

  /** The shard streamed (a sharded state's view), else -1 (unused). */
  readonly shard: number;

  constructor(url: string, codec: Codec<unknown>, name: string, shard = -1) {
    this.shard = shard;
    this.opened = openStream(
      url,
      (data) => {
        let value: unknown;
        try {
          value = codec.decode(JSON.parse(data), name);
        } catch (e) {
          console.warn(`fan: dropped a value of state ${name} that does not match the IDL: ${(e as Error).message}`);
          return;
        }
        this.current = value;
        this.seq++;
        const change: StateChange<unknown> = {
          value,
          patch: undefined,
          epoch: 0,
          seq: this.seq,
          cause: this.seq === 1 ? "snapshot" : "full",
        };
        this.#set("live", undefined);
        for (const fn of this.#changes) fn(change);
      },
      {
        onStatus: (s) =>
          s === "reconnecting"
            ? this.#set("resyncing", "the stream dropped; reconnecting")
            : s === "closed"
              ? this.#set("closed", "the gateway closed the stream")
              : undefined,
      },
    ).then(
      (s) => {
        this.#close = () => s.close();
        if (this.status === "closed") s.close();
      },
      (e: unknown) => {
        this.#set("closed", (e as Error).message);
        throw e;
      },
    );
    this.opened.catch(() => undefined);
  }

  #set(status: StateStatus, reason: string | undefined): void {
    if (status === this.status && reason === this.reason) return;
    this.status = status;
    this.reason = reason;
    for (const fn of this.#statuses) fn(status, reason);
  }

  subscribe(fn: (change: StateChange<unknown>) => void): () => void {
    this.#changes.add(fn);
    return () => this.#changes.delete(fn);
  }

  onStatus(fn: (status: StateStatus, reason: string | undefined) => void): () => void {
    this.#statuses.add(fn);
    return () => this.#statuses.delete(fn);
  }

  ready(timeoutMs = 10_000): Promise<unknown> {
    if (this.seq > 0) return Promise.resolve(this.current);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(
          new FanError(
            Code.DEADLINE_EXCEEDED,
            `no value of the state within ${timeoutMs} ms (${this.reason ?? this.status})`,
          ),
        );
      }, timeoutMs);
      const off = this.subscribe((c) => {
        clearTimeout(timer);
        off();
        resolve(c.value);
      });
      this.opened.catch((e: unknown) => {
        clearTimeout(timer);
        off();
        reject(e);
      });
    });
  }

  async close(): Promise<void> {
    this.#close?.();
    this.#set("closed", undefined);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StateChange<unknown>> {
    const queue: StateChange<unknown>[] = [];
    let wake: (() => void) | undefined;
    const off = this.subscribe((c) => {
      queue.push(c);
      wake?.();
    });
    const offStatus = this.onStatus(() => wake?.());
    try {
      while (this.status !== "closed") {
        const next = queue.shift();
        if (next !== undefined) yield next;
        else await new Promise<void>((r) => (wake = r));
      }
    } finally {
      off();
      offStatus();
    }
  }
}
