/**
 * The calling side of redis rpc. A call is one script run: it checks that some instance of
 * the version is alive (a sorted set the servers refresh) and LPUSHes the request onto the
 * version's list (a sharded call: that its owner is alive, onto the owner's own list), so a call to a version nobody serves fails at once with UNAVAILABLE and
 * leaves nothing behind. Replies come back on this client's own pub/sub channel, matched by
 * correlation id; a cancelled call is announced on the version's cancel channel.
 *
 * Request frame (one list item per call): `{corr}\n{replyChannel}\n{envelope JSON}`. Reply frame:
 * `{corr}\n{reply}` pairs, one per line (JSON text never holds a raw newline). A client's `corr`
 * starts with `%`, which asks for compact replies (`=`/`!` and the payload's JSON: replies.ts);
 * an older server echoes it unread and answers whole envelopes, which the client reads too. Calls
 * made in one tick go out in one script run, and a server answers the calls of one client
 * that finish in one tick with one PUBLISH (a run carries at most `CALLS_PER_RUN` calls).
 * Frames travel as strings: ioredis writes a pipeline of strings in one piece, which is
 * measurably cheaper than its mixed-buffer path.
 *
 * A version's calls skip the script while the client holds a lease on that version: a script run
 * that accepts calls answers how long the longest-lived alive entry has left, and for that long
 * (at most `LEASE_MS`) the client pushes with a plain LPUSH, which costs Redis about half of
 * the script (docs/transports-amqp-redis.md, "Leases"). The lease ends early when an instance
 * of the version announces on the left channel that it stopped (rpc-server.ts), and whenever
 * the reply connection drops (an announcement may have been missed): the next call runs the
 * script again, so a version whose last instance stopped is still refused at once. A killed
 * instance stays in the alive set until its entry expires, and the lease never outlives that
 * entry, so a lease accepts no call the script would have refused.
 *
 * A call to one instance (sharded) is watched while it waits: every `OWNER_CHECK_MS` the
 * client asks Redis whether that instance is still in the alive set, and once it is not (a
 * process killed stops refreshing its entry: gone `aliveTtlMs` after its last refresh), takes
 * the request back off the instance's list and fails the call with UNAVAILABLE (not delivered,
 * when it was still on the list), instead of letting it wait out its deadline.
 *
 * A call to the version's list is watched the same way once the server that took it says so:
 * a server whose call is still running at the end of the turn it popped it in answers
 * `{corr}\n@{instanceId}` first (only to a client whose `corr` carries `TAKEN_ID_MARK`: an older
 * client would read it as a reply). The client then checks that instance in the version's
 * running set (names.ts `runningKey`: the alive set, plus instances that stopped and finish
 * their calls) and, once it is gone, fails the call with UNAVAILABLE, not marked as
 * undelivered (it may have run there): the retry policy sends a call that may be retried to
 * the instances left, and any other call fails then instead of at its deadline.
 *
 * A server that dies in the turn it took a call in never sends the notice. So a call to a
 * version's list still waiting, unnoticed, at two sweeps (`SWEEP_MS` apart) is looked for in
 * the list (one script run per version, from the list's tail, where the oldest calls wait); one
 * no longer there was taken by a server that has said nothing. A live server says so within the
 * turn, and a stalled one cannot renew its entries: once the longest-lived running entry of the
 * moment it was found gone has expired, its taker is dead or stalled past its entry, and the
 * call fails as a noticed one whose instance is gone would. Only while every alive instance of
 * the version has a running entry: an older server sends no notice (and has no running entry),
 * so a call waiting while one is alive is left to its deadline, as before. A look reads no list
 * past `SCAN_MAX` requests or `SCAN_MAX_BYTES` (its cost grows with the bytes it copies), and
 * a long or big list is looked at less often (`SWEEP_LONG`): such a list's calls whose taker
 * died silently wait for their deadline.
 */
