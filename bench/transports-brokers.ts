/**
 * The amqp and redis rows of `npm run bench -- transports` (also runnable alone as
 * `npm run bench -- transports-brokers`): closed-loop rpc at concurrency 1 and 64 through
 * `transportRows`, beside the raw bound of each broker measured in the same run:
 *
 * - amqp: amqplib publish → consume → reply to the client's exclusive queue, the broker path
 *   the transport takes (direct reply-to before 2026-12-05 session 16, in both);
 * - redis: an rpc written by hand with ioredis (LPUSH → RPOP/BRPOP → PUBLISH), the path the
 *   transport takes; one auto-pipelined ioredis command (PING) is shown too, for scale.
 *
 * Brokers: FAN_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672) and FAN_REDIS_URL
 * (default redis://127.0.0.1:6379).
 */
import amqplib from "amqplib";
import { Redis } from "ioredis";
import { amqpTransport } from "../src/runtime/transports/amqp/index.js";
import {
  controlExchange,
  deadLetterExchange,
  deadLetterQueue,
  eventsExchange,
  pushQueue,
  rpcQueue,
} from "../src/runtime/transports/amqp/names.js";
import { redisTransport } from "../src/runtime/transports/redis/index.js";
import { type BenchRow, compare } from "./lib.js";
import { type RawBound, transportRows } from "./transports.js";

interface QuoteReq {
  symbol: string;
  quantity: number;
  price: number;
}

/** The request and handler of bench/transports.ts's Pricing service. */
const REQUEST: QuoteReq = { symbol: "ACME", quantity: 3, price: 12.5 };
const quote = (q: QuoteReq): { symbol: string; total: number } => ({ symbol: q.symbol, total: q.quantity * q.price });

const AMQP_URL = process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const REDIS_URL = process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379";

/**
 * amqplib publish → consume → reply round trip: a consumer on a request queue answering to the
 * client's exclusive reply queue, a client matching replies by correlation id (JSON both ways,
 * Nagle off) — the same broker path the amqp transport takes, with nothing else.
 */
export const rawAmqp: RawBound = {
  label: "amqplib publish → consume → reply queue",
  async start() {
    const conn = await amqplib.connect(AMQP_URL, { noDelay: true });
    const queue = `fan.bench-raw-${process.pid}.rpc`;
    const server = await conn.createChannel();
    await server.assertQueue(queue, { durable: false, autoDelete: true });
    await server.prefetch(256);
    await server.consume(queue, (m) => {
      if (m === null) return;
      const body = Buffer.from(JSON.stringify(quote(JSON.parse(m.content.toString("utf8")) as QuoteReq)));
      server.publish("", m.properties.replyTo as string, body, { correlationId: m.properties.correlationId as string });
      server.ack(m);
    });
    const client = await conn.createChannel();
    const pending = new Map<string, (v: unknown) => void>();
    const replyTo = (await client.assertQueue("", { exclusive: true, autoDelete: true })).queue;
    await client.consume(
      replyTo,
      (m) => {
        if (m !== null) pending.get(m.properties.correlationId as string)?.(JSON.parse(m.content.toString("utf8")));
      },
      { noAck: true },
    );
    let n = 0;
    const body = JSON.stringify(REQUEST);
    return {
      op: () =>
        new Promise((resolve) => {
          const id = String(++n);
          pending.set(id, (v) => {
            pending.delete(id);
            resolve(v);
          });
          client.publish("", queue, Buffer.from(body), { correlationId: id, replyTo });
        }),
      close: async () => {
        await conn.close();
      },
    };
  },
};

/**
 * rpc over Redis written by hand with ioredis, the same path the redis transport takes with
 * nothing else: LPUSH a request, a server popping batches (RPOP n, BRPOP when idle) and
 * PUBLISHing the reply to the client's channel, replies matched by id.
 */
