/**
 * The optional snapshot store of replicated states in Redis (`createApp({ states: { persist:
 * { redis } } })`): one key per state holding the latest `{ e, s, v }`, written at most once per
 * `intervalMs` per state (the latest snapshot wins) and once more on close. ioredis is
 * imported only when a store is configured. A restarted owner resumes the saved value and
 * sequence under a new epoch; updates of its last `intervalMs` before a crash may be missing
 * from the saved value, and watchers resync to what the owner holds. A shard handed over is
 * saved at once (`flush`) and, since no later update would save it again, tried again a few
 * times before its new owner is told (`RELEASE_RETRY_MS`), then given up with a warning.
 * A save writes only when Redis holds no newer snapshot (`SAVE_SCRIPT`, ordered by epoch then
 * sequence): a late save of an owner that lost the state (slow, or released the shard) never
 * replaces the snapshot its successor wrote; it is refused with a warning.
 */
import type { Logger } from "pino";
import type { SnapshotOf, SnapshotStore } from "./owner.js";
import type { StateSnapshot } from "./protocol.js";

/** `states.persist`. */
export interface PersistOptions {
  /** `redis://host:port[/db]`. */
  readonly redis: string;
  /** Longest time a saved snapshot lags the owner; default 200 ms. */
  readonly intervalMs?: number;
}

/** The name `SAVE_SCRIPT` runs under on a store's connection. */
const SAVE_COMMAND = "fanStateSave";

interface Conn {
  get(key: string): Promise<string | null>;
  defineCommand(name: string, def: { lua: string; numberOfKeys: number }): void;
  /** `SAVE_SCRIPT`: `[1]` written, `[0, epoch, seq]` refused (what Redis holds). */
  [SAVE_COMMAND](key: string, value: string, epoch: number, seq: number): Promise<number[]>;
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

/**
 * How long closing the store waits for its last saves: a Redis that takes the connection and
 * never answers held an App's stop for ever. Past it the store warns and disconnects.
 */
const CLOSE_SAVE_MS = 3000;

/**
 * Writes the snapshot `ARGV[1]` (epoch `ARGV[2]`, sequence `ARGV[3]`) at `KEYS[1]` unless the
 * snapshot stored there is newer: a later epoch, or the same epoch further on. Epochs order
 * owners (each new owner's is past the one it resumed, owner.ts `nextEpoch`), sequences order
 * one owner's saves; a stored value that is not a snapshot is replaced. One key: its hash slot
 * is the script's, as Redis Cluster wants. Epochs are milliseconds, exact in Lua's doubles.
 * The stored epoch and sequence are read from the value's first bytes (a snapshot's JSON starts
 * `{"e":…,"s":…`, owner.ts `snapshot`): decoding the whole value blocked Redis for every save,
 * 200 ms for a 6 MB state. Only a value that does not start so is decoded.
 */
const SAVE_SCRIPT = `
local head = redis.call('GETRANGE', KEYS[1], 0, 79)
if head ~= '' then
  local e, s = string.match(head, '^{"e":([%-%d%.eE%+]+),"s":([%-%d%.eE%+]+)[,}]')
  e, s = tonumber(e), tonumber(s)
  if e == nil or s == nil then
    local ok, old = pcall(cjson.decode, redis.call('GET', KEYS[1]))
    if ok and type(old) == 'table' and type(old.e) == 'number' and type(old.s) == 'number' then e, s = old.e, old.s end
  end
  if e ~= nil and s ~= nil then
    local me, ms = tonumber(ARGV[2]), tonumber(ARGV[3])
    if e > me or (e == me and s > ms) then return {0, e, s} end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return {1}`;

/** A snapshot store in Redis. */
export function redisSnapshotStore(o: PersistOptions, log: Logger): SnapshotStore {
  const every = o.intervalMs ?? 200;
  const dirty = new Map<string, () => StateSnapshot>();
  /** What each key holds, for the warning of a refused save. */
  const of = new Map<string, SnapshotOf>();
  /** The last refusal warned about per key (`stored<mine` epochs): one line per pair, not per save. */
  const warned = new Map<string, string>();
  let conn: Promise<Conn> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const open = (): Promise<Conn> => {
    conn ??= import("ioredis").then(({ Redis }) => {
      const r = new Redis(o.redis, { maxRetriesPerRequest: 2, lazyConnect: false }) as unknown as Conn;
      r.on("error", (e) => log.warn({ err: e.message }, "state snapshot store: redis error"));
      r.defineCommand(SAVE_COMMAND, { lua: SAVE_SCRIPT, numberOfKeys: 1 });
      return r;
    });
    return conn;
  };
  /** Writes `snap` unless Redis holds a newer snapshot (then warns, once per pair of epochs); throws when Redis fails. */
  const write = async (key: string, snap: StateSnapshot): Promise<void> => {
    const [done, e, s] = await (await open())[SAVE_COMMAND](key, JSON.stringify(snap), snap.e, snap.s);
    if (done === 1) return;
    const pair = `${e}<${snap.e}`;
    if (warned.get(key) === pair) return;
    warned.set(key, pair);
    const what = of.get(key);
    const label = what === undefined ? key : `${what.state}${what.shard === undefined ? "" : ` shard ${what.shard}`}`;
    log.warn(
      {
        key,
        ...(what ?? {}),
        epoch: snap.e,
        seq: snap.s,
        storedEpoch: e,
        storedSeq: s,
      },
      `a stale snapshot save of ${label} was refused: Redis holds epoch ${String(e)} seq ${String(s)}, newer than this owner's epoch ${snap.e} seq ${snap.s} (another owner took the state over and saved since); the newer snapshot is kept and this owner's later updates are not saved`,
    );
  };
  const flush = async (): Promise<void> => {
    timer = undefined;
    const batch = [...dirty];
    dirty.clear();
    if (batch.length === 0) return;
    await Promise.all(
      batch.map(([key, snap]) =>
        write(key, snap()).catch((e: unknown) => {
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
    save: (key, snap, what) => {
      dirty.set(key, snap);
      if (what !== undefined) of.set(key, what);
      timer ??= setTimeout(() => void flush(), every);
    },
    flush: async (key) => {
      const snap = dirty.get(key);
      if (snap === undefined) return;
      dirty.delete(key);
      const value = snap();
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
          await write(key, value);
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
      const pending = [...dirty.keys()];
      let bound: NodeJS.Timeout | undefined;
      const saved = await Promise.race([
        flush().then(() => true),
        new Promise<false>((r) => {
          bound = setTimeout(() => r(false), CLOSE_SAVE_MS);
        }),
      ]);
      clearTimeout(bound);
      if (!saved)
        log.warn(
          { keys: pending, waitedMs: CLOSE_SAVE_MS },
          `saving ${pending.length} state snapshot(s) on close did not finish within ${CLOSE_SAVE_MS} ms (Redis does not answer): closing without them; their next owner resumes the last snapshot saved, without this owner's latest updates`,
        );
      const c = conn === undefined ? undefined : await conn;
      conn = undefined;
      // QUIT waits for Redis's answer too: one that does not answer is disconnected.
      if (saved) await c?.quit().catch(() => undefined);
      else c?.disconnect();
    },
  };
}
