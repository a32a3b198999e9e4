/**
 * The optional snapshot store of replicated states in Redis (`createApp({ states: { persist:
 * { redis } } })`): one key per state holding the latest `{ e, s, v }`, written at most once per
 * `intervalMs` per state (the latest snapshot wins) and once more on close. ioredis is
 * imported only when a store is configured. A restarted owner resumes the saved value and
 * sequence under a new epoch; updates of its last `intervalMs` before a crash may be missing
 * from the saved value, and watchers resync to what the owner holds.
 */
import type { Logger } from "pino";
import type { SnapshotStore } from "./owner.js";
import type { StateSnapshot } from "./protocol.js";

/** `states.persist`. */
export interface PersistOptions {
  /** `redis://host:port[/db]`. */
  readonly redis: string;
  /** Longest time a saved snapshot lags the owner; default 200 ms. */
  readonly intervalMs?: number;
}

interface Conn {
  get(key: string): Promise<string | null>;
  set(key: string, value: string): Promise<unknown>;
  quit(): Promise<unknown>;
  disconnect(): void;
  on(ev: "error", fn: (e: Error) => void): unknown;
}

/** A snapshot store in Redis. */
export function redisSnapshotStore(o: PersistOptions, log: Logger): SnapshotStore {
  const every = o.intervalMs ?? 200;
  const dirty = new Map<string, () => StateSnapshot>();
  let conn: Promise<Conn> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const open = (): Promise<Conn> => {
    conn ??= import("ioredis").then(({ Redis }) => {
      const r = new Redis(o.redis, { maxRetriesPerRequest: 2, lazyConnect: false }) as unknown as Conn;
      r.on("error", (e) => log.warn({ err: e.message }, "state snapshot store: redis error"));
      return r;
    });
    return conn;
  };
  const flush = async (): Promise<void> => {
    timer = undefined;
    const batch = [...dirty];
    dirty.clear();
    if (batch.length === 0) return;
    const r = await open();
    await Promise.all(
      batch.map(([key, snap]) =>
        r.set(key, JSON.stringify(snap())).catch((e: unknown) => {
          log.warn({ err: e, key }, "saving a state snapshot failed; the next update saves it again");
        }),
      ),
    );
  };
  return {
    load: async (key) => {
      const raw = await (await open()).get(key);
      return raw === null ? undefined : (JSON.parse(raw) as StateSnapshot);
    },
    save: (key, snap) => {
      dirty.set(key, snap);
      timer ??= setTimeout(() => void flush(), every);
    },
    flush: async (key) => {
      const snap = dirty.get(key);
      if (snap === undefined) return;
      dirty.delete(key);
      await (await open()).set(key, JSON.stringify(snap())).catch((e: unknown) => {
        log.warn({ err: e, key }, "saving a state snapshot failed; the next update saves it again");
      });
    },
    close: async () => {
      clearTimeout(timer);
      await flush();
      if (conn !== undefined) await (await conn).quit().catch(() => undefined);
      conn = undefined;
    },
  };
}
