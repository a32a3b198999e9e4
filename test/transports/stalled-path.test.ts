/**
 * `Transport.stalled` answers for the path what is waiting took, and no other: on amqp a push
 * waits on the publisher's channel and a `@shard` push to its owner on the rpc client's; on
 * redis a push on the command connection and a `@shard` push on the rpc client's (its reply
 * subscription). One path is made not ready while the other stays up (amqp: one channel closed
 * by the broker, reopened only after 3 s; redis: the rpc client's subscriber connection killed,
 * reconnected only after 3 s), against the real brokers: the error a push's backstop or a
 * call's deadline would carry must not name the outage of a path it does not wait on.
 */
import { Redis } from "ioredis";
import { afterAll, expect, it } from "vitest";
import { type RedisTransport, redisTransport } from "../../src/runtime/transports/redis/index.js";
import type { Transport } from "../../src/runtime/transports/transport.js";
import { AMQP_URL, channelsOf, describeWithBroker, reachable, suiteTransports } from "./amqp-broker.js";
import { envelope, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { deleteKeys, REDIS_URL } from "./redis-server.js";

const hostUp = (u: string, port: number): Promise<boolean> => {
  const url = new URL(u);
  return reachable(url.hostname, Number(url.port || port));
};
const run = `stpath-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
const SHARD = { shard: 3 };

/** What `t` answers for a call, a push and a @shard push to `endpoint` (an owner's). */
function answers(t: Transport, endpoint: string): Record<string, string | undefined> {
  const say = (kind: "call" | "push", headers: Record<string, number>): string | undefined =>
    t.stalled?.(kind, endpoint, headers)?.message;
  return { call: say("call", {}), push: say("push", {}), shardPush: say("push", SHARD) };
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !ok(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describeWithBroker(
  await hostUp(AMQP_URL, 5672),
  "RabbitMQ",
  "amqp stalled paths",
)("amqp: stalled answers for the channel a push waits on", () => {
  const cluster = `${run}-amqp`;
  const transports = suiteTransports(cluster);
  const slowReopen = { reconnectMinDelayMs: 3000, reconnectMaxDelayMs: 3000 };

  /** A served instance and a client that made a call and a push (both channels up). */
  async function pair(): Promise<{ client: ReturnType<typeof transports>; endpoint: string }> {
    const server = transports();
    const client = transports(captureLog(), slowReopen);
    const { endpoint } = await server.serve(ConformanceDescriptor, `i${Math.random()}`, new TestInbound());
    expect((await client.call(endpoint, envelope("echo", { n: 1 }), within(5000))).kind).toBe("reply");
    await client.push(endpoint, envelope("record", { id: "up" }), within(5000));
    expect(answers(client, endpoint)).toEqual({ call: undefined, push: undefined, shardPush: undefined });
    return { client, endpoint };
  }

  it("publisher's channel closed, rpc client's up: a push names it, a @shard push and a call do not", async () => {
    const { client, endpoint } = await pair();
    await expect(client.publisher.channel?.checkQueue(`fan.${run}.no-such-queue`)).rejects.toThrow(/NOT_FOUND/);
    await until("the publisher's channel closed", () => client.stalled("push", endpoint, {}) !== undefined);
    const a = answers(client, endpoint);
    expect(a.push).toMatch(/publisher channel not ready/);
    expect(a).toMatchObject({ call: undefined, shardPush: undefined });
  });

  it("rpc client's channel closed, publisher's up: a call and a @shard push name it, a push does not", async () => {
    const { client, endpoint } = await pair();
    const rpc = channelsOf(client).filter((c) => c !== client.publisher.channel);
    expect(rpc).toHaveLength(1);
    await expect(rpc[0]?.checkQueue(`fan.${run}.no-such-queue`)).rejects.toThrow(/NOT_FOUND/);
    await until("the rpc client's channel closed", () => client.stalled("call", endpoint, {}) !== undefined);
    const a = answers(client, endpoint);
    expect(a.call).toMatch(/rpc-client channel not ready/);
    expect(a.shardPush).toBe(a.call);
    expect(a.push).toBeUndefined();
  });
});

describeWithBroker(
  await hostUp(REDIS_URL, 6379),
  "Redis",
  "redis stalled paths",
)("redis: stalled answers for the connection a push waits on", () => {
  const cluster = `${run}-redis`;
  const open: RedisTransport[] = [];
  const admin = new Redis(REDIS_URL);
  afterAll(async () => {
    await Promise.all(open.map((t) => t.close()));
    await deleteKeys(`fan.${cluster}*`);
    admin.disconnect();
  });

  /** CLIENT IDs of this cluster's subscriber connections. */
  async function subscribers(): Promise<string[]> {
    const list = String(await admin.call("CLIENT", "LIST", "TYPE", "pubsub"));
    return list
      .split("\n")
      .filter((l) => l.includes(` name=fan:${cluster}:sub:`))
      .map((l) => /\bid=(\d+)/.exec(l)?.[1] as string);
  }

  it("rpc client's subscriber down, command connection up: a call and a @shard push name it, a push does not", async () => {
    const make = (extra = {}): RedisTransport => {
      const t = redisTransport({ url: REDIS_URL, ...extra })({
        cluster,
        log: captureLog().log,
        maxPayloadBytes: 1 << 20,
      }) as RedisTransport;
      open.push(t);
      return t;
    };
    const server = make();
    const { endpoint } = await server.serve(ConformanceDescriptor, "o1", new TestInbound());
    const servers = new Set(await subscribers());
    const client = make({ redis: { retryStrategy: () => 3000 } });
    expect((await client.call(endpoint, envelope("echo", { n: 1 }), within(5000))).kind).toBe("reply");
    await client.push(endpoint, envelope("record", { id: "up" }), within(5000));
    expect(answers(client, endpoint)).toEqual({ call: undefined, push: undefined, shardPush: undefined });
    const mine = (await subscribers()).filter((id) => !servers.has(id));
    expect(mine).toHaveLength(1);
    await admin.call("CLIENT", "KILL", "ID", mine[0] as string);
    await until("the rpc client's subscriber down", () => client.stalled("call", endpoint, {}) !== undefined);
    const a = answers(client, endpoint);
    expect(a.call).toMatch(/redis/);
    expect(a.shardPush).toBe(a.call);
    expect(a.push).toBeUndefined();
  });
});
