/**
 * A consumer-group reader of one stream, for pushes and event subscriptions. Entries are read
 * with XREADGROUP on a dedicated blocking connection, bounded by `prefetch`; an entry is
 * XACKed (and, for pushes, XDELed) only when its handler resolved. A failed entry is claimed
 * again after a backoff (XCLAIM, which counts the delivery); entries of a consumer that died
 * are taken over with XAUTOCLAIM once idle for `claimIdleMs`, while a live consumer keeps its
 * slow entries fresh. After `maxDeliveries` an entry moves to the dead-letter stream, in one
 * MULTI with its XACK, so it is never lost. The entries whose handlers resolved in one
 * event-loop turn are acknowledged by one XACK. Entry fields: `e` = the envelope JSON.
 *
 * With `liveness` (push streams), each consumer keeps itself in a sorted set with an expiry
 * (refreshed every third of `ttlMs`); a consumer that holds entries and is missing from it
 * (its process died: no refresh for `ttlMs`, as long as a discovery lease) has them claimed
 * at once by the next live consumer to look, instead of after `claimIdleMs`.
 */
import type { Logger } from "pino";
import { Code, FanError } from "../../errors.js";
import { ReadGate } from "../read-gate.js";
import type { Envelope } from "../transport.js";
import { decodeEnvelope } from "../../codec/wire.js";
import { disconnect, isReady, ready, type RedisClient, send, unblock } from "./clients.js";
import { deadLetterKey } from "./names.js";
import { aboutMessage, aboutRaw } from "../log-keys.js";
import { warnDropped } from "../../telemetry/drops.js";
import { type DeliveryLimits, finalError, limitNote, limitOf, redeliver, warnFinal } from "../push-ends.js";

/** One stream and how to read it. */
export interface StreamSpec {
  readonly key: string;
  readonly group: string;
  readonly consumer: string;
  /** Where a new group starts: "0" (every entry, pushes) or "$" (only new ones, subscriptions). */
  readonly startId: "0" | "$";
  /** XDEL after XACK (only when this is the stream's one group). */
  readonly deleteOnAck: boolean;
  readonly maxDeliveries: number;
  /** Pushes whose `@retry(n)` allows fewer deliveries than `maxDeliveries` (push-ends.ts). */
  readonly limits?: DeliveryLimits;
  readonly prefetch: number;
  readonly blockMs: number;
  readonly claimIdleMs: number;
  readonly retryDelayMs: number;
  readonly maxBytes: number;
  readonly log: Logger;
  /** Told of every entry moved to the dead-letter stream (its envelope, when it decodes). */
  readonly onDeadLetter?: (env: Envelope | undefined) => void;
  /** Live-consumer set of the stream and its entries' lifetime (push streams). */
  readonly liveness?: { readonly key: string; readonly ttlMs: number };
}

/** Refresh this consumer in the live set, drop expired ones, return the live ones. */
const LIVE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZRANGE', KEYS[1], 0, -1)`;

type Entry = readonly [id: string, fields: readonly Buffer[] | null];

/** Entries of an XREADGROUP / XCLAIM / XAUTOCLAIM reply, ids as strings. */
export function parseEntries(raw: unknown): Entry[] {
  if (!Array.isArray(raw)) return [];
  return raw.map((e) => {
    const [id, fields] = e as [Buffer, Buffer[] | null];
    return [id.toString("latin1"), Array.isArray(fields) ? fields : null] as const;
  });
}

/** The value of `name` in a flat field list. */
export function field(fields: readonly Buffer[] | null, name: string): Buffer | undefined {
  if (fields === null) return undefined;
  for (let i = 0; i + 1 < fields.length; i += 2)
    if ((fields[i] as Buffer).toString("latin1") === name) return fields[i + 1];
  return undefined;
}

/** A flat `[name, value, ...]` reply (XINFO) as a map. */
function flat(row: readonly unknown[]): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < row.length; i += 2) m.set(String(row[i]), row[i + 1]);
  return m;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Reads a stream in a consumer group and hands each entry to `deliver`. */
