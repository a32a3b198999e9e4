/**
 * redis rpc replies against the real Redis: a client's correlation ids carry the compact mark
 * (`%`), a server answers those with `=`/`!` items and other ids with whole envelopes, and a
 * client reads both, so an older server (which echoes the id and answers envelopes) still
 * works with a new client. Malformed compact replies fail their call, not the client.
 */
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeEnvelope } from "../../src/runtime/codec/wire.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import { aliveKey, formatEndpoint, parseEndpoint, rpcKey } from "../../src/runtime/transports/redis/names.js";
import type { Transport } from "../../src/runtime/transports/transport.js";
import { describeWithBroker, reachable } from "./amqp-broker.js";
import { envelope, rejection, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { captureLog } from "./fixtures/log.js";
import { deleteKeys, REDIS_URL, withRedis } from "./redis-server.js";

const url = new URL(REDIS_URL);
const up = await reachable(url.hostname, Number(url.port || 6379));
const cluster = `replies-${process.pid}`;

/** The first message published on `channel` after `send` ran. */
async function firstOn(sub: Redis, channel: string, send: () => Promise<unknown>): Promise<string> {
  await sub.subscribe(channel);
  const got = new Promise<string>((resolve) => {
    const on = (ch: string, message: string): void => {
      if (ch !== channel) return;
      sub.off("message", on);
      resolve(message);
    };
    sub.on("message", on);
  });
  await send();
  const message = await got;
  await sub.unsubscribe(channel);
  return message;
}

describeWithBroker(
  up,
  "Redis",
  "redis replies",
)("redis rpc replies (real Redis)", () => {
  let server: Transport;
  let client: Transport;
  let endpoint: string;

  beforeAll(async () => {
    await deleteKeys(`fan.${cluster}*`);
    const make = redisTransport({ url: REDIS_URL, blockMs: 200 });
    server = make({ cluster, log: captureLog().log, maxPayloadBytes: 1 << 20 });
    client = make({ cluster, log: captureLog().log, maxPayloadBytes: 1 << 20 });
    endpoint = (await server.serve(ConformanceDescriptor, "r1", new TestInbound())).endpoint;
  });
  afterAll(async () => {
    await client.close();
    await server.close();
    await deleteKeys(`fan.${cluster}*`);
  });

  it("a client's calls carry the compact mark, and their replies come back compact", async () => {
    const frames = await withRedis(async (sub) => {
      const seen: string[] = [];
      await sub.psubscribe(`fan.${cluster}.reply.*`);
      sub.on("pmessage", (_p: string, _ch: string, m: string) => seen.push(m));
      const [ok, failed] = await Promise.all([
        client.call(endpoint, envelope("echo", { n: 12 }), within(5000)),
        client.call(endpoint, envelope("fail", { code: "NOT_FOUND", message: "gone" }), within(5000)),
      ]);
      expect(ok).toMatchObject({ kind: "reply", payload: { n: 12 } });
      expect(failed).toMatchObject({ kind: "error", payload: { code: "NOT_FOUND", message: "gone" } });
      await sub.punsubscribe();
      return seen;
    });
    const lines = frames.join("\n").split("\n");
    expect(lines.length).toBe(4);
    expect(lines[0]?.startsWith("%")).toBe(true);
    expect(lines[2]?.startsWith("%")).toBe(true);
    expect([lines[1], lines[3]].sort()).toEqual(['!{"code":"NOT_FOUND","message":"gone"}', '={"n":12,"served":"a"}']);
  });

  it("a request whose id has the mark gets `=`/`!` replies; one without it, whole envelopes", async () => {
    const channel = `fan.${cluster}.reply.raw`;
    const list = rpcKey(parseEndpoint(endpoint));
    const echo = envelope("echo", { n: 5 });
    const fail = envelope("fail", { code: "NOT_FOUND", message: "gone" });
    await withRedis(async (sub) => {
      const ask = (corr: string, env: unknown) =>
        firstOn(sub, channel, () => withRedis((r) => r.lpush(list, `${corr}\n${channel}\n${JSON.stringify(env)}`)));
      expect(await ask("%x.1", echo)).toBe('%x.1\n={"n":5,"served":"a"}');
      expect(await ask("%x.2", fail)).toBe('%x.2\n!{"code":"NOT_FOUND","message":"gone"}');
      const whole = await ask("x.3", echo);
      expect(whole.startsWith("x.3\n{")).toBe(true);
      const env = decodeEnvelope(whole.slice(4), { maxBytes: 1 << 20 });
      expect([env.kind, env.id, env.payload]).toEqual(["reply", echo.id, { n: 5, served: "a" }]);
      // A request the server cannot read is answered on the same terms.
      expect(await ask("%x.4", "not an envelope")).toMatch(/^%x\.4\n!\{"code":"INVALID_ARGUMENT"/);
      expect(await ask("x.5", "not an envelope")).toMatch(/^x\.5\n\{"v":1,.*"kind":"error"/);
    });
  });

  describe("against a hand-made server answering as told", () => {
    const addr = { cluster, service: ConformanceDescriptor.name, version: "7.0.0" };
    const old = formatEndpoint({ ...addr, instance: "old" });
    let stop = false;
    let answer: (corr: string, request: string) => string = () => "";
    let loop: Promise<void> = Promise.resolve();

    beforeAll(async () => {
      await withRedis((r) => r.zadd(aliveKey(addr), Date.now() + 600_000, "old"));
      // Pops requests off the version's list and publishes `answer`'s frame to their reply channel.
      loop = withRedis(async (r) => {
        while (!stop) {
          const got = await r.brpop(rpcKey(addr), 0.1);
          if (got === null) continue;
          const [corr, channel, request] = got[1].split("\n", 3) as [string, string, string];
          await r.publish(channel, answer(corr, request));
        }
      });
    });
    afterAll(async () => {
      stop = true;
      await loop;
    });

    it("an older server's whole envelope answers a new client's marked call", async () => {
      answer = (corr, request) => {
        const call = decodeEnvelope(request, { maxBytes: 1 << 20 });
        return `${corr}\n${JSON.stringify({ ...call, kind: "reply", headers: {}, payload: { old: true } })}`;
      };
      const reply = await client.call(old, envelope("echo", { n: 1 }), within(5000));
      expect(reply).toMatchObject({ kind: "reply", payload: { old: true } });
    });

    it("malformed compact replies fail their call and the client keeps working", async () => {
      const cases: Array<[string, string]> = [
        ["!null", "INVALID_ARGUMENT"],
        ['!"down"', "INVALID_ARGUMENT"],
        ["={not json", "INVALID_ARGUMENT"],
        ['={"__proto__":{"polluted":true}}', "INVALID_ARGUMENT"],
      ];
      for (const [body, code] of cases) {
        answer = (corr) => `${corr}\n${body}`;
        const e = await rejection(() => client.call(old, envelope("echo", { n: 2 }), within(5000)));
        expect([body, e.code]).toEqual([body, code]);
      }
      answer = (corr) => `${corr}\n=`;
      expect(await client.call(old, envelope("empty", {}), within(5000))).toMatchObject({
        kind: "reply",
        payload: undefined,
      });
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });
  });
});
