/**
 * The serving side of redis rpc: a loop on a dedicated connection pops requests from the
 * instance's own list (sharded calls) and then the version's, in batches (BLMPOP with a count;
 * Redis 7), bounded by `maxInFlight`;
 * replies go to the caller's channel (written with the next pop when ready by then). The instance keeps itself in the version's alive set
 * while it serves (on a timer, and at once whenever the connection to Redis is ready again),
 * and listens on the cancel channel for calls it is running. A call taken off the version's list
 * that is still running at the end of the loop's turn is announced to its caller (a taken
 * notice, rpc-client.ts), which then watches this instance in the running set: the instance
 * stays there while it serves, and after it stopped until the calls it took have answered.
 */
import { Cluster, Redis } from "ioredis";
import type { Logger } from "pino";
import type { ServiceDescriptor } from "../../descriptor.js";
import { Code, FanError } from "../../errors.js";
import { LazyAbort } from "../abort.js";
import type { Envelope, Inbound } from "../transport.js";
import { decodeEnvelope, utf8SizeOver } from "../../codec/wire.js";
import { disconnect, isReady, ready, type RedisClient, send, unblock } from "./clients.js";
import {
  aliveKey,
  cancelChannel,
  instanceRpcKey,
  leftChannel,
  rpcKey,
  runningKey,
  type RedisAddress,
} from "./names.js";
import { splitLine, TAKEN_NOTICE, wantsTakenNotice } from "./rpc-client.js";
import { encodeFrameReply, errorEnvelope, refuse, ReplySink, runWithSink, wantsCompactReply } from "../replies.js";
import { handlePush } from "../owner-push.js";
import { warnDropped } from "../../telemetry/drops.js";

/** ZADD this instance to each sorted set KEYS[i] with an expiry in Redis time and drop expired ones. */
const ALIVE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  redis.call('ZADD', KEYS[i], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2]) * 2)
end
return 1`;

/** What ioredis's Cluster emits when a node's connection is lost (`#nodeLost`). */
const NODE_LOST = ["-node", "node error"] as const;

/** Not the client's alive check (`fanRpcCheckAlive`): the two share a connection in an App that serves and calls. */
const ALIVE_COMMAND = "fanRpcHeartbeat";

/** Server-side tuning. */
export interface RpcServerOptions {
  readonly batch: number;
  readonly maxInFlight: number;
  readonly blockMs: number;
  readonly aliveTtlMs: number;
  readonly maxBytes: number;
  readonly log: Logger;
}

export interface Request {
  readonly corr: string;
  readonly channel: string;
  readonly json: string;
}

/** Parses a request frame; undefined when it has no reply address. */
function parseRequest(item: string): Request | undefined {
  const first = splitLine(item);
  if (first === undefined) return undefined;
  const second = splitLine(item, first[1]);
  if (second === undefined) return undefined;
  return { corr: first[0], channel: second[0], json: item.slice(second[1]) };
}

/** One served call's sink: its reply goes to the server with the request it answers. */
class RedisReplySink extends ReplySink {
  constructor(
    private readonly server: RedisRpcServer,
    private readonly key: string,
    private readonly req: Request,
    env: Envelope,
  ) {
    super(env, server.version);
  }

  protected answer(reply: Envelope): void {
    this.server.answer(this.key, this.req, reply);
  }
}

/** One served instance's rpc side. */
export class RedisRpcServer {
  readonly #addr: RedisAddress;
  readonly #inFlight = new Map<string, LazyAbort>();
  /** Replies handed to Redis but not yet acknowledged by it, and who waits for them (close). */
  #sending = 0;
  #allSent: (() => void) | undefined;
  /** Replies of this tick per reply channel, published together. */
  readonly #outbox = new Map<string, { parts: string[]; bytes: number }>();
  #flushing = false;
  /** Replies queued now wait for the loop's next pop (written with it) instead of a tick flush. */
  #holding = false;
  readonly #log: Logger;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #aliveTimer: NodeJS.Timeout | undefined;
  #slot: (() => void) | undefined;
  /** Ends the loop's wait for the batch's replies (see `#settled`), while it waits. */
  #wake: (() => void) | undefined;
  /** The in-flight count at which the batch being waited for has replied. */
  #wakeAt = 0;

