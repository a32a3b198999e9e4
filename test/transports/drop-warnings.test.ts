/**
 * Garbage pushed on a real broker by a foreign client (bytes that are no envelope, on a call
 * queue, subject or list with no reply address, and on a push queue or stream): each message is
 * one warn line naming what was dropped and where (not two: the decode failure and the missing
 * reply address were each a line), and a flood is rate limited (telemetry/drops.ts): the first
 * few lines, then a summary line whose count is every other message, while the server keeps
 * serving. The limit is shortened here through its environment variables.
 */
import amqplib from "amqplib";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import * as amqpNames from "../../src/runtime/transports/amqp/names.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import * as natsNames from "../../src/runtime/transports/nats/names.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import * as redisNames from "../../src/runtime/transports/redis/names.js";
import type { Transport, TransportFactory } from "../../src/runtime/transports/transport.js";
import { AMQP_URL, deleteByPrefix, describeWithBroker, peekQueue, reachable } from "./amqp-broker.js";
import { envelope, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { ConformanceService } from "./fixtures/handlers.js";
import { TestInbound } from "./fixtures/inbound.js";
import { type CapturedLog, captureLog } from "./fixtures/log.js";
import { deleteStreams, NATS_URL, natsUp, readStream, withNats } from "./nats-server.js";
import { deleteKeys, REDIS_URL, withRedis } from "./redis-server.js";

const BURST = 3;
const INTERVAL_MS = 300;
process.env.FAN_DROP_WARN_BURST = String(BURST);
process.env.FAN_DROP_WARN_INTERVAL_MS = String(INTERVAL_MS);

const GARBAGE = Buffer.from([0x00, 0xff, 0x13, 0x37]);
const amqpUp = await reachable(new URL(AMQP_URL).hostname, Number(new URL(AMQP_URL).port || 5672));
const redisUp = await reachable(new URL(REDIS_URL).hostname, Number(new URL(REDIS_URL).port || 6379));
const natsIsUp = await natsUp();

/** How one transport's garbage is pushed, and what its drop line says. */
interface Case {
  readonly name: string;
  readonly up: boolean;
  readonly factory: TransportFactory;
  /** `n` undecodable messages with no reply address on the call path of `endpoint`. */
  readonly calls: (endpoint: string, n: number) => Promise<void>;
  /** The call path's drop line. */
  readonly callLine: string;
  /** `n` undecodable messages on the push queue or stream of `endpoint`. */
  readonly pushes: (endpoint: string, n: number) => Promise<void>;
  /** The push path's drop line. */
  readonly pushLine: string;
  /** How many messages the push path's dead letters hold. */
  readonly deadLetters: (cluster: string, endpoint: string) => Promise<number>;
  readonly cleanup: (cluster: string) => Promise<unknown>;
}

async function amqpSend(queue: string, n: number): Promise<void> {
  const conn = await amqplib.connect(AMQP_URL);
  conn.on("error", () => undefined);
  try {
    const ch = await conn.createConfirmChannel();
    for (let i = 0; i < n; i++) ch.sendToQueue(queue, GARBAGE, { persistent: true });
    await ch.waitForConfirms();
  } finally {
    await conn.close().catch(() => undefined);
  }
}

function natsSend(subject: string, n: number): Promise<void> {
  return withNats(async (nc) => {
    for (let i = 0; i < n; i++) nc.publish(subject, GARBAGE);
    await nc.flush();
  });
}

const cases: Case[] = [
  {
    name: "amqp",
    up: amqpUp,
    factory: amqpTransport({ url: AMQP_URL, maxDeliveries: 3, retryDelayMs: 50 }),
    calls: (endpoint, n) => amqpSend(amqpNames.rpcQueue(amqpNames.parseEndpoint(endpoint)), n),
    callLine: "amqp: undecodable call without a reply address dropped",
    pushes: (endpoint, n) => amqpSend(amqpNames.pushQueue(amqpNames.parseEndpoint(endpoint)), n),
    pushLine: "undecodable amqp message dead-lettered",
    deadLetters: async (_cluster, endpoint) =>
      (await peekQueue(amqpNames.deadLetterQueue(amqpNames.pushQueue(amqpNames.parseEndpoint(endpoint))))).length,
    cleanup: (cluster) => deleteByPrefix(`fan.${cluster}`),
  },
  {
    name: "nats",
    up: natsIsUp,
    factory: natsTransport({ url: NATS_URL, retryDelayMs: 20 }),
    calls: (endpoint, n) => natsSend(natsNames.rpcSubject(natsNames.parseEndpoint(endpoint)), n),
    callLine: "undecodable nats call without a reply subject dropped",
    pushes: (endpoint, n) => natsSend(natsNames.pushSubject(natsNames.parseEndpoint(endpoint)), n),
    pushLine: "undecodable nats message dead-lettered",
    deadLetters: async (cluster, endpoint) =>
      (
        await readStream(
          natsNames.deadLetterStream(cluster).name,
          natsNames.deadLetterSubject(
            cluster,
            natsNames.pushStream(natsNames.parseEndpoint(endpoint)).name,
            natsNames.PUSH_CONSUMER,
          ),
        )
      ).length,
    cleanup: (cluster) => deleteStreams(`fan_${cluster}`),
  },
  {
    name: "redis",
    up: redisUp,
    factory: redisTransport({ url: REDIS_URL, maxDeliveries: 3, retryDelayMs: 50, blockMs: 200 }),
    // An item of the request list is `corr\nreplyChannel\njson`: bytes without a line break name no reply channel.
    calls: async (endpoint, n) => {
      await withRedis((r) => r.lpush(redisNames.rpcKey(redisNames.parseEndpoint(endpoint)), ...Array(n).fill(GARBAGE)));
    },
    callLine: "redis rpc request without a reply address dropped",
    pushes: (endpoint, n) =>
      withRedis(async (r) => {
        const key = redisNames.pushKey(redisNames.parseEndpoint(endpoint));
        const p = r.pipeline();
        for (let i = 0; i < n; i++) p.xadd(key, "*", "e", GARBAGE);
        await p.exec();
      }),
    pushLine: "undecodable redis stream entry dead-lettered",
    deadLetters: (_cluster, endpoint) =>
      withRedis((r) => r.xlen(redisNames.deadLetterKey(redisNames.pushKey(redisNames.parseEndpoint(endpoint))))),
    cleanup: (cluster) => deleteKeys(`fan.${cluster}*`),
  },
];

/** The warn records so far. */
const warnings = (log: CapturedLog) => log.records().filter((r) => r.level === 40);
/** The summaries' counts, added up. */
const summarized = (log: CapturedLog) =>
  warnings(log)
    .filter((r) => String(r.msg).includes("more like this were dropped in the last"))
    .reduce((n, r) => n + (r.dropped as number), 0);

for (const c of cases) {
  describeWithBroker(
    c.up,
    c.name,
    `${c.name} drop warnings`,
  )(`${c.name}: a malformed message is one warn line, a flood of them a few and a count`, () => {
    const cluster = `drops-${c.name}-${process.pid}-${shortId()}`;
    const sides: Transport[] = [];
    beforeAll(() => c.cleanup(cluster));
    afterEach(async () => {
      await Promise.all(sides.splice(0).map((t) => t.close()));
    });
    afterAll(() => c.cleanup(cluster));

    const serve = async () => {
      const log = captureLog();
      const server = c.factory({ cluster, log: log.log, maxPayloadBytes: 1 << 20 });
      const client = c.factory({ cluster, log: captureLog().log, maxPayloadBytes: 1 << 20 });
      sides.push(server, client);
      const inbound = new TestInbound();
      const { endpoint } = await server.serve(ConformanceDescriptor, `i${shortId()}`, inbound);
      const echo = async (n: number) =>
        (await client.call(endpoint, envelope("echo", { n }), within(10_000))).payload as { n: number };
      return { log, endpoint, inbound, client, echo };
    };

    it("a call that does not decode and has no reply address: exactly one warn line each, naming it dropped", async () => {
      const s = await serve();
      await c.calls(s.endpoint, BURST);
      // The queue, subject or list hands them over in order: a call after them is answered once they were read.
      expect(await s.echo(1)).toMatchObject({ n: 1 });
      await new Promise((r) => setTimeout(r, INTERVAL_MS * 2));
      const lines = warnings(s.log);
      expect(
        lines.map((r) => r.msg),
        "one line per message",
      ).toHaveLength(BURST);
      expect(lines.map((r) => r.msg)).toEqual(Array(BURST).fill(c.callLine));
      for (const r of lines) {
        expect(r.transport).toBe(c.name);
        expect(typeof r.reason).toBe("string");
        expect(String(r.msg)).toContain("dropped");
      }
    });

    it("a flood of them: the first few lines, then summaries counting every other one; the server keeps serving", async () => {
      const s = await serve();
      const n = 200;
      await c.calls(s.endpoint, n);
      await until(() => summarized(s.log) === n - BURST, 15_000);
      expect(await s.echo(2)).toMatchObject({ n: 2 });
      const lines = warnings(s.log);
      expect(lines.filter((r) => r.msg === c.callLine)).toHaveLength(BURST);
      const summaries = lines.filter((r) => r.msg !== c.callLine);
      expect(summaries.length).toBeGreaterThan(0);
      for (const r of summaries) expect(String(r.msg)).toMatch(/^\d+ more like this were dropped in the last [\d.]+s/);
      // A quiet interval resets the limit: the next one is a line of its own again.
      await new Promise((r) => setTimeout(r, INTERVAL_MS * 3));
      await c.calls(s.endpoint, 1);
      await until(() => warnings(s.log).filter((r) => r.msg === c.callLine).length === BURST + 1, 10_000);
    });

    it("a flood on the push queue: every message dead-lettered, a few lines and the count of the rest", async () => {
      const s = await serve();
      const n = 50;
      await c.pushes(s.endpoint, n);
      await until(() => summarized(s.log) === n - BURST, 20_000);
      expect(warnings(s.log).filter((r) => r.msg === c.pushLine)).toHaveLength(BURST);
      await until(async () => (await c.deadLetters(cluster, s.endpoint)) >= n, 10_000);
      await s.client.push(s.endpoint, envelope("record", { id: "after-flood" }), within(10_000));
      await until(() => s.inbound.delivered("after-flood").length === 1);
      expect(await s.echo(3)).toMatchObject({ n: 3 });
    });
  });
}

describeWithBroker(
  redisUp,
  "Redis",
  "drop warnings of the dispatcher",
)("an App: pushes whose payload does not decode, a few lines and a count; every one in the metrics", () => {
  const cluster = `drops-app-${process.pid}-${shortId()}`;
  afterAll(() => deleteKeys(`fan.${cluster}*`));

  /**
   * An App serving the conformance service on redis, given `n` pushes `push(i)` (the envelope's
   * fields past v, kind and service) on its push stream; its log.
   */
  const withPushes = async (
    n: number,
    push: (i: number) => Record<string, unknown>,
    check: (log: CapturedLog, app: ReturnType<typeof createApp>) => Promise<void>,
  ) => {
    const log = captureLog();
    const app = createApp({
      cluster,
      discovery: "memory",
      transports: { redis: redisTransport({ url: REDIS_URL, blockMs: 200 }) },
      logger: log.log,
    }).serve(Conformance, new ConformanceService(), { transports: ["redis"] });
    await app.start();
    try {
      const d = Conformance.descriptor;
      const key = redisNames.pushKey({ cluster, service: d.name, version: d.version });
      await withRedis(async (r) => {
        const p = r.pipeline();
        for (let i = 0; i < n; i++)
          p.xadd(key, "*", "e", JSON.stringify({ v: 1, kind: "push", service: d.name, headers: {}, ...push(i) }));
        await p.exec();
      });
      await until(() => app.counters.pushesDropped === n, 10_000);
      await until(() => summarized(log) === n - BURST, 10_000);
      await check(log, app);
    } finally {
      await app.stop();
    }
  };

  it("a flood of undecodable pushes: counted each in fan_dropped_total, warned BURST times and summarized", async () => {
    const n = 40;
    await withPushes(
      n,
      (i) => ({ id: `bad-${i}`, method: "record", payload: { id: i } }),
      async (log, app) => {
        const line = (r: Record<string, unknown>) => String(r.msg).startsWith("undecodable push");
        expect(warnings(log).filter(line)).toHaveLength(BURST);
        for (const r of warnings(log).filter(line))
          expect(r).toMatchObject({ transport: "redis", reason: "undecodable" });
        const metrics = await app.telemetry.metrics?.text();
        expect(metrics).toContain(`fan_dropped_total{reason="pushesDropped"} ${n}`);
      },
    );
  });

  it("pushes naming methods the service does not have, each another name: one key, BURST lines and a count", async () => {
    await withPushes(
      12,
      (i) => ({ id: `nope-${i}`, method: `nope${i}`, payload: {} }),
      async (log) => {
        const lines = warnings(log).filter((r) => String(r.msg).startsWith("no push nope"));
        expect(lines, "a sender's method names are not keys of the limit").toHaveLength(BURST);
      },
    );
  });
});

describeWithBroker(
  natsIsUp,
  "NATS",
  "nats reply drop warnings",
)("nats: malformed reply frames, each on its call's own reply subject, are one key of the limit", () => {
  it("a server answering every call with a malformed frame: BURST lines and a count, not a line per reply subject", async () => {
    const cluster = `drops-reply-${process.pid}-${shortId()}`;
    const addr = { cluster, service: ConformanceDescriptor.name, version: "1.0.0", instance: "i-bad" };
    const log = captureLog();
    const client = natsTransport({ url: NATS_URL })({ cluster, log: log.log, maxPayloadBytes: 1 << 20 });
    const n = 8;
    // A server of another build: answers each message (its own reply subject per batch) with a frame it cannot read.
    await withNats(async (nc) => {
      let answered = 0;
      nc.subscribe(natsNames.rpcSubject(addr), {
        callback: (_e, m) => {
          answered++;
          if (m.reply !== undefined) nc.publish(m.reply, "#not a frame");
        },
      });
      await nc.flush();
      try {
        const endpoint = natsNames.formatEndpoint(addr);
        const calls: Promise<unknown>[] = [];
        for (let i = 0; i < n; i++) {
          // One batch each: a call per tick.
          calls.push(client.call(endpoint, envelope("echo", { n: i }), within(1500)).catch((e: unknown) => e));
          await new Promise((r) => setTimeout(r, 20));
        }
        await until(() => answered === n, 5000);
        await Promise.all(calls);
        await until(() => summarized(log) === n - BURST, 5000);
        const lines = warnings(log).filter((r) => r.msg === "malformed nats reply frame dropped");
        expect(lines, "one key for every reply subject of the client").toHaveLength(BURST);
      } finally {
        await client.close();
      }
    });
  });
});