export class StreamConsumer {
  readonly #inFlight = new Set<string>();
  /** When to read again (read-gate.ts). */
  readonly #gate: ReadGate;
  /** XACKs and dead-letterings sent but not yet answered. */
  readonly #acking = new Set<Promise<void>>();
  readonly #dlq: string;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #liveTimer: NodeJS.Timeout | undefined;
  #checking = false;
  #lastClaim = 0;
  #cursor = "0-0";
  /** Entries settled in this turn, acknowledged together once it ends. */
  #settling:
    | { readonly ids: string[]; readonly deleted: string[]; readonly done: Promise<void>; readonly resolve: () => void }
    | undefined;

  constructor(
    private readonly cmd: RedisClient,
    private readonly blk: RedisClient,
    private readonly spec: StreamSpec,
    private readonly deliver: (env: Envelope) => Promise<void>,
  ) {
    this.#dlq = deadLetterKey(spec.key);
    this.#gate = new ReadGate(spec.prefetch, () => this.#inFlight.size);
  }

  /** Creates the group if needed and starts reading; resolves once the group exists. */
  /** Waits for the connections (until `deadline`, or `signal`: the transport closing), then reads. */
  async start(deadline: number, signal?: AbortSignal): Promise<void> {
    await Promise.all([ready(this.cmd, deadline, signal), ready(this.blk, deadline, signal)]);
    await this.#ensureGroup(this.spec.startId);
    const beat = Math.max(50, Math.floor(this.spec.claimIdleMs / 3));
    this.#heartbeat = setInterval(() => void this.#touch(), beat).unref();
    const live = this.spec.liveness;
    if (live !== undefined) {
      await this.#live();
      this.#liveTimer = setInterval(() => void this.#live(), Math.max(50, Math.floor(live.ttlMs / 3))).unref();
    }
    this.#loop = this.#run();
  }

  /** Refreshes this consumer in the live set and claims what consumers missing from it hold. */
  async #live(): Promise<void> {
    const live = this.spec.liveness;
    if (live === undefined || this.#checking || this.#stopped || !isReady(this.cmd)) return;
    this.#checking = true;
    try {
      const s = this.spec;
      const alive = new Set(
        (await send(this.cmd, "EVAL", [LIVE_SCRIPT, 1, live.key, s.consumer, live.ttlMs])) as string[],
      );
      const consumers = (await send(this.cmd, "XINFO", ["CONSUMERS", s.key, s.group])) as unknown[][];
      for (const row of consumers) {
        const info = flat(row);
        const name = String(info.get("name"));
        if (Number(info.get("pending") ?? 0) > 0 && name !== s.consumer && !alive.has(name))
          await this.#claimFrom(name);
      }
    } catch (e) {
      if (!this.#stopped && isReady(this.cmd))
        this.spec.log.warn({ stream: this.spec.key, err: message(e) }, "redis live-consumer check failed");
    } finally {
      this.#checking = false;
    }
  }

  /**
   * Claims the pending entries of `gone`, a consumer no longer in the live set. XCLAIM's
   * min-idle is the idle time just read, so of two consumers claiming at once only the first
   * gets each entry (the claim resets its idle time).
   */
  async #claimFrom(gone: string): Promise<void> {
    const s = this.spec;
    const room = s.prefetch - this.#inFlight.size;
    if (room <= 0) return;
    const rows = (await send(this.cmd, "XPENDING", [s.key, s.group, "-", "+", room, gone])) as [
      string,
      string,
      number,
      number,
    ][];
    if (rows.length === 0) return;
    const minIdle = Math.max(1, Math.min(...rows.map((r) => Number(r[2]))));
    const entries = parseEntries(
      await send(this.cmd, "XCLAIM", [s.key, s.group, s.consumer, minIdle, ...rows.map((r) => r[0])], true),
    ).filter(([id]) => !this.#inFlight.has(id));
    if (entries.length === 0) return;
    s.log.info(
      { stream: s.key, consumer: gone, entries: entries.length },
      "claimed the entries of a consumer that is gone",
    );
    const counts = new Map(rows.map((r) => [r[0], Number(r[3]) + 1]));
    for (const e of entries) {
      const n = counts.get(e[0]) ?? 2;
      if (e[1] === null) void this.#settle(e[0], "deleted");
      else if (n > s.maxDeliveries) this.#unacknowledged(e, n - 1);
      else this.#handle(e, n);
    }
  }

  async #ensureGroup(id: "0" | "$"): Promise<void> {
    try {
      await send(this.cmd, "XGROUP", ["CREATE", this.spec.key, this.spec.group, id, "MKSTREAM"]);
    } catch (e) {
      if (!/BUSYGROUP/.test(message(e))) throw e;
    }
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        if (!isReady(this.blk)) await ready(this.blk, Date.now() + this.spec.blockMs);
        await this.#gate.wait();
        if (this.#stopped) break;
        if (Date.now() - this.#lastClaim >= Math.min(this.spec.claimIdleMs / 2, 5000)) await this.#claim();
        await this.#read();
      } catch (e) {
        if (this.#stopped) break;
        await this.#recover(e);
      }
    }
  }

  async #read(): Promise<void> {
    const room = this.spec.prefetch - this.#inFlight.size;
    if (room <= 0) return;
    const s = this.spec;
    const raw = await send(
      this.blk,
      "XREADGROUP",
      ["GROUP", s.group, s.consumer, "COUNT", room, "BLOCK", s.blockMs, "STREAMS", s.key, ">"],
      true,
    );
    if (!Array.isArray(raw)) return;
    for (const [, entries] of raw as [Buffer, unknown][]) for (const e of parseEntries(entries)) this.#handle(e, 1);
  }

