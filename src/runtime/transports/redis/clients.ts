/**
 * ioredis connections of the redis transport. Standalone, Sentinel (`sentinels` + `name` in
 * the ioredis options) and Redis Cluster options pass through untouched, except that every
 * connection runs without ioredis's offline queue and without resending commands after a
 * reconnect: a command issued while Redis is away fails at once, and the transport decides
 * whether to wait for Redis (bounded by the caller's deadline) or to fail.
 */
import { Cluster, Command, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from "ioredis";
import type { Logger } from "pino";
import { Code, FanError } from "../../errors.js";
import { onAbort } from "../abort.js";
import { atDeadline } from "../deadline-timer.js";
import { redactUrl, tlsReason, tlsRefusal } from "../tls-refusal.js";

/** A standalone, Sentinel-managed or cluster connection. */
export type RedisClient = Redis | Cluster;

/** How to reach Redis. */
export interface RedisConnectOptions {
  /** `redis://[user:password@]host:port[/db]`; default `redis://127.0.0.1:6379`. */
  readonly url?: string;
  /** ioredis options, passed through (for Sentinel: `sentinels` and `name`). */
  readonly redis?: RedisOptions;
  /** Redis Cluster: startup nodes and ioredis cluster options, passed through. */
  readonly cluster?: { readonly nodes: readonly ClusterNode[]; readonly options?: ClusterOptions };
}

/** What a connection is for: `cmd` is shared and auto-pipelined, the others are dedicated. */
export type Role = "cmd" | "sub" | "block";

/** Commands the shared connection sends at once: PUBLISH (the rpc call script goes through `send`, never pipelined). */
const UNPIPELINED = ["publish"] as const;

/** Creates one connection for `role`; its errors are logged, never thrown at the process. */
export function connect(o: RedisConnectOptions, role: Role, name: string, log: Logger): RedisClient {
  const mine = {
    enableOfflineQueue: false,
    enableAutoPipelining: role === "cmd",
    // The rpc hot path batches itself (one call script run per tick and list, one PUBLISH per
    // tick and reply channel): auto-pipelining those again only added a setImmediate hop and a
    // Pipeline per command.
    autoPipeliningIgnoredCommands: role === "cmd" ? [...UNPIPELINED] : [],
    autoResubscribe: false,
  };
  const perRequest = { maxRetriesPerRequest: 0, connectionName: name };
  let client: RedisClient;
  if (o.cluster !== undefined) {
    const options = o.cluster.options ?? {};
    client = new Cluster([...o.cluster.nodes], {
      ...options,
      ...mine,
      redisOptions: { ...options.redisOptions, ...perRequest },
    });
  } else if (o.url !== undefined) {
    client = new Redis(o.url, { ...o.redis, ...mine, ...perRequest });
  } else {
    client = new Redis({ host: "127.0.0.1", port: 6379, ...o.redis, ...mine, ...perRequest });
  }
  // Every call sent while the connection is (re)connecting waits on "ready" (`ready()` below):
  // hundreds of listeners under load are expected, not a leak (Node warned at 11).
  client.setMaxListeners(0);
  where.set(client, whereOf(o));
  track(client, role, log);
  if (role === "block") learnId(client);
  return client;
}

const blockedIds = new WeakMap<RedisClient, number>();

/** Remembers a standalone connection's CLIENT ID (after every reconnection), for `unblock`. */
function learnId(client: RedisClient): void {
  if (client instanceof Cluster) return;
  const learn = (): void => {
    send(client, "CLIENT", ["ID"]).then(
      (id) => blockedIds.set(client, Number(id)),
      () => undefined,
    );
  };
  client.on("ready", learn);
}

/** Wakes a blocking command on `blk` (as if it timed out) so its loop can stop now; never throws. */
export async function unblock(cmd: RedisClient, blk: RedisClient): Promise<void> {
  const id = blockedIds.get(blk);
  if (id === undefined || !isReady(cmd)) return;
  await send(cmd, "CLIENT", ["UNBLOCK", id]).catch(() => undefined);
}

const downSince = new WeakMap<RedisClient, string>();
/**
 * Why the last connection attempt failed its TLS handshake on a certificate; cleared when it is
 * ready again or an attempt fails for another reason (a restart after the certificate was fixed).
 */
const refusedTls = new WeakMap<RedisClient, string>();
/** Where a connection goes (URL without password, or the cluster's nodes), for error messages. */
const where = new WeakMap<RedisClient, string>();

function whereOf(o: RedisConnectOptions): string {
  if (o.cluster !== undefined)
    return o.cluster.nodes.map((n) => (typeof n === "object" ? `${n.host}:${n.port}` : redactUrl(String(n)))).join(",");
  if (o.url !== undefined) return redactUrl(o.url);
  return `${o.redis?.tls === undefined ? "redis" : "rediss"}://${o.redis?.host ?? "127.0.0.1"}:${o.redis?.port ?? 6379}`;
}

/** The error of a call while `client`'s TLS handshake is refused (see tls-refusal.ts). */
function refusal(client: RedisClient, why: string): FanError {
  return new FanError(Code.UNAVAILABLE, `redis ${where.get(client) ?? ""}: TLS handshake failed: ${why}`);
}

function track(client: RedisClient, role: Role, log: Logger): void {
  client.on("error", (e: Error) => {
    if (!downSince.has(client)) log.warn({ role, at: where.get(client), err: e.message }, "redis connection error");
    downSince.set(client, e.message);
    if (tlsRefusal(e)) refusedTls.set(client, tlsReason(e));
    else refusedTls.delete(client);
  });
  client.on("close", () => {
    if (!downSince.has(client)) downSince.set(client, "connection closed");
  });
  client.on("ready", () => {
    if (downSince.has(client)) log.info({ role }, "redis connection back");
    downSince.delete(client);
    refusedTls.delete(client);
  });
}

const TEXT_REPLIES = { replyEncoding: "utf8" } as const;
const BUFFER_REPLIES = { replyEncoding: null };

/** An argument of a raw command. */
export type Arg = string | number | Buffer;

/**
 * Sends one command as it is written (not through auto-pipelining, which loses the command
 * name of `call`/`callBuffer` in ioredis 5). Replies are strings, or Buffers with `buffers`.
 */
export function send(client: RedisClient, name: string, args: readonly Arg[], buffers = false): Promise<unknown> {
  // Command copies its arguments (it flattens them): no copy of our own.
  const c = new Command(name, args as Arg[], buffers ? BUFFER_REPLIES : TEXT_REPLIES);
  client.sendCommand(c);
  return c.promise;
}

/** True when the connection can take commands now. */
export function isReady(client: RedisClient): boolean {
  return client.status === "ready";
}

/** While the connection is not ready: the error of a call that waited for it until its deadline. */
export function stalled(client: RedisClient): FanError | undefined {
  if (client.status === "ready") return undefined;
  if (client.status === "end") return new FanError(Code.UNAVAILABLE, "redis transport closed");
  const refused = refusedTls.get(client);
  return refused === undefined ? late(client) : refusal(client, refused);
}

function late(client: RedisClient): FanError {
  const down = downSince.get(client);
  return down === undefined
    ? new FanError(Code.DEADLINE_EXCEEDED, `redis connection (${where.get(client)}) not ready before the deadline`)
    : new FanError(Code.UNAVAILABLE, `redis unreachable until the deadline (${where.get(client)}): ${down}`);
}

/**
 * Resolves when the connection is ready; at the deadline rejects with UNAVAILABLE when Redis
 * is known to be down (DEADLINE_EXCEEDED while it is merely still connecting), CANCELLED when
 * `signal` aborts. A TLS handshake that failed on a certificate rejects at once (UNAVAILABLE).
 */
export function ready(client: RedisClient, deadline: number, signal?: AbortSignal): Promise<void> {
  if (client.status === "ready") return Promise.resolve();
  if (client.status === "end") return Promise.reject(new FanError(Code.UNAVAILABLE, "redis transport closed"));
  if (signal?.aborted === true) return Promise.reject(new FanError(Code.CANCELLED, "cancelled"));
  const refused = refusedTls.get(client);
  if (refused !== undefined) return Promise.reject(refusal(client, refused));
  return new Promise<void>((resolve, reject) => {
    const timer = atDeadline(deadline, () => done(late(client)));
    const onReady = (): void => done();
    const onEnd = (): void => done(new FanError(Code.UNAVAILABLE, "redis transport closed"));
    const onError = (e: Error): void => {
      if (tlsRefusal(e)) done(refusal(client, tlsReason(e)));
    };
    const done = (err?: FanError): void => {
      timer?.clear();
      client.off("ready", onReady);
      client.off("end", onEnd);
      client.off("error", onError);
      stopListening();
      if (err === undefined) resolve();
      else reject(err);
    };
    client.on("ready", onReady);
    client.on("end", onEnd);
    client.on("error", onError);
    const stopListening =
      signal === undefined ? () => undefined : onAbort(signal, () => done(new FanError(Code.CANCELLED, "cancelled")));
  });
}

/** True for errors that mean the command never reached Redis (safe to send again). */
export function notSent(e: unknown): boolean {
  return e instanceof Error && /enableOfflineQueue|Connection is closed|isn't writeable/i.test(e.message);
}

/** Closes a connection at once (pending commands fail); never throws. */
export function disconnect(client: RedisClient): void {
  try {
    client.disconnect();
  } catch {
    // already closed
  }
}

/** A FanError for a Redis failure during a send. */
export function unavailable(what: string, e: unknown): FanError {
  if (FanError.is(e)) return e;
  return new FanError(Code.UNAVAILABLE, `${what}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}
