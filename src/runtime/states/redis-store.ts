/**
 * The optional snapshot store of replicated states in Redis (`createApp({ states: { persist:
 * { redis } } })`): one key per state holding the latest `{ e, s, v }`, written at most once per
 * `intervalMs` per state (the latest snapshot wins) and once more on close. ioredis is
 * imported only when a store is configured. A restarted owner resumes the saved value and
 * sequence under a new epoch; updates of its last `intervalMs` before a crash may be missing
 * from the saved value, and watchers resync to what the owner holds. A shard handed over is
 * saved at once (`flush`) and, since no later update would save it again, tried again a few
 * times before its new owner is told (`RELEASE_RETRY_MS`), then given up with a warning.
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

/**
 * The waits before the second and third tries of a released shard's save; no try starts more
 * than `RELEASE_TRY_WITHIN_MS` after the first (ioredis's own reconnection tries make each failed
 * one take 150 ms and more against a Redis that refuses): the release, and its new owner, wait
 * about 1.5 s at most for it.
 */
const RELEASE_RETRY_MS = [100, 300] as const;
const RELEASE_TRY_WITHIN_MS = 1000;

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
      const value = JSON.stringify(snap());
      let err: unknown;
      let tries = 0;
      const t0 = Date.now();
      for (let i = 0; i <= RELEASE_RETRY_MS.length; i++) {
        if (i > 0) {
          await new Promise((r) => setTimeout(r, RELEASE_RETRY_MS[i - 1]));
          if (Date.now() - t0 > RELEASE_TRY_WITHIN_MS) break;
          // Saved again meanwhile (the shard came back): that newer snapshot is the one to write.
          if (dirty.has(key)) return;
        }
        tries++;
        try {
          await (await open()).set(key, value);
          return;
        } catch (e) {
          err = e;
        }
      }
      log.warn(
        { err, key, tries },
        `saving the snapshot of ${key} as its shard was handed over failed (${tries} tries in ${Date.now() - t0} ms): its new owner will resume an older snapshot (the last one saved), without this owner's latest updates`,
      );
    },
    close: async () => {
      clearTimeout(timer);
      await flush();
      if (conn !== undefined) await (await conn).quit().catch(() => undefined);
      conn = undefined;
    },
  };
}
