/**
 * `client.states.<name>` in a browser: the gateway's `/_fan/states/<service>/<state>` stream
 * (the owner's snapshot, then the value after every change) read with EventSource. `get` takes
 * the first value and closes; `watch(fn)` calls `fn` with each value; `watch()` is a small
 * `StateView` (no epochs or sequence numbers from the owner: `seq` counts values received).
 * A sharded state (`@shard`) takes `{ shard }` or `{ key }` as on Node and streams that one
 * shard (`?shard=N`; the key is hashed here, as the runtime hashes it). `watchAll()` reads every
 * shard from one stream (`?shard=all`, each line naming its shard and carrying its value or its
 * status) into one view per shard, gathered in the runtime's `ShardedStateSet`, so the set's
 * status and reasons are the Node client's.
 */
import type { Codec } from "../runtime/codec/index.js";
import type {
  CallOptions,
  ShardedStateHandle,
  ShardedStateSet,
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
import { ShardSet } from "../runtime/states/shard-set.js";
import { type OpenStream, openStream } from "./stream.js";

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
    const view = View.streamed(this.url, this.codec, this.name);
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
    const view = View.streamed(`${this.url}?shard=${shard}`, this.codec, this.name, shard);
    if (fn === undefined) return view;
    view.subscribe((c) => fn(c.value));
    return view.opened.then(() => ({ unsubscribe: () => view.close() }));
  }

  /**
   * Every shard on one stream (`?shard=all`): a view per shard, fed by that stream's lines for
   * its shard. While the stream is down every shard is `resyncing`; when it comes back the
   * gateway sends each shard's status and value again.
   */
  watchAll(): ShardedStateSet<unknown> {
    const views = Array.from({ length: this.shards }, (_, shard) => new View(this.codec, this.name, shard));
    const opened = openStream(
      `${this.url}?shard=all`,
      (data) => {
        let line: { shard?: unknown; value?: unknown; status?: unknown; reason?: unknown };
        try {
          line = JSON.parse(data) as typeof line;
        } catch (e) {
          console.warn(`fan: dropped a line of state ${this.name} that is not JSON: ${(e as Error).message}`);
          return;
        }
        const view = typeof line.shard === "number" ? views[line.shard] : undefined;
        if (view === undefined) {
          console.warn(`fan: dropped a line of state ${this.name} naming no shard 0..${this.shards - 1}: ${data}`);
          return;
        }
        if ("value" in line) view.receive(line.value);
        else if (typeof line.status === "string" && line.status in RANKED)
          view.report(line.status as StateStatus, typeof line.reason === "string" ? line.reason : undefined);
        else console.warn(`fan: dropped a line of state ${this.name} with neither a value nor a status: ${data}`);
      },
      {
        onStatus: (s) => {
          for (const v of views)
            if (s === "reconnecting") v.report("resyncing", "the stream dropped; reconnecting");
            else if (s === "closed") v.report("closed", "the gateway closed the stream");
        },
      },
    );
    // The stream closes with the last of its views (ShardedStateSet.close closes them all).
    let open = views.length;
    for (const v of views) v.follow(opened, (s) => --open === 0 && s.close());
    return new ShardSet(this.name, views);
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

/** The statuses a gateway line may carry. */
const RANKED: Record<StateStatus, true> = {
  connecting: true,
  live: true,
  resyncing: true,
  "owner-absent": true,
  closed: true,
};

class View implements ShardedStateView<unknown> {
  current: unknown = undefined;
  readonly epoch = 0;
  seq = 0;
  status: StateStatus = "connecting";
  reason: string | undefined = undefined;
  opened: Promise<void> = Promise.resolve();
  readonly #changes = new Set<(c: StateChange<unknown>) => void>();
  readonly #statuses = new Set<(s: StateStatus, r: string | undefined) => void>();
  #close: (() => void) | undefined;
  /** Set by `close()`: the stream is let go once (now, or when it opens). */
  #released = false;

  /** The shard streamed (a sharded state's view), else -1 (unused). */
  readonly shard: number;

  constructor(
    private readonly codec: Codec<unknown>,
    private readonly name: string,
    shard = -1,
  ) {
    this.shard = shard;
  }

  /** A view on its own stream (`url`): live with its first value. */
  static streamed(url: string, codec: Codec<unknown>, name: string, shard = -1): View {
    const view = new View(codec, name, shard);
    const opened = openStream(
      url,
      (data) => {
        let json: unknown;
        try {
          json = JSON.parse(data);
        } catch (e) {
          console.warn(`fan: dropped a value of state ${name} that is not JSON: ${(e as Error).message}`);
          return;
        }
        view.receive(json, true);
      },
      {
        onStatus: (s) =>
          s === "reconnecting"
            ? view.#set("resyncing", "the stream dropped; reconnecting")
            : s === "closed"
              ? view.#set("closed", "the gateway closed the stream")
              : undefined,
      },
    );
    view.follow(opened, (s) => s.close());
    return view;
  }

  /** Takes its opening from `stream` (and, when the view owns it, how to close it). */
  follow(stream: Promise<OpenStream>, own?: (s: OpenStream) => void): void {
    this.opened = stream.then(
      (s) => {
        if (own === undefined) return;
        this.#close = () => own(s);
        if (this.#released) own(s);
      },
      (e: unknown) => {
        this.#set("closed", (e as Error).message);
        throw e;
      },
    );
    this.opened.catch(() => undefined);
  }

  /** A value from the stream (wire JSON): decoded and reported (`live`: the view is live with it). */
  receive(json: unknown, live = false): void {
    if (this.status === "closed") return;
    let value: unknown;
    try {
      value = this.codec.decode(json, this.name);
    } catch (e) {
      console.warn(`fan: dropped a value of state ${this.name} that does not match the IDL: ${(e as Error).message}`);
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
    if (live) this.#set("live", undefined);
    for (const fn of this.#changes) fn(change);
  }

  /** A status the stream reports for this view's shard (a closed view keeps `closed`). */
  report(status: StateStatus, reason: string | undefined): void {
    if (this.status !== "closed") this.#set(status, reason);
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
    if (!this.#released) this.#close?.();
    this.#released = true;
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