import { createHash, randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { deadlines, type Expirable } from "../../call/deadlines.js";
import { lostWith } from "../../call/lost.js";
import { type AbortTarget, unwatchAbort, watchAbort } from "../abort.js";
import { Code, FanError } from "../../errors.js";
import { notDelivered } from "../not-delivered.js";
import { COMPACT_ID_MARK, decodeFrameReply } from "../replies.js";
import type { Envelope, SendOptions } from "../transport.js";
import { capture, captured, withDeadline } from "../batching/calls.js";
import { encodeEnvelopeText, utf8SizeOver } from "../../codec/wire.js";
import { disconnect, isReady, notSent, ready, type RedisClient, send, stalled, unavailable } from "./clients.js";
import {
  aliveKey,
  cancelChannel,
  instanceRpcKey,
  leftChannel,
  parseEndpoint,
  replyChannel,
  rpcKey,
  runningKey,
  type RedisAddress,
} from "./names.js";

/**
 * LPUSH the requests (ARGV[2..], in order) when an instance of the version is alive, or, when
 * ARGV[1] names an instance (a sharded call), when that instance is; 0 when none is. For a
 * version's calls, the answer is 1 + the milliseconds the longest-lived alive entry has left
 * (the client's lease); for a sharded call, 1. An instance's list expires a minute after its
 * last call, so a dead owner's leaves nothing.
 */
const CALL_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == '' then
  local best = redis.call('ZREVRANGEBYSCORE', KEYS[2], '+inf', now, 'WITHSCORES', 'LIMIT', 0, 1)
  if #best == 0 then return 0 end
  redis.call('LPUSH', KEYS[1], unpack(ARGV, 2))
  return math.floor(tonumber(best[2]) - now) + 1
else
  local exp = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if not exp or tonumber(exp) < now then return 0 end
end
redis.call('LPUSH', KEYS[1], unpack(ARGV, 2))
if ARGV[1] ~= '' then redis.call('PEXPIRE', KEYS[1], 60000) end
return 1`;

/**
 * The call script's SHA1: calls send EVALSHA as a plain command (not ioredis's script wrapper,
 * which adds a promise, a closure and two argument copies per run) and EVAL once Redis answers
 * NOSCRIPT (after a restart or a failover: nothing ran, so sending it again is safe).
 */
const CALL_SHA = createHash("sha1").update(CALL_SCRIPT).digest("hex");

/** True for Redis's answer to an EVALSHA of a script it does not have. */
function noScript(e: unknown): boolean {
  return e instanceof Error && e.message.startsWith("NOSCRIPT");
}

/**
 * When the instance KEYS[2]'s ARGV[1] names is no longer alive, removes each request ARGV[2..]
 * from its list KEYS[1] and returns, per request, 1 when it was still there (never popped) and
 * 0 when not; returns -1 while the instance is alive.
 */
const TAKE_BACK_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = redis.call('ZSCORE', KEYS[2], ARGV[1])
if exp and tonumber(exp) >= now then return -1 end
local out = {}
for i = 2, #ARGV do out[i - 1] = redis.call('LREM', KEYS[1], 1, ARGV[i]) end
return out`;

/**
 * Per instance ARGV[i], 1 while its entry in the alive set KEYS[1] is fresh, else 0: the
 * cheap check before a take-back, which carries the request frames.
 */
const ALIVE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #ARGV do
  local exp = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if exp and tonumber(exp) >= now then out[i] = 1 else out[i] = 0 end
end
return out`;

/**
 * Name of the alive-check script command. ioredis keeps one command per name on a connection,
 * and a served instance's heartbeat (`fanRpcHeartbeat`, rpc-server.ts) shares this client's
 * connection in an App that serves and calls: the names must differ, or the check replaces the
 * heartbeat and the instance drops out of the alive set while it serves.
 */
const ALIVE_COMMAND = "fanRpcCheckAlive";

/** The longest version's list the sweep for unnoticed calls reads (see `UNNOTICED_SCRIPT`). */
export const SCAN_MAX = 1000;

/**
 * The most bytes (Redis's `MEMORY USAGE` of the list) the sweep for unnoticed calls reads: a
 * run copies the requests it reads into the script, so its cost grows with their bytes (999
 * requests of 256 KiB took Redis 2 to 4 s a run; a list of 1 MiB, about 2.5 ms; of 256 KiB,
 * under 1 ms); past this the list is not read.
 */
export const SCAN_MAX_BYTES = 256 * 1024;

/**
 * Which of the calls ARGV (correlation ids) still wait in the version's list KEYS[1]: answers
 * `{wait, len, bytes, in_1, ...}`, `in_i` 1 when call i's request is in the list, `len` and
 * `bytes` the list's length and memory, and `wait` the milliseconds the longest-lived entry of the running set KEYS[3] has
 * left (0 when none is fresh); `{-1}` when an alive instance (alive set KEYS[2]) has no running
 * entry (an older server, which sends no taken notice); `{-2, len, bytes}` when the list holds more
 * than `SCAN_MAX` requests or `SCAN_MAX_BYTES` bytes (not read: a backlog, which every caller's
 * sweep would read again and again). Both bounds are checked before anything else is built
 * (LLEN, and MEMORY USAGE, which sums the list's nodes without reading them). The list is read
 * from its tail (the oldest requests), in chunks of 32, until every call is found.
 */
export const UNNOTICED_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local alive = redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')
for i = 1, #alive do
  local r = redis.call('ZSCORE', KEYS[3], alive[i])
  if not r or tonumber(r) < now then return {-1} end
end
local len = redis.call('LLEN', KEYS[1])
if len > ${SCAN_MAX} then return {-2, len, 0} end
local bytes = 0
if len > 0 then bytes = redis.call('MEMORY', 'USAGE', KEYS[1], 'SAMPLES', 0) or 0 end
if bytes > ${SCAN_MAX_BYTES} then return {-2, len, bytes} end
local best = redis.call('ZREVRANGEBYSCORE', KEYS[3], '+inf', now, 'WITHSCORES', 'LIMIT', 0, 1)
local out = {0, len, bytes}
if #best > 0 then out[1] = math.floor(tonumber(best[2]) - now) end
local want = {}
for i = 1, #ARGV do
  want[ARGV[i]] = i
  out[i + 3] = 0
end
local left = #ARGV
local stop = -1
while left > 0 and stop >= -len do
  local from = math.max(stop - 31, -len)
  local items = redis.call('LRANGE', KEYS[1], from, stop)
  for j = #items, 1, -1 do
    local nl = string.find(items[j], '\\n', 1, true)
    if nl then
      local corr = string.sub(items[j], 1, nl - 1)
      local i = want[corr]
      if i then
        out[i + 3] = 1
        want[corr] = nil
        left = left - 1
      end
    end
  end
  stop = from - 1
end
return out`;

/**
 * A list longer than this, or of more than `SWEEP_BIG` bytes (or one the sweep declined), is
 * swept less often: the interval doubles from `SWEEP_MS` up to `SWEEP_BACKOFF_MAX_MS` (with
 * jitter, so callers spread out) while it stays so, and is back to `SWEEP_MS` once it is small.
 */
export const SWEEP_LONG = 100;

/** See `SWEEP_LONG`. */
export const SWEEP_BIG = 64 * 1024;

/** The longest interval between two sweeps of one list (see `SWEEP_LONG`). */
export const SWEEP_BACKOFF_MAX_MS = 4000;

/** Name of the unnoticed-calls script command. */
const UNNOTICED_COMMAND = "fanRpcUnnoticed";

/** How often pending calls to a version's list are swept for takers that said nothing. */
export const SWEEP_MS = 250;

/**
 * The longest a lease on a version lasts (see the file's comment): a bound on what an
 * announcement lost between servers and clients of different runtimes can cost, as the next
 * script run after it refuses calls to a version nobody serves.
 */
export const LEASE_MS = 1000;

/** A plain LPUSH's answer, read as the script's "accepted". */
const pushed = (): number => 1;

/** How often calls waiting on one instance check that it is still alive. */
export const OWNER_CHECK_MS = 250;

/** Name of the take-back script command. */
const TAKE_BACK_COMMAND = "fanRpcTakeBack";

/** Most requests one take-back script run carries (Lua's unpack has a stack limit). */
const MAX_BATCH = 512;

/**
 * Most calls one call-script run carries: a tick's calls go out in runs of at most this many,
 * each sent as soon as it is full. At c=64 every call of a tick in one run made the calls move
 * as one group of 64 between the three processes (one script run, one BLMPOP, one PUBLISH per
 * 64 calls), so client, Redis and server took turns and never ran at the same time; in runs of
 * 32 the server handles one half while the client handles the other's replies.
 */
export const CALLS_PER_RUN = 32;

/**
 * The second character of a `corr` whose client reads taken notices (the file's comment); the
 * first is the compact mark.
 */
export const TAKEN_ID_MARK = "^";

/** The first character of a taken notice, where a reply would be: `@{instanceId}`. */
export const TAKEN_NOTICE = "@";

/** True when the client of `corr` reads taken notices. */
export function wantsTakenNotice(corr: string): boolean {
  return corr.charCodeAt(1) === 0x5e;
}

/** Where a call goes: the version's list, or (sharded) one instance's. */
interface Dest {
  readonly addr: RedisAddress;
  readonly list: string;
  /** The instance the script checks is alive; "" for any instance of the version. */
  readonly instance: string;
  /** Taken off the version's list by `instance` (a taken notice): nothing to take back. */
  readonly taken: boolean;
}

/** Calls to one list queued in the current tick, sent together by one script run. */
interface Batch {
  readonly dest: Dest;
  readonly frames: string[];
  readonly calls: { corr: string; frame: string; opts: SendOptions }[];
}

interface Pending extends Expirable {
  /** The called service (a compact reply does not name it). */
  readonly service: string;
  /** Where the call went. */
  readonly addr: RedisAddress;
  /** Set by the sweep of calls to a version's list that wait without a taken notice. */
  unnoticed: Unnoticed | undefined;
  settle(result: Envelope | FanError): void;
}

/** A call to a version's list seen pending, without a taken notice, at a sweep. */
interface Unnoticed {
  /** Found out of the list at (`Date.now()`), 0 while it is in the list or not looked for yet. */
  outSince: number;
  /** Once found out: how long its taker's entry may still live (the longest running entry's). */
  waitMs: number;
  /** An older server was alive (it sends no notice): left to its deadline. */
  exempt: boolean;
}

/** Splits `{head}\n{rest}`; undefined when there is no head line of at most `max` characters. */
export function splitLine(text: string, from = 0, max = 512): [string, number] | undefined {
  const i = text.indexOf("\n", from);
  if (i <= from || i - from > max) return undefined;
  return [text.slice(from, i), i + 1];
}

/** Sends calls and matches the replies arriving on this client's channel. */
export class RedisRpcClient {
  readonly #pending = new Map<string, Pending>();
  readonly #prefix = randomBytes(6).toString("hex");
  /** Every correlation id starts with the compact mark: servers answer `=`/`!` items (replies.ts). */
  readonly #corrBase = `${COMPACT_ID_MARK}${TAKEN_ID_MARK}${this.#prefix}.`;
  readonly #channel: string;
  /** Where stopping instances announce that they left (`leftChannel`). */
  readonly #left: string;
  /** Per alive key of a version: until when (`Date.now()`) calls to it may skip the script. */
  readonly #leases = new Map<string, number>();
  /** Counts announcements and lost connections: a script run that spans one sets no lease. */
  #leftEpoch = 0;
  #seq = 0;
  readonly #batches = new Map<string, Batch>();
  #flushing = false;
  #subscribed: Promise<void> | undefined;
  /** True while the reply channel is subscribed on the current connection (the fast path). */
  #listening = false;
  /** Calls waiting on one instance (sharded, or taken), by correlation id: checked until they settle. */
  readonly #watched = new Map<string, { readonly dest: Dest; readonly frame: string }>();
  #watchTimer: NodeJS.Timeout | undefined;
  #checking = false;
  /** Calls waiting to be sent one by one (`#sendAlone`): not in any list yet. */
  readonly #unsent = new Set<string>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweeping = false;
  #sweepFailing = false;
  /** Per version's list swept less often (long, or declined: `SWEEP_LONG`): the interval and the next sweep's time. */
  readonly #sweepBackoff = new Map<string, { ms: number; next: number }>();
  /** Batches sent and not yet acknowledged by Redis: their calls are not swept (they may not be in the list yet). */
  readonly #unacked = new Set<Batch>();

  constructor(
    private readonly cmd: RedisClient,
    private readonly sub: RedisClient,
    cluster: string,
    private readonly log: Logger,
    private readonly maxBytes: number,
  ) {
    this.#channel = replyChannel(cluster, this.#prefix);
    this.#left = leftChannel(cluster);
    cmd.defineCommand(TAKE_BACK_COMMAND, { lua: TAKE_BACK_SCRIPT, numberOfKeys: 2 });
    cmd.defineCommand(ALIVE_COMMAND, { lua: ALIVE_SCRIPT, numberOfKeys: 1 });
    cmd.defineCommand(UNNOTICED_COMMAND, { lua: UNNOTICED_SCRIPT, numberOfKeys: 3 });
    sub.on("message", (channel: string, message: string) => {
      if (channel === this.#left) this.#onLeft(message);
      else this.#onReply(channel, message);
    });
    sub.on("close", () => this.#onLost());
  }

  /** While calls cannot leave (a connection not ready): the error a call waiting gets at its deadline. */
  stalled(): FanError | undefined {
    return stalled(this.sub) ?? stalled(this.cmd);
  }

  /** Subscribes to the reply channel (again after every reconnection), bounded by `deadline`. */
  async #ensureSubscribed(deadline: number, signal: AbortSignal): Promise<void> {
    if (this.#listening && isReady(this.sub)) return;
    for (;;) {
      await ready(this.sub, deadline, signal);
      this.#subscribed ??= this.sub.subscribe(this.#channel, this.#left).then(() => {
        this.#listening = true;
      });
      try {
        await this.#subscribed;
        return;
      } catch (e) {
        this.#subscribed = undefined;
        if (!notSent(e) || deadline <= Date.now()) throw unavailable("redis reply channel not subscribed", e);
      }
    }
  }

  /** Sends `env` to the version's request list; resolves with the reply or error envelope. */
  call(endpoint: string, env: Envelope, opts: SendOptions): Promise<Envelope> {
    // Not async: a call on the fast path returns the pending reply's own promise (no wrapping
    // promise resolved with it, which would cost a promise and two microtask hops per call).
    let dest: Dest;
    let json: string;
    try {
      dest = destOf(parseEndpoint(endpoint), env.headers.shard !== undefined || opts.instance === true);
      if (opts.signal.aborted) throw new FanError(Code.CANCELLED, "cancelled");
      json = encodeEnvelopeText(withDeadline(env, opts.deadline));
      const size = utf8SizeOver(json, this.maxBytes);
      if (size >= 0) {
        throw new FanError(Code.RESOURCE_EXHAUSTED, `call of ${size} bytes exceeds the limit of ${this.maxBytes}`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    if (!this.#listening || !isReady(this.sub))
      return this.#ensureSubscribed(opts.deadline, opts.signal).then(() => this.#start(dest, json, opts));
    return this.#start(dest, json, opts);
  }

  /** Registers the pending reply and queues (or sends) the request frame. */
  #start(dest: Dest, json: string, opts: SendOptions): Promise<Envelope> {
    const corr = this.#corrBase + ++this.#seq;
    const frame = `${corr}\n${this.#channel}\n${json}`;
    const reply = this.#await(corr, dest.addr, opts);
    if (dest.instance !== "") this.#watch(corr, dest, frame);
    else if (this.#sweepTimer === undefined) {
      this.#sweepTimer = setInterval(() => this.#sweep(), SWEEP_MS);
      this.#sweepTimer.unref();
    }
    if (isReady(this.cmd)) this.#enqueue(dest, corr, frame, opts);
    else this.#sendAlone(dest, corr, frame, opts);
    return reply;
  }

  /** Queues a call for this tick's script run to its version (one command for many calls). */
  #enqueue(dest: Dest, corr: string, frame: string, opts: SendOptions): void {
    const key = dest.list;
    let b = this.#batches.get(key);
    if (b === undefined) {
      b = { dest, frames: [], calls: [] };
      this.#batches.set(key, b);
    }
    b.frames.push(frame);
    b.calls.push({ corr, frame, opts });
    if (b.frames.length >= CALLS_PER_RUN) {
      // Full: sent now, so Redis and the server start on it while this tick makes more calls.
      this.#flush(key, b);
      return;
    }
    if (!this.#flushing) {
      this.#flushing = true;
      process.nextTick(() => this.#flushAll());
    }
  }

  #flushAll(): void {
    this.#flushing = false;
    for (const [key, b] of this.#batches) this.#flush(key, b);
    this.#batches.clear();
  }

  /** Runs the call script for a batch; calls of a batch Redis never got are sent one by one. */
  #flush(key: string, b: Batch): void {
    if (this.#batches.get(key) === b) this.#batches.delete(key);
    this.#runBatch(b, false);
  }

  /** `load`: EVAL (the script's text) instead of EVALSHA, after Redis answered NOSCRIPT. */
  #runBatch(b: Batch, load: boolean): void {
    const d = b.dest;
    this.#unacked.add(b);
    this.#run(d, b.frames, load).then(
      (accepted) => {
        this.#unacked.delete(b);
        if (accepted !== 0) return;
        const e = noLiveInstance(d);
        for (const c of b.calls) this.#pending.get(c.corr)?.settle(e);
      },
      (e: unknown) => {
        if (!load && noScript(e)) {
          // Still unacknowledged: the EVAL may run after a sweep that looks for these calls.
          this.#runBatch(b, true);
          return;
        }
        this.#unacked.delete(b);
        for (const c of b.calls) {
          if (notSent(e)) this.#sendAlone(d, c.corr, c.frame, c.opts);
          else this.#pending.get(c.corr)?.settle(unavailable("redis call not sent", e));
        }
      },
    );
  }

  /**
   * One run of the call script for `frames` to `d`, or, while the client holds a lease on the
   * version, one LPUSH (the file's comment).
   */
  #run(d: Dest, frames: readonly string[], load: boolean): Promise<number> {
    const alive = aliveKey(d.addr);
    const now = Date.now();
    if (d.instance === "") {
      const until = this.#leases.get(alive);
      if (until !== undefined) {
        if (now < until) return (send(this.cmd, "lpush", [d.list, ...frames]) as Promise<unknown>).then(pushed);
        this.#leases.delete(alive);
      }
    }
    const run = send(this.cmd, load ? "eval" : "evalsha", [
      load ? CALL_SCRIPT : CALL_SHA,
      2,
      d.list,
      alive,
      d.instance,
      ...frames,
    ]) as Promise<number>;
    if (d.instance !== "") return run;
    const epoch = this.#leftEpoch;
    return run.then((accepted) => {
      // Counted from when the script was sent, so the lease ends no later than the entry it saw.
      if (accepted > 1 && epoch === this.#leftEpoch) this.#leases.set(alive, now + Math.min(accepted - 1, LEASE_MS));
      return accepted;
    });
  }

  /** An instance announced that it stopped: calls to its version run the script again. */
  #onLeft(alive: string): void {
    this.#leftEpoch++;
    this.#leases.delete(alive);
  }

  #sendAlone(dest: Dest, corr: string, frame: string, opts: SendOptions): void {
    this.#unsent.add(corr);
    this.#send(dest, corr, frame, opts).then(
      () => this.#unsent.delete(corr),
      (e: unknown) => {
        this.#unsent.delete(corr);
        this.#pending.get(corr)?.settle(FanError.from(e, Code.UNAVAILABLE));
      },
    );
  }

  #await(corr: string, addr: RedisAddress, opts: SendOptions): Promise<Envelope> {
    const promise = new Promise<Envelope>(capture);
    const p = new PendingReply(
      this,
      corr,
      addr,
      opts.signal,
      captured.resolve,
      captured.reject,
      Number.isFinite(opts.deadline),
    );
    this.#pending.set(corr, p);
    if (p.finite) deadlines.add(p, opts.deadline);
    watchAbort(opts.signal, p);
    return promise;
  }

  /** Forgets a pending call; false when it was already settled. */
  forget(corr: string): boolean {
    if (this.#watched.size > 0 && this.#watched.delete(corr) && this.#watched.size === 0) this.#unwatchAll();
    return this.#pending.delete(corr);
  }

  #watch(corr: string, dest: Dest, frame: string): void {
    this.#watched.set(corr, { dest, frame });
    if (this.#watchTimer === undefined) {
      this.#watchTimer = setInterval(() => this.#checkOwners(), OWNER_CHECK_MS);
      this.#watchTimer.unref();
    }
  }

  #unwatchAll(): void {
    this.#watched.clear();
    if (this.#watchTimer !== undefined) clearInterval(this.#watchTimer);
    this.#watchTimer = undefined;
  }

  /**
   * One check of every instance that calls wait on: a dead one's calls are taken back and fail.
   * The owners' alive entries are read first (one script run per version's alive set, no
   * frames); only a dead owner's frames go to Redis to be taken back. A dead instance's taken
   * calls fail at once (it popped them: nothing to take back).
   */
  #checkOwners(): void {
    if (this.#checking || !isReady(this.cmd)) return;
    const groups = new Map<string, { dest: Dest; corrs: string[]; frames: string[] }>();
    for (const [corr, w] of this.#watched) {
      const key = w.dest.taken ? `${w.dest.list} ${w.dest.instance}` : w.dest.list;
      let g = groups.get(key);
      if (g === undefined) {
        g = { dest: w.dest, corrs: [], frames: [] };
        groups.set(key, g);
      }
      if (g.frames.length < MAX_BATCH) {
        g.corrs.push(corr);
        g.frames.push(w.frame);
      }
    }
    const byAlive = new Map<string, Array<{ dest: Dest; corrs: string[]; frames: string[] }>>();
    for (const g of groups.values()) {
      const key = g.dest.taken ? runningKey(g.dest.addr) : aliveKey(g.dest.addr);
      const list = byAlive.get(key);
      if (list === undefined) byAlive.set(key, [g]);
      else list.push(g);
    }
    this.#checking = true;
    const alive = (this.cmd as unknown as Record<string, (...a: unknown[]) => Promise<number[]>>)[ALIVE_COMMAND] as (
      ...a: unknown[]
    ) => Promise<number[]>;
    const runs = [...byAlive].map(async ([key, gs]) => {
      const fresh = await alive.call(this.cmd, key, ...gs.map((g) => g.dest.instance));
      await Promise.all(
        gs.map(async (g, i) => {
          if (fresh[i] === 1) return;
          const taken = g.dest.taken ? [] : await this.#takeBack(g.dest, g.frames);
          if (taken === -1) return;
          for (let j = 0; j < g.corrs.length; j++)
            this.#pending.get(g.corrs[j] as string)?.settle(ownerGone(g.dest, taken[j] === 1));
        }),
      );
    });
    Promise.allSettled(runs).then(() => {
      this.#checking = false;
    });
  }

  /**
   * One sweep of the calls to versions' lists that wait without a taken notice (the file's
   * comment): a call seen at an earlier sweep is looked for in its list; one its list no
   * longer holds fails once the longest-lived running entry of when it was found gone has
   * expired, without a notice meanwhile. The timer ends when no call is pending.
   */
  #sweep(): void {
    if (this.#pending.size === 0) {
      clearInterval(this.#sweepTimer);
      this.#sweepTimer = undefined;
      this.#sweepBackoff.clear();
      return;
    }
    if (this.#sweeping || !isReady(this.cmd)) return;
    const now = Date.now();
    const byList = new Map<string, { addr: RedisAddress; corrs: string[] }>();
    // Calls whose push Redis has not acknowledged yet (a batch resent with EVAL after NOSCRIPT).
    let unacked: Set<string> | undefined;
    if (this.#unacked.size > 0) {
      unacked = new Set();
      for (const b of this.#unacked) for (const c of b.calls) unacked.add(c.corr);
    }
    for (const [corr, p] of this.#pending) {
      if (this.#watched.has(corr) || this.#unsent.has(corr) || unacked?.has(corr) === true) continue;
      const u = p.unnoticed;
      if (u === undefined) {
        // Seen now; looked for from the next sweep on (a live taker has noticed it by then).
        p.unnoticed = { outSince: 0, waitMs: 0, exempt: false };
        continue;
      }
      if (u.exempt) continue;
      if (u.outSince > 0 && now - u.outSince < u.waitMs) continue;
      const list = rpcKey(p.addr);
      const back = this.#sweepBackoff.get(list);
      if (back !== undefined && now < back.next) continue;
      let g = byList.get(list);
      if (g === undefined) {
        g = { addr: p.addr, corrs: [] };
        byList.set(list, g);
      }
      if (g.corrs.length < MAX_BATCH) g.corrs.push(corr);
    }
    if (byList.size === 0) return;
    this.#sweeping = true;
    const script = (this.cmd as unknown as Record<string, (...a: unknown[]) => Promise<number[]>>)[
      UNNOTICED_COMMAND
    ] as (...a: unknown[]) => Promise<number[]>;
    const runs = [...byList].map(async ([list, g]) => {
      const found = await script.call(this.cmd, list, aliveKey(g.addr), runningKey(g.addr), ...g.corrs);
      const at = Date.now();
      this.#backOff(list, found, at);
      for (let i = 0; i < g.corrs.length; i++) {
        const corr = g.corrs[i] as string;
        const p = this.#pending.get(corr);
        const u = p?.unnoticed;
        // Settled, or noticed, while the script ran.
        if (p === undefined || u === undefined || this.#watched.has(corr)) continue;
        if (found[0] === -1) u.exempt = true;
        else if (found[0] === -2 || found[i + 3] === 1) u.outSince = 0;
        else if (u.outSince === 0) {
          u.outSince = at;
          // At least one more sweep: a notice on its way when the script ran is read by then.
          u.waitMs = Math.max(found[0] ?? 0, SWEEP_MS);
        } else p.settle(silentTaker(g.addr));
      }
    });
    Promise.allSettled(runs).then((done) => {
      this.#sweeping = false;
      const failed = done.find((d) => d.status === "rejected");
      if (failed === undefined) this.#sweepFailing = false;
      else if (!this.#sweepFailing && isReady(this.cmd)) {
        // Once per run of failures: until one succeeds, a caller whose server died in the
        // turn it took the call in waits for its deadline.
        this.#sweepFailing = true;
        this.log.warn(
          { err: (failed.reason as Error).message },
          "cannot look for redis calls taken without a notice: such a call waits for its deadline",
        );
      }
    });
  }

  /**
   * After a sweep of `list`: while it is long or big (more than `SWEEP_LONG` requests or
   * `SWEEP_BIG` bytes) or was not read (past `SCAN_MAX` requests or `SCAN_MAX_BYTES`), the next sweep of it waits twice as long as
   * the last (up to `SWEEP_BACKOFF_MAX_MS`, jittered by ±25%); once it is short, every sweep.
   */
  #backOff(list: string, found: readonly number[], at: number): void {
    const small = found[0] === -1 || ((found[1] ?? 0) <= SWEEP_LONG && (found[2] ?? 0) <= SWEEP_BIG);
    if (found[0] !== -2 && small) {
      this.#sweepBackoff.delete(list);
      return;
    }
    const ms = Math.min(2 * (this.#sweepBackoff.get(list)?.ms ?? SWEEP_MS), SWEEP_BACKOFF_MAX_MS);
    this.#sweepBackoff.set(list, { ms, next: at + ms * (0.75 + Math.random() / 2) });
  }

  #takeBack(dest: Dest, frames: string[]): Promise<number[] | -1> {
    const script = (this.cmd as unknown as Record<string, (...a: unknown[]) => Promise<number[] | -1>>)[
      TAKE_BACK_COMMAND
    ] as (...a: unknown[]) => Promise<number[] | -1>;
    return script.call(this.cmd, dest.list, aliveKey(dest.addr), dest.instance, ...frames);
  }

  /** Announces a cancelled call to the server running it. */
  cancelled(addr: RedisAddress, corr: string): void {
    this.#sendCancel(addr, corr);
  }

  /** Runs the call script, waiting for Redis (bounded by the deadline) while it is away. */
  async #send(dest: Dest, corr: string, frame: string, opts: SendOptions): Promise<void> {
    for (;;) {
      if (!this.#pending.has(corr)) return;
      if (!isReady(this.cmd)) await ready(this.cmd, opts.deadline, opts.signal);
      try {
        let accepted: number;
        try {
          accepted = await this.#run(dest, [frame], false);
        } catch (e) {
          if (!noScript(e)) throw e;
          accepted = await this.#run(dest, [frame], true);
        }
        if (accepted === 0) throw noLiveInstance(dest);
        return;
      } catch (e) {
        if (FanError.is(e) || !notSent(e) || opts.deadline <= Date.now()) throw unavailable("redis call not sent", e);
      }
    }
  }

  #sendCancel(addr: RedisAddress, corr: string): void {
    this.cmd
      .publish(cancelChannel(addr), `${this.#channel} ${corr}`)
      .catch((e: unknown) => this.log.debug({ err: (e as Error).message }, "redis cancel not sent"));
  }

  /**
   * A reply frame carries one or more `{corr}\n{reply}` pairs, one per line; a reply is an
   * envelope's JSON, or from a server that reads the compact mark, `=` or `!` and a payload's.
   */
  #onReply(channel: string, message: string): void {
    if (channel !== this.#channel) return;
    let pos = 0;
    while (pos < message.length) {
      const head = splitLine(message, pos);
      if (head === undefined) return;
      let end = message.indexOf("\n", head[1]);
      if (end < 0) end = message.length;
      this.#settleReply(head[0], message.slice(head[1], end));
      pos = end + 1;
    }
  }

  #settleReply(corr: string, json: string): void {
    const p = this.#pending.get(corr);
    if (p === undefined) return;
    if (json.startsWith(TAKEN_NOTICE)) this.#taken(corr, p, json.slice(1));
    else p.settle(decodeFrameReply(json, this.maxBytes, p.service));
  }

  /** A server says it took the call off the version's list and still runs it: watched from now. */
  #taken(corr: string, p: Pending, instance: string): void {
    if (instance === "" || this.#watched.has(corr)) return;
    const addr = { ...p.addr, instance };
    this.#watch(corr, { addr, list: rpcKey(addr), instance, taken: true }, "");
  }

  /** The reply connection dropped: replies published meanwhile are lost, so pending calls fail. */
  #onLost(): void {
    // Announcements sent while the connection was away are lost with it.
    this.#leftEpoch++;
    this.#leases.clear();
    this.#subscribed = undefined;
    this.#listening = false;
    for (const p of [...this.#pending.values()])
      p.settle(new FanError(Code.UNAVAILABLE, "redis connection lost while the call was in flight"));
  }

  /** Fails every pending call and closes the reply connection. */
  close(): void {
    this.#unwatchAll();
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    for (const p of [...this.#pending.values()]) p.settle(new FanError(Code.UNAVAILABLE, "redis transport closed"));
    disconnect(this.sub);
  }
}

/** The list a call goes to: the instance's for sharded calls (when the endpoint names one). */
function destOf(addr: RedisAddress, sharded: boolean): Dest {
  return sharded && addr.instance !== undefined
    ? { addr, list: instanceRpcKey(addr), instance: addr.instance, taken: false }
    : { addr, list: rpcKey(addr), instance: "", taken: false };
}

/**
 * A watched call's owner left the alive set: taken back unsent, or lost with the owner while it
 * ran. Marked lost with the owner (call/lost.ts: the retry budget counts its death once).
 */
function ownerGone(d: Dest, takenBack: boolean): FanError {
  const who = `instance ${d.instance} of ${d.addr.service}@${d.addr.version} on redis`;
  const key = d.instance === "" ? `redis ${d.list}` : d.instance;
  if (d.taken)
    return lostWith(
      new FanError(Code.UNAVAILABLE, `${who} took the call and is no longer alive; the call may have run there`),
      key,
    );
  if (takenBack)
    return lostWith(
      notDelivered(new FanError(Code.UNAVAILABLE, `${who} is no longer alive; the call was taken back before it ran`)),
      key,
    );
  return lostWith(
    new FanError(Code.UNAVAILABLE, `${who} is no longer alive; the call may have started there and got no reply`),
    key,
  );
}

/**
 * A call its list no longer holds, whose taker said nothing and whose entry has expired since:
 * marked lost with an unnamed taker of the list (call/lost.ts), so that the calls one dead
 * taker held count once in the retry budget.
 */
function silentTaker(addr: RedisAddress): FanError {
  return lostWith(
    new FanError(
      Code.UNAVAILABLE,
      `an instance of ${addr.service}@${addr.version} on redis took the call and was lost before it said so; the call may have run there`,
    ),
    `redis ${rpcKey(addr)}`,
  );
}

function noLiveInstance(d: Dest): FanError {
  const who = d.instance === "" ? "no live instance of" : `instance ${d.instance} is not alive:`;
  // The script pushed nothing: no server can have seen it.
  return notDelivered(new FanError(Code.UNAVAILABLE, `${who} ${d.addr.service}@${d.addr.version} on redis`));
}

/** One call waiting for its reply: settles once (reply, error, deadline or cancellation). */
class PendingReply implements Pending, AbortTarget {
  bucket = 0;
  prev: Expirable | undefined = undefined;
  next: Expirable | undefined = undefined;
  unnoticed: Unnoticed | undefined = undefined;

  constructor(
    private readonly client: RedisRpcClient,
    private readonly corr: string,
    readonly addr: RedisAddress,
    private readonly signal: AbortSignal,
    private readonly resolve: (v: Envelope) => void,
    private readonly reject: (e: unknown) => void,
    readonly finite: boolean,
  ) {}

  get service(): string {
    return this.addr.service;
  }

  expire(): void {
    this.settle(new FanError(Code.DEADLINE_EXCEEDED, `no reply from ${this.addr.service} before the deadline`));
  }

  aborted(): void {
    this.settle(new FanError(Code.CANCELLED, "cancelled"));
    this.client.cancelled(this.addr, this.corr);
  }

  settle(result: Envelope | FanError): void {
    if (!this.client.forget(this.corr)) return;
    if (this.finite) deadlines.remove(this);
    unwatchAbort(this.signal, this);
    if (result instanceof FanError) this.reject(result);
    else this.resolve(result);
  }
}