  constructor(
    private readonly cmd: RedisClient,
    private readonly blk: RedisClient,
    private readonly sub: RedisClient,
    cluster: string,
    private readonly service: ServiceDescriptor,
    private readonly instanceId: string,
    private readonly inbound: Inbound,
    private readonly opts: RpcServerOptions,
  ) {
    this.#addr = { cluster, service: service.name, version: service.version, instance: instanceId };
    this.#log = opts.log.child({ service: service.name, instanceId });
    // The number of keys comes with each run: the alive and running sets, or after stop the running set only.
    cmd.defineCommand(ALIVE_COMMAND, { lua: ALIVE_SCRIPT });
  }

  /** Announces the instance, subscribes to cancellations and starts popping requests. */
  /** Waits for the connections (until `deadline`, or `signal`: the transport closing), then serves. */
  async start(deadline: number, signal?: AbortSignal): Promise<void> {
    await Promise.all([
      ready(this.cmd, deadline, signal),
      ready(this.sub, deadline, signal),
      ready(this.blk, deadline, signal),
    ]);
    await this.sub.subscribe(cancelChannel(this.#addr));
    this.sub.on("message", (channel: string, message: string) => this.#onCancel(channel, message));
    this.sub.on("ready", () => void this.sub.subscribe(cancelChannel(this.#addr)).catch(() => undefined));
    await this.#alive();
    // Back in the alive set as soon as Redis is (callers are refused until then), not on the timer.
    this.cmd.on("ready", this.#announce);
    this.cmd.on("close", this.#entryLost);
    // A Cluster emits neither on a node's restart, only these (and the pop fails: `#run`).
    if (this.cmd instanceof Cluster) for (const e of NODE_LOST) this.cmd.on(e, this.#nodeLost);
    this.#aliveTimer = setInterval(this.#announce, Math.max(50, Math.floor(this.opts.aliveTtlMs / 3))).unref();
    this.#loop = this.#run();
  }

  /** Whether the last heartbeat failed (its warning is logged once per run of failures). */
  #beatFailing = false;

  /**
   * Renews this instance's alive and running entries; a failure is a warning, as callers stop
   * reaching it once the entry expires. After stop, the running entry only, while calls it
   * took still run (their callers watch it), then the timer ends.
   */
  readonly #announce = (): void => {
    if (this.#loopDone && this.#inFlight.size === 0) {
      this.#leaveRunning();
      return;
    }
    const losses = this.#losses;
    this.#alive().then(
      (r) => {
        if (r !== 1) {
          this.#beatFailed(new Error(`the heartbeat script answered ${JSON.stringify(r)}, not 1`));
          return;
        }
        // Only a heartbeat sent after the last loss shows the entries are back.
        if (losses === this.#losses) this.#entryBack();
        if (this.#beatFailing) {
          this.#beatFailing = false;
          this.#log.info("redis alive entry renewed again");
        }
      },
      (e: unknown) => this.#beatFailed(e),
    );
  };

  /**
   * False from the moment the command connection closes until a heartbeat written after that
   * succeeded: a Redis restarted without its data (or an outage longer than the entries live)
   * has lost this instance's alive and running entries, and the blocking connection may be
   * back first. A call popped then would get its taken notice, and its caller, finding no
   * running entry, would fail it as taken by a dead instance; so the loop does not pop until
   * the entries are written again.
   */
  #entryWritten = true;
  /** Ends the loop's wait for the entries (see `#entryWritten`), while it waits. */
  #entryWait: (() => void) | undefined;

  /** Counts losses of the entries (`#entryLost`): a heartbeat sent before the last one proves nothing. */
  #losses = 0;

  readonly #entryLost = (): void => {
    this.#entryWritten = false;
    this.#losses++;
  };

  /**
   * A Cluster's node was lost, or the blocking pop failed (the connection it used closed): the
   * entries may be gone with it, so the loop waits for a heartbeat from now on, sent at once.
   * On a Cluster this is the only sign (ioredis's Cluster emits no close or ready when a node
   * restarts), and on a standalone connection it comes with the close.
   */
  readonly #nodeLost = (): void => {
    if (this.#stopped) return;
    this.#entryLost();
    this.#announce();
  };

  #entryBack(): void {
    this.#entryWritten = true;
    this.#entryWait?.();
  }

  /** Resolves once the entries are written again (`#entryWritten`), or after `ms`. */
  #entryRewritten(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#entryWait = undefined;
        resolve();
      }, ms);
      this.#entryWait = () => {
        clearTimeout(timer);
        this.#entryWait = undefined;
        resolve();
      };
    });
  }