export const rawRedisRpc: RawBound = {
  label: "ioredis LPUSH → RPOP/BRPOP → PUBLISH",
  async start() {
    const key = `fan.bench-raw-${process.pid}.rpc`;
    const channel = `fan.bench-raw-${process.pid}.reply`;
    const cmd = new Redis(REDIS_URL, { enableAutoPipelining: true });
    const blk = new Redis(REDIS_URL);
    const sub = new Redis(REDIS_URL);
    let running = true;
    const serve = async (): Promise<void> => {
      while (running) {
        let items = await blk.rpopBuffer(key, 128);
        if (items === null) {
          const got = await blk.brpopBuffer(key, 0.2);
          items = got === null ? [] : [got[1]];
        }
        for (const item of items) {
          const i = item.indexOf(10);
          const body = JSON.stringify(quote(JSON.parse(item.subarray(i + 1).toString("utf8")) as QuoteReq));
          void cmd.publish(channel, `${item.subarray(0, i).toString("latin1")}\n${body}`);
        }
      }
    };
    const pending = new Map<string, (v: unknown) => void>();
    sub.on("messageBuffer", (_c: Buffer, m: Buffer) => {
      const i = m.indexOf(10);
      pending.get(m.subarray(0, i).toString("latin1"))?.(JSON.parse(m.subarray(i + 1).toString("utf8")));
    });
    await sub.subscribe(channel);
    const loop = serve();
    let n = 0;
    const body = JSON.stringify(REQUEST);
    return {
      op: () =>
        new Promise((resolve) => {
          const id = String(++n);
          pending.set(id, (v) => {
            pending.delete(id);
            resolve(v);
          });
          void cmd.lpush(key, `${id}\n${body}`);
        }),
      close: async () => {
        running = false;
        await loop;
        await cmd.del(key);
        for (const c of [cmd, blk, sub]) c.disconnect();
      },
    };
  },
};

/** One ioredis command round trip (an auto-pipelined PING), for scale: an rpc needs several. */
async function redisPingRows(): Promise<BenchRow[]> {
  const rig = await rawRedisPing.start();
  try {
    const rows: BenchRow[] = [];
    for (const concurrency of [1, 64]) {
      const [row] = await compare(
        [
          {
            name: `redis c=${concurrency} one ioredis command round trip (PING)`,
            op: rig.op,
            note: "for scale, not the bound",
          },
        ],
        { concurrency, durationMs: 1000, rounds: 3 },
      );
      rows.push(row as BenchRow);
    }
    return rows;
  } finally {
    await rig.close();
  }
}

/** One ioredis command round trip (auto-pipelined, as the transport's shared connection is). */
export const rawRedisPing: RawBound = {
  label: "ioredis round trip (auto-pipelined PING)",
  async start() {
    const redis = new Redis(REDIS_URL, { enableAutoPipelining: true });
    await redis.ping();
    return {
      op: () => redis.ping(),
      close: async () => {
        redis.disconnect();
      },
    };
  },
};

/** Deletes the queues, exchanges and keys the rigs declared on the shared brokers. */
async function cleanUp(): Promise<void> {
  const conn = await amqplib.connect(AMQP_URL);
  const ch = await conn.createChannel();
  for (const cluster of ["bench", `bench-amqp-${process.pid}`]) {
    const a = { cluster, service: "bench.Pricing", version: "1.0.0" };
    for (const q of [rpcQueue(a), pushQueue(a), deadLetterQueue(pushQueue(a))]) await ch.deleteQueue(q);
    for (const x of [deadLetterExchange(cluster), controlExchange(cluster), eventsExchange(cluster)])
      await ch.deleteExchange(x);
  }
  await conn.close();
  const redis = new Redis(REDIS_URL);
  for (const pattern of ["fan.bench.*", `fan.bench-redis-${process.pid}.*`]) {
    const keys = await redis.keys(pattern);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
}

/** amqp rows (raw bound, transport alone, fan), leaving nothing behind on the broker. */
export async function amqpRows(): Promise<BenchRow[]> {
  try {
    return await transportRows(
      "amqp",
      rawAmqp,
      () => amqpTransport({ url: AMQP_URL }),
      () => ({ amqp: amqpTransport({ url: AMQP_URL }) }),
    );
  } finally {
    await cleanUp();
  }
}

/** redis rows (raw bound, transport alone, fan, one PING for scale), leaving no keys behind. */
export async function redisRows(): Promise<BenchRow[]> {
  try {
    return [
      ...(await transportRows(
        "redis",
        rawRedisRpc,
        () => redisTransport({ url: REDIS_URL }),
        () => ({ redis: redisTransport({ url: REDIS_URL }) }),
      )),
      ...(await redisPingRows()),
    ];
  } finally {
    await cleanUp();
  }
}

/** amqp rows then redis rows. */
export async function brokerRows(): Promise<BenchRow[]> {
  return [...(await amqpRows()), ...(await redisRows())];
}

export default brokerRows;