  async #recover(e: unknown): Promise<void> {
    if (/NOGROUP/.test(message(e))) {
      this.spec.log.warn(
        { stream: this.spec.key, group: this.spec.group },
        "redis consumer group missing (Redis restarted without its data?); creating it again",
      );
      await this.#ensureGroup("0").catch(() => undefined);
      return;
    }
    if (isReady(this.blk) && isReady(this.cmd))
      this.spec.log.warn({ stream: this.spec.key, err: message(e) }, "redis stream read failed");
    await new Promise((r) => setTimeout(r, 50));
  }

  #release(id: string): void {
    this.#inFlight.delete(id);
    this.#gate.released();
  }

  /** Takes over entries other consumers left idle for `claimIdleMs`, with their delivery counts. */
  async #claim(): Promise<void> {
    this.#lastClaim = Date.now();
    const s = this.spec;
    const room = s.prefetch - this.#inFlight.size;
    if (room <= 0) return;
    const raw = (await send(
      this.cmd,
      "XAUTOCLAIM",
      [s.key, s.group, s.consumer, s.claimIdleMs, this.#cursor, "COUNT", room],
      true,
    )) as [Buffer, unknown];
    this.#cursor = raw[0].toString("latin1");
    const entries = parseEntries(raw[1]).filter(([id]) => !this.#inFlight.has(id));
    if (entries.length === 0) return;
    const counts = await this.#counts(entries);
    for (const e of entries) {
      const n = counts.get(e[0]) ?? 2;
      if (e[1] === null) void this.#settle(e[0], "deleted");
      else if (n > s.maxDeliveries) this.#unacknowledged(e, n - 1);
      else this.#handle(e, n);
    }
  }

  async #counts(entries: Entry[]): Promise<Map<string, number>> {
    const s = this.spec;
    const first = (entries[0] as Entry)[0];
    const last = (entries[entries.length - 1] as Entry)[0];
    const rows = (await send(this.cmd, "XPENDING", [s.key, s.group, first, last, entries.length + 16, s.consumer])) as [
      string,
      string,
      number,
      number,
    ][];
    return new Map(rows.map((r) => [r[0], Number(r[3])]));
  }

  #handle(entry: Entry, attempt: number): void {
    const [id, fields] = entry;
    let env: Envelope;
    try {
      const raw = field(fields, "e");
      if (raw === undefined) throw new FanError(Code.INVALID_ARGUMENT, "stream entry without an `e` field");
      env = decodeEnvelope(raw, { maxBytes: this.spec.maxBytes });
    } catch (e) {
      warnDropped(
        this.spec.log,
        { transport: "redis", endpoint: this.spec.key, reason: "undecodable" },
        { stream: this.spec.key, id, err: message(e), deadLetters: this.#dlq },
        "undecodable redis stream entry dead-lettered",
      );
      void this.#deadLetter(entry, `undecodable: ${message(e)}`);
      return;
    }
    const limit = limitOf(this.spec.limits, env, this.spec.maxDeliveries);
    // Past its method's @retry limit, below the stream's: its consumers died holding it.
    if (attempt > limit) {
      this.#unacknowledged(entry, attempt - 1, limitNote(limit, this.spec.maxDeliveries));
      return;
    }
    this.#inFlight.add(id);
    this.deliver({ ...env, headers: { ...env.headers, attempt } }).then(
      () => this.#settle(id, "ack"),
      (e: unknown) => this.#failed(entry, env, attempt, e),
    );
  }

  #failed(entry: Entry, env: Envelope, attempt: number, e: unknown): void {
    const log = { stream: this.spec.key, id: entry[0], ...aboutMessage(env), attempt, err: message(e) };
    const final = finalError(e);
    if (final !== undefined) {
      warnFinal(this.spec.log, { stream: this.spec.key, entry: entry[0], attempt }, env, final, e, this.#dlq);
      void this.#deadLetter(entry, `failed with its declared error ${final.name}: ${message(e)}`);
      return;
    }
    const limit = limitOf(this.spec.limits, env, this.spec.maxDeliveries);
    if (attempt >= limit) {
      const note = limitNote(limit, this.spec.maxDeliveries);
      this.spec.log.warn({ ...log, deadLetters: this.#dlq }, `delivery failed ${attempt} times${note}; dead-lettered`);
      void this.#deadLetter(entry, `failed ${attempt} times: ${message(e)}`);
      return;
    }
    const delay = redeliver(this.spec.log, log, this.spec.retryDelayMs, attempt, e, env);
    setTimeout(() => void this.#again(entry[0], attempt), delay).unref();
  }

  /** Claims a failed entry back (counting the delivery) and handles it again. */
  async #again(id: string, attempt: number): Promise<void> {
    if (this.#stopped) return this.#release(id);
    try {
      const s = this.spec;
      const entries = parseEntries(await send(this.cmd, "XCLAIM", [s.key, s.group, s.consumer, 0, id], true));
      this.#release(id);
      const e = entries[0];
      if (e !== undefined && e[1] !== null) this.#handle(e, attempt + 1);
    } catch {
      this.#release(id);
    }
  }

  /**
   * XACKs (and maybe XDELs) an entry, trying again once Redis is back if it is away. The
   * entries settled in one event-loop turn go together: one XACK (and one XDEL) of all their
   * ids, one round trip instead of one per entry. An entry stays in flight until its XACK is
   * answered.
   */
  #settle(id: string, why: "ack" | "deleted"): Promise<void> {
    let batch = this.#settling;
    if (batch === undefined) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => {
        resolve = r;
      });
      batch = { ids: [], deleted: [], done, resolve };
      this.#settling = batch;
      process.nextTick(() => void this.#settleBatch());
    }
    (why === "ack" ? batch.ids : batch.deleted).push(id);
    return batch.done;
  }

  async #settleBatch(): Promise<void> {
    const b = this.#settling;
    this.#settling = undefined;
    if (b === undefined) return;
    const s = this.spec;
    const all = b.deleted.length === 0 ? b.ids : [...b.ids, ...b.deleted];
    const cmds: unknown[][] = [["xack", s.key, s.group, ...all]];
    if (s.deleteOnAck && b.ids.length > 0) cmds.push(["xdel", s.key, ...b.ids]);
    await this.#exec(cmds, all.length === 1 ? `xack ${all[0]}` : `xack of ${all.length} entries`);
    for (const id of all) this.#release(id);
    b.resolve();
  }

  /** An entry delivered `deliveries` times and never acknowledged (its consumers died holding it): dead-lettered, and said so. */
  #unacknowledged(entry: Entry, deliveries: number, note = ""): void {
    const reason = `not acknowledged after ${deliveries} deliveries${note}`;
    this.spec.log.warn(
      {
        stream: this.spec.key,
        id: entry[0],
        ...aboutRaw(field(entry[1], "e"), this.spec.maxBytes),
        deliveries,
        deadLetters: this.#dlq,
      },
      `${reason} (its consumers went away holding it); dead-lettered`,
    );
    void this.#deadLetter(entry, reason);
  }

  /** Moves an entry to the dead-letter stream and acknowledges it, atomically. */
  async #deadLetter(entry: Entry, reason: string): Promise<void> {
    const s = this.spec;
    const [id, fields] = entry;
    this.#inFlight.add(id);
    const cmds: unknown[][] = [
      ["xadd", this.#dlq, "*", "e", field(fields, "e") ?? "", "reason", reason, "source", id, "group", s.group],
      ["xack", s.key, s.group, id],
    ];
    if (s.deleteOnAck) cmds.push(["xdel", s.key, id]);
    await this.#exec(cmds, `dead-letter ${id}`);
    this.#release(id);
    if (s.onDeadLetter !== undefined) {
      let env: Envelope | undefined;
      try {
        env = decodeEnvelope(field(fields, "e") ?? "", { maxBytes: s.maxBytes });
      } catch {
        env = undefined;
      }
      s.onDeadLetter(env);
    }
  }

  #exec(cmds: unknown[][], what: string): Promise<void> {
    const p = this.#execOnce(cmds, what);
    this.#acking.add(p);
    void p.then(() => this.#acking.delete(p));
    return p;
  }

  async #execOnce(cmds: unknown[][], what: string): Promise<void> {
    for (let tries = 0; tries < 2; tries++) {
      try {
        await this.cmd.multi(cmds).exec();
        return;
      } catch (e) {
        if (tries === 0) await ready(this.cmd, Date.now() + 30_000).catch(() => undefined);
        else
          this.spec.log.warn(
            { stream: this.spec.key, err: message(e) },
            `redis ${what} failed; the entry will be delivered again`,
          );
      }
    }
  }

  /** Keeps entries in our handlers from looking idle, so nobody claims them. */
  async #touch(): Promise<void> {
    if (this.#inFlight.size === 0 || !isReady(this.cmd)) return;
    const s = this.spec;
    await send(this.cmd, "XCLAIM", [s.key, s.group, s.consumer, 0, ...this.#inFlight, "JUSTID"]).catch(() => undefined);
  }

  /** Stops reading (entries in handlers still get acknowledged). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#liveTimer !== undefined) clearInterval(this.#liveTimer);
    this.#gate.open();
    await unblock(this.cmd, this.blk);
    await this.#loop;
  }

  /** Entries in handlers or waiting to be retried. */
  get busy(): number {
    return this.#inFlight.size;
  }

  /**
   * Stops, lets acknowledgements already sent reach Redis (up to 1 s), and hands entries still
   * in handlers to the other consumers at once.
   */
  async close(): Promise<void> {
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    if (this.#liveTimer !== undefined) clearInterval(this.#liveTimer);
    await Promise.race([Promise.all([...this.#acking]), new Promise((r) => setTimeout(r, 1000))]);
    const s = this.spec;
    const held = [...this.#inFlight];
    const release =
      held.length === 0 || !isReady(this.cmd)
        ? Promise.resolve()
        : send(this.cmd, "XCLAIM", [
            s.key,
            s.group,
            s.consumer,
            0,
            ...held,
            "IDLE",
            s.claimIdleMs * 2 + 1000,
            "JUSTID",
          ]).catch(() => undefined);
    const live = this.spec.liveness;
    const leave =
      live === undefined || !isReady(this.cmd)
        ? Promise.resolve()
        : send(this.cmd, "ZREM", [live.key, s.consumer]).catch(() => undefined);
    await Promise.all([this.stop(), release, leave]);
    disconnect(this.blk);
  }
}
