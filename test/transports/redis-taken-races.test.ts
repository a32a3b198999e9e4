/**
 * Races around the redis taken notice (rpc-server.ts, rpc-client.ts) that a caller watching
 * the instance that took its call could lose, failing a call that ran and was answered:
 *
 * - a server stopping while idle: its pop, blocked in Redis when the stop began, can still take
 *   a call until the loop has ended, so the instance must stay in the running set until then
 *   (bb329dc; the window is widened here by holding the stop's "left" announcement);
 * - a Redis restarted without its data: a server whose blocking connection is back before its
 *   command connection must not take a call before its entries are written again (the window
 *   is widened by giving the server's command connection a slow reconnection).
 *
 * A second instance's alive entry is written by the test (a "ghost" that serves nothing), so the
 * call script accepts the call while the instance under test is out of the alive set.
 *
 * And the caller's sweep for calls taken without a notice (a server dead in the turn it took
 * them in): a request the test pops off the list itself, as a server would, fails UNAVAILABLE
 * once the running entries have expired when every alive instance has one, and is left to its
 * deadline when an alive instance has none (an older server, which never sends notices); a
 * call waiting in the list behind a busy server is not failed.
 */
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import type { FanError } from "../../src/runtime/errors.js";
import { shortId } from "../../src/runtime/ids.js";
import { type RedisTransport, redisTransport } from "../../src/runtime/transports/redis/index.js";
import { SCAN_MAX_BYTES } from "../../src/runtime/transports/redis/rpc-client.js";
import {
  aliveKey,
  formatEndpoint,
  parseEndpoint,
  rpcKey,
  runningKey,
} from "../../src/runtime/transports/redis/names.js";
import { describeWithBroker, reachable } from "./amqp-broker.js";
import { envelope, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { deleteKeys, PrivateRedis, REDIS_URL, redisServerAvailable, withRedis } from "./redis-server.js";

const shared = new URL(REDIS_URL);
const up = await reachable(shared.hostname, Number(shared.port || 6379));
const possible = await redisServerAvailable();

/** `blockMs` 5 s: a server's pop stays blocked in Redis until something wakes it. */
function transport(url: string, cluster: string, aliveTtlMs: number, maxInFlight?: number): RedisTransport {
  return redisTransport({ url, aliveTtlMs, blockMs: 5000, ...(maxInFlight === undefined ? {} : { maxInFlight }) })({
    cluster,
    log: captureLog().log,
    maxPayloadBytes: 1 << 20,
  }) as RedisTransport;
}

/** Writes an entry in each of `sets` for an instance nobody runs, valid for `ms` (Redis time). */
function addGhost(alive: string, url: string, ms = 60_000, sets = [alive]): Promise<unknown> {
  return withRedis(async (r) => {
    const [s, us] = await r.time();
    const until = Number(s) * 1000 + Math.floor(Number(us) / 1000) + ms;
    return Promise.all(sets.map((k) => r.zadd(k, until, "ghost")));
  }, url);
}

/** Transports closed, and clusters' keys deleted, after each test of the calling suite. */
function closedAfterEach(): { open: RedisTransport[]; clusters: string[] } {
  const open: RedisTransport[] = [];
  const clusters: string[] = [];
  afterEach(async () => {
    await Promise.allSettled(open.splice(0).map((t) => t.close()));
    for (const c of clusters.splice(0)) await deleteKeys(`fan.${c}.*`);
  });
  return { open, clusters };
}

describeWithBroker(
  up,
  "Redis",
  "redis stop race",
)("redis: a call popped by a server that is stopping", () => {
  const { open, clusters } = closedAfterEach();

  it("is answered: the instance stays in the running set until its pop loop ended and the call answered", async () => {
    const cluster = `rtrace-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const server = transport(REDIS_URL, cluster, 1000);
    const client = transport(REDIS_URL, cluster, 1000);
    open.push(server, client);
    const inbound = new TestInbound();
    const served = await server.serve(ConformanceDescriptor, "s1", inbound);
    expect((await client.call(served.endpoint, envelope("echo", { n: 0 }), within(5000))).kind).toBe("reply");
    const alive = aliveKey(parseEndpoint(served.endpoint));
    await addGhost(alive, REDIS_URL);

    // The stop's announcement that the instance left is held: the window between its leaving
    // the alive set and the end of its pop loop (whose BLMPOP still waits in Redis) stays open.
    const cmd = server.cmd as Redis;
    const publish = cmd.publish.bind(cmd) as (channel: string, message: string) => Promise<number>;
    let release = (): void => undefined;
    const held = new Promise<void>((r) => (release = r));
    (cmd as unknown as { publish: typeof publish }).publish = (channel, message) =>
      channel.endsWith(".rpc.left") ? held.then(() => publish(channel, message)) : publish(channel, message);
    const stopping = served.stop();
    await until(async () => (await withRedis((r) => r.zscore(alive, "s1"))) === null, 5000);

    // Longer than the 250 ms between two checks of the running set: still running at the end
    // of the turn it was popped in, so its caller is told which instance took it.
    const call = client.call(served.endpoint, envelope("sleep", { ms: 1500 }), within(8000));
    await until(() => inbound.active === 1, 5000);
    release();
    const reply = await call;
    expect(reply.kind).toBe("reply");
    expect(inbound.calls.map((c) => c.method)).toEqual(["echo", "sleep"]);
    await stopping;
  }, 30_000);
});

describeWithBroker(
  up,
  "Redis",
  "redis unnoticed calls",
)("redis: calls taken without a taken notice", () => {
  const { open, clusters } = closedAfterEach();

  /**
   * A call to a version only a ghost serves (entries in `sets`, valid for 1 s), whose request
   * the test pops off the list as a server that then says nothing would; its outcome and when.
   */
  const takenSilently = async (
    sets: (addr: { cluster: string; service: string; version: string }) => string[],
    otherBytes = 2,
    onClient: (client: RedisTransport) => void = () => undefined,
  ) => {
    const cluster = `rtsil-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const client = transport(REDIS_URL, cluster, 1000);
    open.push(client);
    const addr = { cluster, service: ConformanceDescriptor.name, version: ConformanceDescriptor.version };
    await addGhost(aliveKey(addr), REDIS_URL, 1000, sets(addr));
    const started = Date.now();
    const call = client.call(formatEndpoint(addr), envelope("sleep", { ms: 10 }), within(4000)).then(
      (r) => ({ outcome: r.kind, at: Date.now() - started }),
      (e: FanError) => ({ outcome: `${e.code}: ${e.message}`, at: Date.now() - started }),
    );
    const taken: string[] = [];
    await until(async () => {
      const item = await withRedis((r) => r.rpop(rpcKey(addr)));
      if (item !== null) taken.push(item);
      return item !== null;
    }, 2000);
    expect(taken[0]).toContain("sleep");
    onClient(client);
    // Requests of others queued after it: the sweep reads them all (several chunks) and finds it gone.
    const body = JSON.stringify({ pad: "x".repeat(Math.max(0, otherBytes - 12)) });
    const others = Array.from({ length: 100 }, (_, i) => `other.${i}\nnowhere\n${body}`);
    await withRedis((r) => r.lpush(rpcKey(addr), ...others));
    return call;
  };

  it("a call its list no longer holds fails UNAVAILABLE once the running entries have expired", async () => {
    const { outcome, at } = await takenSilently((a) => [aliveKey(a), runningKey(a)]);
    expect(outcome).toMatch(
      /^UNAVAILABLE: .*took the call and was lost before it said so; the call may have run there/,
    );
    expect(at).toBeLessThan(3000);
  }, 30_000);

  it("is left to its deadline when its list holds more than SCAN_MAX_BYTES (not read), and that list is swept less often", async () => {
    // 100 requests of 4 KiB: 400 KiB, over the 256 KiB the sweep reads (each run would copy
    // them into the script). The sweeps of that list back off: 250, 500, 1000, 2000 ms...
    let runs = 0;
    const { outcome } = await takenSilently(
      (a) => [aliveKey(a), runningKey(a)],
      4096,
      (client) => {
        const cmd = client.cmd as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
        const script = cmd.fanRpcUnnoticed as (...a: unknown[]) => Promise<unknown>;
        cmd.fanRpcUnnoticed = function (this: unknown, ...a: unknown[]) {
          // ioredis's auto-pipelining calls the function again on its pipeline: counted once.
          if (this === cmd) runs++;
          return script.apply(this, a);
        };
      },
    );
    expect(outcome).toMatch(/^DEADLINE_EXCEEDED/);
    expect(SCAN_MAX_BYTES).toBeLessThan(400 * 1024);
    // Every 250 ms over the call's 4 s would be about 14 runs.
    expect(runs).toBeLessThanOrEqual(8);
  }, 30_000);

  it("is left to its deadline while an alive instance has no running entry (an older server)", async () => {
    const { outcome } = await takenSilently((a) => [aliveKey(a)]);
    expect(outcome).toMatch(/^DEADLINE_EXCEEDED/);
  }, 30_000);

  it("a call deep in the list (behind 100 older requests) is found there and left to its deadline", async () => {
    const cluster = `rtdeep-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const client = transport(REDIS_URL, cluster, 1000);
    open.push(client);
    const addr = { cluster, service: ConformanceDescriptor.name, version: ConformanceDescriptor.version };
    await addGhost(aliveKey(addr), REDIS_URL, 1000, [aliveKey(addr), runningKey(addr)]);
    const older = Array.from({ length: 100 }, (_, i) => `older.${i}\nnowhere\n{}`);
    await withRedis((r) => r.lpush(rpcKey(addr), ...older));
    const outcome = await client.call(formatEndpoint(addr), envelope("sleep", { ms: 10 }), within(3000)).then(
      (r) => r.kind,
      (e: FanError) => `${e.code}: ${e.message}`,
    );
    expect(outcome).toMatch(/^DEADLINE_EXCEEDED/);
  }, 30_000);

  it("a call waiting in the list behind a busy server, longer than the entries live, is answered", async () => {
    const cluster = `rtbusy-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const server = transport(REDIS_URL, cluster, 600, 1);
    const client = transport(REDIS_URL, cluster, 600);
    open.push(server, client);
    const { endpoint } = await server.serve(ConformanceDescriptor, "busy", new TestInbound());
    const first = client.call(endpoint, envelope("sleep", { ms: 2500 }), within(8000));
    await new Promise((r) => setTimeout(r, 100));
    const second = client.call(endpoint, envelope("sleep", { ms: 0 }), within(8000));
    expect((await first).kind).toBe("reply");
    expect((await second).kind).toBe("reply");
  }, 30_000);
});

describeWithBroker(
  possible,
  "a private redis-server",
  "redis restart race",
)("redis: a call right after a restart of Redis without its data (private redis-server)", () => {
  const redis = new PrivateRedis(["--appendonly", "no"]);
  beforeAll(() => redis.start(), 30_000);
  afterAll(() => redis.destroy());
  const { open } = closedAfterEach();

  it("is not taken by a server whose entries are not back yet: answered, not failed as taken by a dead instance", async () => {
    const cluster = `rtrest-${shortId()}`;
    // A refresh every 200 s: only the announcement on reconnection writes the entries again.
    const server = transport(redis.url, cluster, 600_000);
    const client = transport(redis.url, cluster, 600_000);
    open.push(server, client);
    const inbound = new TestInbound();
    const { endpoint } = await server.serve(ConformanceDescriptor, "b1", inbound);
    expect((await client.call(endpoint, envelope("echo", { n: 0 }), within(5000))).kind).toBe("reply");
    // The server's command connection (its heartbeat) comes back 5 s after the kill; its
    // blocking connection, and the client's, within a fraction of a second of the restart.
    (server.cmd as Redis).options.retryStrategy = () => 5000;
    await redis.kill();
    await redis.start();
    // Another instance is back: the call script accepts calls to the version.
    await addGhost(aliveKey(parseEndpoint(endpoint)), redis.url);
    const reply = await client.call(endpoint, envelope("sleep", { ms: 300 }), within(15_000)).then(
      (r) => r.kind,
      (e: unknown) => String(e),
    );
    expect(reply).toBe("reply");
  }, 60_000);

  it("is not taken while the entries are not back, though the command connection emits no close or ready (as a Cluster's on a node's restart)", async () => {
    const cluster = `rtclu-${shortId()}`;
    // A heartbeat every second: nothing else writes the entries again here.
    const server = transport(redis.url, cluster, 3000);
    const client = transport(redis.url, cluster, 3000);
    open.push(server, client);
    const { endpoint } = await server.serve(ConformanceDescriptor, "c1", new TestInbound());
    expect((await client.call(endpoint, envelope("echo", { n: 0 }), within(5000))).kind).toBe("reply");
    // ioredis's Cluster emits only -node, +node and node error when a node restarts: the only
    // sign the server gets is its blocking pop failing.
    const cmd = server.cmd as Redis;
    const emit = cmd.emit.bind(cmd);
    cmd.emit = ((event: string | symbol, ...args: unknown[]) =>
      event === "close" || event === "ready" ? false : emit(event, ...args)) as typeof cmd.emit;
    cmd.options.retryStrategy = () => 5000;
    await redis.kill();
    await redis.start();
    await addGhost(aliveKey(parseEndpoint(endpoint)), redis.url);
    const reply = await client.call(endpoint, envelope("sleep", { ms: 300 }), within(15_000)).then(
      (r) => r.kind,
      (e: unknown) => String(e),
    );
    expect(reply).toBe("reply");
  }, 60_000);
});
