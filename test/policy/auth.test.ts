/**
 * Server interceptors and `@auth` on every transport: a call without credentials, or without
 * the role, is refused before its handler runs (UNAUTHENTICATED / PERMISSION_DENIED); with
 * them, the handler sees the principal on `ctx`. Server and client are separate Apps; the
 * client is pinned to the transport under test.
 */
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, type AppOptions, createApp } from "../../src/runtime/app/app.js";
import type { TransportName } from "../../src/runtime/descriptor.js";
import { Code, FanError } from "../../src/runtime/errors.js";
import { shortId } from "../../src/runtime/ids.js";
import type { PolicyEvent } from "../../src/runtime/policy/events.js";
import { startEventHub } from "../../src/runtime/transports/zmq/index.js";
import { AMQP_URL, deleteByPrefix, reachable } from "../transports/amqp-broker.js";
import { deleteKeys, REDIS_URL } from "../transports/redis-server.js";
import { deleteStreams, NATS_URL, natsUp } from "../transports/nats-server.js";
import { rejection } from "../transports/conformance.js";
import { GuardedImpl, TOKENS } from "./fixtures/handlers.js";
import { Guarded, type GuardedClient } from "./fixtures/generated/fan/policytest.js";

const silent = pino({ level: "silent" });
const cluster = `conf-${process.pid}-auth-${shortId()}`;
const amqpUp = await reachable("127.0.0.1", Number(new URL(AMQP_URL).port || 5672));
const redisUp = await reachable("127.0.0.1", Number(new URL(REDIS_URL).port || 6379));
const natsIsUp = await natsUp();
const hub = await startEventHub();

const transports: Record<TransportName, AppOptions["transports"] | undefined> = {
  local: {},
  http: { http: { closeGraceMs: 200 } },
  zmq: { zmq: { events: hub, closeGraceMs: 200 } },
  tcp: { tcp: { closeGraceMs: 200 } },
  amqp: amqpUp ? { amqp: { url: AMQP_URL } } : undefined,
  redis: redisUp ? { redis: { url: REDIS_URL } } : undefined,
  nats: natsIsUp ? { nats: { url: NATS_URL } } : undefined,
};

afterAll(async () => {
  await hub.close();
  if (redisUp) await deleteKeys(`fan.${cluster}*`);
  if (amqpUp) await deleteByPrefix(`fan.${cluster}`).catch(() => undefined);
  if (natsIsUp) await deleteStreams(`fan_${cluster}`).catch(() => undefined);
});

for (const name of ["local", "http", "zmq", "tcp", "amqp", "redis", "nats"] as const) {
  const cfg = transports[name];
  const suite = cfg === undefined ? describe.skip : describe;
  if (cfg === undefined && process.env.FAN_REQUIRE_BROKERS === "1") throw new Error(`${name} broker not reachable`);

  suite(`@auth and server interceptors over ${name}`, () => {
    const impl = new GuardedImpl();
    const interceptorSaw: string[] = [];
    const refused: PolicyEvent[] = [];
    const apps: App[] = [];
    let client: GuardedClient;

    beforeAll(async () => {
      const c = `${cluster}-${name}`;
      const server = createApp({
        cluster: c,
        discovery: "memory",
        logger: silent,
        ...(cfg === undefined ? {} : { transports: cfg }),
        server: {
          interceptors: [
            (call) => {
              interceptorSaw.push(`${call.method.name}:${String(call.headers["x-tenant"] ?? "")}`);
              if (call.headers["x-tenant"] === "banned")
                throw new FanError(Code.PERMISSION_DENIED, "this tenant is banned");
            },
          ],
          auth: {
            authenticate: (call) => TOKENS[String(call.headers.authorization)],
          },
        },
      }).serve(Guarded, impl, { transports: [name] });
      server.policy.on((e) => refused.push(e));
      apps.push(server);
      await server.start();
      const caller = createApp({
        cluster: c,
        discovery: "memory",
        logger: silent,
        ...(cfg === undefined ? {} : { transports: cfg }),
      });
      apps.push(caller);
      await caller.start();
      client = caller.client(Guarded, { transport: name });
    });

    afterAll(async () => {
      await Promise.allSettled(apps.reverse().map((a) => a.stop()));
    });

    it("refuses a call without credentials before the handler: UNAUTHENTICATED", async () => {
      const err = await rejection(() => client.whoami({}));
      expect(err.code).toBe(Code.UNAUTHENTICATED);
      expect(impl.calls).toBe(0);
      expect(refused).toMatchObject([{ type: "refused", method: "whoami", code: "UNAUTHENTICATED" }]);
    });

    it("refuses a caller without the role: PERMISSION_DENIED, handler not run", async () => {
      const err = await rejection(() => client.secret({}, { headers: { authorization: "Bearer guest" } }));
      expect(err.code).toBe(Code.PERMISSION_DENIED);
      expect(err.message).toMatch(/requires the role "admin"/);
      expect(impl.calls).toBe(0);
    });

    it("an interceptor's refusal stops the call before decoding and the handler", async () => {
      const err = await rejection(() =>
        client.secret({}, { headers: { authorization: "Bearer root", "x-tenant": "banned" } }),
      );
      expect(err.code).toBe(Code.PERMISSION_DENIED);
      expect(err.message).toBe("this tenant is banned");
      expect(impl.calls).toBe(0);
    });

    it("lets an authorised call through with the principal on ctx", async () => {
      expect(await client.whoami({}, { headers: { authorization: "Bearer guest" } })).toBe("guest");
      expect(await client.secret({}, { headers: { authorization: "Bearer root", "x-tenant": "t1" } })).toBe("for root");
      expect(impl.calls).toBe(2);
      expect(interceptorSaw).toContain("secret:t1");
    });
  });
}

describe("@auth without a verifier", () => {
  it("is an error when the service is served, naming what is missing", () => {
    expect(() => createApp({ logger: silent }).serve(Guarded, new GuardedImpl())).toThrow(
      /requires @auth on secret, whoami, note, but the app has no verifier/,
    );
  });
});

describe("@auth on a push", () => {
  it("drops a push without the role (a warn line), runs one with it", async () => {
    const c = `${cluster}-push`;
    const impl = new GuardedImpl();
    const server = createApp({
      cluster: c,
      discovery: "memory",
      logger: silent,
      server: { auth: { authenticate: (call) => TOKENS[String(call.headers.authorization)] } },
    }).serve(Guarded, impl);
    await server.start();
    const caller = createApp({ cluster: c, discovery: "memory", logger: silent });
    await caller.start();
    try {
      await caller.client(Guarded).note({ text: "no" }, { headers: { authorization: "Bearer guest" } });
      await caller.client(Guarded, { headers: { authorization: "Bearer root" } }).note({ text: "yes" });
      const end = Date.now() + 5000;
      while (impl.notes.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      expect(impl.notes).toEqual(["yes"]);
      expect(server.counters.pushesDropped).toBe(1);
    } finally {
      await caller.stop();
      await server.stop();
    }
  });
});
