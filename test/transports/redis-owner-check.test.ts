/**
 * A sharded call on redis waits on its owner's own list, and the client checks every 250 ms
 * that the owner is alive. While it is, the check reads the alive set only: the request frames
 * go to Redis again (to be taken back) only once the owner is dead. Watched through MONITOR
 * on the shared Redis, filtered on this run's keys.
 */
import { Redis } from "ioredis";
import { afterAll, expect, it } from "vitest";
import { aliveKey, instanceRpcKey, parseEndpoint } from "../../src/runtime/transports/redis/names.js";
import { type RedisTransport, redisTransport } from "../../src/runtime/transports/redis/index.js";
import { captureLog } from "./fixtures/log.js";
import { describeWithBroker, reachable } from "./amqp-broker.js";
import { envelope, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { deleteKeys, REDIS_URL } from "./redis-server.js";

const url = new URL(REDIS_URL);
const up = await reachable(url.hostname, Number(url.port || 6379));
const cluster = `ownchk-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;

describeWithBroker(
  up,
  "Redis",
  "redis owner check",
)("redis owner check (real Redis)", () => {
  const open: RedisTransport[] = [];
  afterAll(async () => {
    await Promise.all(open.map((t) => t.close()));
    await deleteKeys(`fan.${cluster}*`);
  });

  it("a sharded call waiting on a live owner sends its frame once, not at every check", async () => {
    const make = (): RedisTransport =>
      redisTransport({ url: REDIS_URL })({
        cluster,
        log: captureLog().log,
        maxPayloadBytes: 1 << 20,
      }) as RedisTransport;
    const server = make();
    const client = make();
    open.push(server, client);
    const { endpoint } = await server.serve(ConformanceDescriptor, "o1", new TestInbound());
    const list = instanceRpcKey(parseEndpoint(endpoint));
    const monitor = await new Redis(REDIS_URL).monitor();
    const sent: string[] = [];
    monitor.on("monitor", (_time: string, args: string[]) => {
      if (args.includes(list) && args.some((a) => a.includes('"sleep"'))) sent.push(String(args[0]));
    });
    try {
      const answer = await client.call(endpoint, envelope("sleep", { ms: 1500 }, { shard: 3 }), within(10_000));
      expect(answer.kind).toBe("reply");
    } finally {
      monitor.disconnect();
    }
    // The call script once (EVAL after a NOSCRIPT at most once more); ~6 owner checks ran meanwhile.
    expect(sent.length).toBeGreaterThanOrEqual(1);
    expect(sent.length).toBeLessThanOrEqual(2);
  });

  it("an instance that serves and calls over one transport stays in the alive set (its heartbeat and the callers' check are two commands)", async () => {
    // One transport serves and calls, as an App whose service calls another over redis does:
    // the client's alive check was defined under the heartbeat's command name and replaced it.
    const log = captureLog();
    const both = redisTransport({ url: REDIS_URL, aliveTtlMs: 600 })({
      cluster,
      log: log.log,
      maxPayloadBytes: 1 << 20,
    }) as RedisTransport;
    const other = redisTransport({ url: REDIS_URL })({ cluster, log: captureLog().log, maxPayloadBytes: 1 << 20 });
    const caller = redisTransport({ url: REDIS_URL })({ cluster, log: captureLog().log, maxPayloadBytes: 1 << 20 });
    open.push(both, other as RedisTransport, caller as RedisTransport);
    const own = await both.serve(ConformanceDescriptor, "serves-and-calls", new TestInbound());
    const { endpoint } = await other.serve(
      { ...ConformanceDescriptor, name: `${ConformanceDescriptor.name}Other` },
      "callee",
      new TestInbound(),
    );
    // A sharded call: the client checks its owner with the alive-check script.
    const out = await both.call(
      endpoint,
      { ...envelope("echo", { n: 1 }, { shard: 1 }), service: `${ConformanceDescriptor.name}Other` },
      within(5000),
    );
    expect(out.kind).toBe("reply");
    // Three of the heartbeat's 600 ms lives later, it is still renewed.
    await new Promise((r) => setTimeout(r, 1800));
    const r = new Redis(REDIS_URL);
    try {
      const [sec, usec] = (await r.time()) as [number, number];
      const expiry = Number(await r.zscore(aliveKey(parseEndpoint(own.endpoint)), "serves-and-calls"));
      expect(expiry).toBeGreaterThan(Number(sec) * 1000 + Math.floor(Number(usec) / 1000));
    } finally {
      r.disconnect();
    }
    const answer = await caller.call(own.endpoint, envelope("echo", { n: 2 }), within(5000));
    expect(answer.kind).toBe("reply");
    expect(log.find("cannot renew this instance's redis alive entry")).toEqual([]);
  });
});