  #beatFailed(e: unknown): void {
    if (this.#beatFailing || this.#stopped) return;
    this.#beatFailing = true;
    this.#log.warn(
      { err: (e as Error).message, aliveTtlMs: this.opts.aliveTtlMs },
      "cannot renew this instance's redis alive entry: callers stop reaching it once the entry expires",
    );
  }

  #alive(): Promise<unknown> {
    const run = (this.cmd as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[ALIVE_COMMAND] as (
      ...a: unknown[]
    ) => Promise<unknown>;
    const keys = this.#stopped ? [runningKey(this.#addr)] : [aliveKey(this.#addr), runningKey(this.#addr)];
    return run.call(this.cmd, keys.length, ...keys, this.instanceId, this.opts.aliveTtlMs);
  }

  /**
   * Set once the pop loop has ended after stop: until then a pop already waiting in Redis may
   * still take a call (and send its caller a taken notice), so the running entry stays.
   */
  #loopDone = false;

  /** Ends the heartbeat and leaves the running set (stopped, and no call of this instance runs). */
  #leaveRunning(): void {
    if (this.#aliveTimer !== undefined) clearInterval(this.#aliveTimer);
    this.#aliveTimer = undefined;
    this.cmd.zrem(runningKey(this.#addr), this.instanceId).catch(() => undefined);
  }

  #onCancel(channel: string, message: string): void {
    if (channel !== cancelChannel(this.#addr)) return;
    this.#inFlight.get(message)?.abort();
  }

  async #run(): Promise<void> {
    // The instance's own list first (sharded calls for this owner), then the version's.
    const keys = [instanceRpcKey(this.#addr), rpcKey(this.#addr)];
    while (!this.#stopped) {
      try {
        if (!isReady(this.blk) || !this.#entryWritten || this.#inFlight.size >= this.opts.maxInFlight) {
          // Not popping at once: replies held for the next pop go out on their own.
          this.#release();
          if (!isReady(this.blk)) await ready(this.blk, Date.now() + this.opts.blockMs);
          if (!this.#entryWritten) {
            // Bounded, so that a stop is seen.
            await this.#entryRewritten(this.opts.blockMs);
            continue;
          }
          await this.#capacity();
          if (this.#stopped) break;
        }
        const room = Math.min(this.opts.batch, this.opts.maxInFlight - this.#inFlight.size);
        const got = await this.#pop(keys, room);
        const items = got === null ? [] : got[1];
        if (items.length === 0) continue;
        // Replies of this batch that are ready by the end of the turn are held for the next
        // pop and written with it (one write, no command of its own on the shared connection).
        this.#holding = true;
        const before = this.#inFlight.size;
        const taken: Request[] = [];
        const shared = got?.[0] === keys[1];
        for (const item of items) {
          const req = this.#handle(item, got?.[0] ?? keys[1]);
          if (shared && req !== undefined && wantsTakenNotice(req.corr)) taken.push(req);
        }
        // A lone request (c=1) is answered with the next pop as soon as it has replied: at once
        // when its handler answered in this run, else when its reply comes or the turn ends.
        // A batch of several waits for the end of the turn, so replies and the caller's next
        // calls gather (popping again at once made smaller batches and cost CPU at c=64).
        if (items.length > 1) await new Promise<void>((r) => setImmediate(r));
        else if (this.#inFlight.size > before) await this.#settled(before);
        this.#noteTaken(taken);
      } catch (e) {
        this.#release();
        if (!this.#stopped) {
          this.#nodeLost();
          await this.#pause(e);
        }
      }
    }
    this.#release();
  }

  /**
   * One BLMPOP of up to `room` requests (it answers at once when a list holds any, so an idle
   * loop costs one command per wakeup, not an LMPOP that comes back empty and then a BLMPOP).
   * The replies held since the last pop are PUBLISHed on the same connection just before it,
   * in the same write: Redis answers them before it blocks.
   */
  #pop(keys: readonly string[], room: number): Promise<[string, string[]] | null> {
    const stream = this.#holding && this.#outbox.size > 0 && this.blk instanceof Redis ? this.blk.stream : undefined;
    this.#holding = false;
    if (stream === undefined) this.#flushReplies();
    else {
      stream.cork();
      for (const [channel, box] of this.#outbox) this.#publish(this.blk, channel, box.parts.join("\n"));
      this.#outbox.clear();
    }
    try {
      return send(this.blk, "blmpop", [this.opts.blockMs / 1000, 2, ...keys, "RIGHT", "COUNT", room]) as Promise<
        [string, string[]] | null
      >;
    } finally {
      stream?.uncork();
    }
  }

  /**
   * Resolves once the in-flight count is back to `size` (the batch just handled has replied)
   * or at the end of this turn (setImmediate), whichever comes first: a batch whose handlers
   * answer within microtasks is written without waiting for the turn to end.
   */
  #settled(size: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const imm = setImmediate(() => {
        this.#wake = undefined;
        resolve();
      });
      this.#wakeAt = size;
      this.#wake = () => {
        clearImmediate(imm);
        this.#wake = undefined;
        resolve();
      };
    });
  }

  /** Stops holding replies for the next pop; those held go out now. */
  #release(): void {
    if (!this.#holding) return;
    this.#holding = false;
    this.#flushReplies();
  }

  async #pause(e: unknown): Promise<void> {
    if (isReady(this.blk)) this.#log.warn({ err: (e as Error).message }, "redis rpc loop error");
    await new Promise((r) => setTimeout(r, 50));
  }

  #capacity(): Promise<void> {
    if (this.#inFlight.size < this.opts.maxInFlight) return Promise.resolve();
    return new Promise((resolve) => {
      this.#slot = resolve;
    });
  }

  /**
   * Tells the callers of the calls in `taken` still running that this instance took them (a
   * taken notice, held like a reply): their callers watch it from then on (rpc-client.ts).
   * Calls that answered within the turn cost nothing.
   */
  #noteTaken(taken: readonly Request[]): void {
    if (this.#inFlight.size === 0) return;
    for (const req of taken)
      if (this.#inFlight.has(`${req.channel} ${req.corr}`))
        this.#queueReply(req.channel, `${req.corr}\n${TAKEN_NOTICE}${this.instanceId}`);
  }

  /** Handles one request item; the request when it went to a handler. */
  #handle(item: string, list: string): Request | undefined {
    const req = parseRequest(item);
    if (req === undefined) {
      warnDropped(
        this.#log,
        { transport: "redis", endpoint: list, reason: "no reply address" },
        { list, length: item.length },
        "redis rpc request without a reply address dropped",
      );
      return undefined;
    }
    let env: Envelope;
    try {
      env = decodeEnvelope(req.json, { maxBytes: this.opts.maxBytes });
      if (env.kind !== "call" && env.kind !== "push")
        throw new FanError(Code.INVALID_ARGUMENT, `expected a call or push, got a ${env.kind}`);
      const refused = refuse(this.service, env, "this list");
      if (refused !== undefined) throw refused;
    } catch (e) {
      const err = FanError.from(e, Code.INVALID_ARGUMENT);
      if (err.code !== Code.NOT_FOUND && err.code !== Code.UNIMPLEMENTED)
        warnDropped(
          this.#log,
          { transport: "redis", endpoint: list, reason: "undecodable" },
          { list, err: err.message, channel: req.channel },
          "undecodable redis call refused (INVALID_ARGUMENT)",
        );
      this.#reply(req, errorEnvelope(req.corr, undefined, err));
      return undefined;
    }
    this.#dispatch(req, env);
    return req;
  }

  #dispatch(req: Request, env: Envelope): void {
    const key = `${req.channel} ${req.corr}`;
    const ac = new LazyAbort();
    this.#inFlight.set(key, ac);
    if (env.kind === "push") {
      // A @shard push to this owner (owner-push.ts): acknowledged to the producer once handled.
      handlePush(this.inbound, env).then((reply) => this.#done(key, req, reply));
      return;
    }
    // The dispatcher reports to a sink: a synchronous handler's reply is queued before `run` returns.
    if (runWithSink(this.inbound, env, ac, new RedisReplySink(this, key, req, env))) return;
    // Inline anonymous reactions (no named closure per call: tsx's keepNames wraps those in a
    // defineProperty call).
    this.inbound.call(env, ac).then(
      (reply: Envelope) => this.#done(key, req, reply),
      (e: unknown) => this.#done(key, req, errorEnvelope(env.id, env, FanError.from(e))),
    );
  }

  /** The served version (reply envelopes name it). */
  get version(): string {
    return this.service.version;
  }

  /** A call's outcome, from its ReplySink. */
  answer(key: string, req: Request, reply: Envelope): void {
    this.#done(key, req, reply);
  }

  #done(key: string, req: Request, reply: Envelope): void {
    this.#inFlight.delete(key);
    this.#slot?.();
    this.#slot = undefined;
    this.#reply(req, reply);
    if (this.#wake !== undefined && this.#inFlight.size <= this.#wakeAt) this.#wake();
  }

  #reply(req: Request, reply: Envelope): void {
    // A caller whose correlation id carries the compact mark reads `=`/`!` replies (replies.ts).
    const compact = wantsCompactReply(req.corr);
    let json = encodeFrameReply(reply, compact);
    const size = utf8SizeOver(json, this.opts.maxBytes);
    if (size >= 0) {
      const e = new FanError(
        Code.RESOURCE_EXHAUSTED,
        `reply of ${size} bytes exceeds the limit of ${this.opts.maxBytes}`,
      );
      json = encodeFrameReply(errorEnvelope(reply.id, reply, e), compact);
    }
    this.#queueReply(req.channel, `${req.corr}\n${json}`);
  }

  /** Queues a reply pair for this tick's PUBLISH to its channel (sent at once past 1 MiB). */
  #queueReply(channel: string, pair: string): void {
    let box = this.#outbox.get(channel);
    if (box === undefined) {
      box = { parts: [], bytes: 0 };
      this.#outbox.set(channel, box);
    }
    box.parts.push(pair);
    box.bytes += pair.length;
    if (box.bytes > 1 << 20) {
      this.#outbox.delete(channel);
      this.#publish(this.cmd, channel, box.parts.join("\n"));
    } else if (!this.#flushing && !this.#holding) {
      this.#flushing = true;
      process.nextTick(() => this.#flushReplies());
    }
  }

  #flushReplies(): void {
    this.#flushing = false;
    for (const [channel, box] of this.#outbox) this.#publish(this.cmd, channel, box.parts.join("\n"));
    this.#outbox.clear();
  }

  #publish(client: RedisClient, channel: string, frame: string): void {
    // One reaction, made once (a counter instead of a set of derived promises).
    this.#sending++;
    client.publish(channel, frame).then(this.#sent, this.#notSent);
  }

  readonly #sent = (): void => {
    if (--this.#sending === 0) this.#allSent?.();
  };

  readonly #notSent = (e: unknown): void => {
    this.#log.warn({ err: (e as Error).message }, "redis reply not sent");
    this.#sent();
  };

  /** Stops popping requests and leaves the alive set; calls in flight still get their replies. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.cmd.off("ready", this.#announce);
    this.cmd.off("close", this.#entryLost);
    if (this.cmd instanceof Cluster) for (const e of NODE_LOST) this.cmd.off(e, this.#nodeLost);
    this.#slot?.();
    this.#entryWait?.();
    await this.cmd.zrem(aliveKey(this.#addr), this.instanceId).catch(() => undefined);
    // Callers pushing on a lease (rpc-client.ts) ask again on their next call: refused at once
    // when this was the version's last instance, as with no lease.
    await this.cmd.publish(leftChannel(this.#addr.cluster), aliveKey(this.#addr)).catch(() => undefined);
    await unblock(this.cmd, this.blk);
    await this.#loop;
    // Only now: the blocked pop could take a call until the loop ended (its caller, told which
    // instance took it, watches the running entry). The timer goes on renewing the entry while
    // calls this instance took still run.
    this.#loopDone = true;
    if (this.#inFlight.size === 0) this.#leaveRunning();
    disconnect(this.blk);
  }

  /** Calls whose handler has not answered yet. */
  get busy(): number {
    return this.#inFlight.size;
  }

  /** Aborts calls still running and waits up to `graceMs` for their replies to reach Redis. */
  async close(graceMs: number): Promise<void> {
    for (const ac of this.#inFlight.values()) ac.abort();
    const until = Date.now() + graceMs;
    while (this.#inFlight.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    this.#flushReplies();
    // After the replies, on the same connection: their callers read them before the watch could fail them.
    this.#leaveRunning();
    if (this.#sending === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#allSent = resolve;
      timer = setTimeout(resolve, Math.max(0, until - Date.now()));
    });
    this.#allSent = undefined;
    clearTimeout(timer);
  }
}
