/**
 * A breaker guards an instance, not its dependencies: service A's handler calls B, B is down, and
 * A relays B's UNAVAILABLE. The caller gets the error as it was (code, message, trace id) marked
 * `relayedFrom`, its breaker on A stays closed and another method of A still answers, and the
 * relayed error is not retried. A's own failure (INTERNAL) still opens the breaker, and so does an
 * IDL error of another service that A's handler throws itself (INTERNAL: nothing of it leaks). Through
 * generated clients over http, redis (a broker: the breaker guards the queue) and in-process.
 */
import { pino } from "pino";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type App, type AppOptions, createApp } from "../../src/runtime/app/app.js";
import type { CallContext } from "../../src/runtime/index.js";
import { Code, FanError } from "../../src/runtime/errors.js";
import { shortId } from "../../src/runtime/ids.js";
import { reachable } from "../transports/amqp-broker.js";
import { rejection, until } from "../transports/conformance.js";
import { deleteKeys, REDIS_URL } from "../transports/redis-server.js";
import { ConformanceService } from "../transports/fixtures/handlers.js";
import { Conformance, Teapot } from "../transports/fixtures/generated/fan/conformance.js";
import { FlakyImpl } from "./fixtures/handlers.js";
import { type Answer, Flaky, type FlakyClient, type FlakyHandler } from "./fixtures/generated/fan/policytest.js";

const silent = pino({ level: "silent" });
const cluster = `relay-${process.pid}-${shortId()}`;
const service = Flaky.descriptor.name;
const redisUp = await reachable("127.0.0.1", Number(new URL(REDIS_URL).port || 6379));
const apps: App[] = [];

afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
});

afterAll(async () => {
  if (redisUp) await deleteKeys(`fan.${cluster}*`);
});

/** Service A: `read` relays whatever its call to B does; `write` answers alone; `readMore` crashes (INTERNAL). */
class RelayImpl implements FlakyHandler {
  readonly reads: FanError[] = [];
  constructor(readonly dependency: () => FlakyClient) {}

  async read({ n }: { n: number }, _ctx: CallContext): Promise<Answer> {
    try {
      return await this.dependency().read({ n });
    } catch (e) {
      if (FanError.is(e)) this.reads.push(e);
      throw e;
    }
  }

  write({ n }: { n: number }): Answer {
    return { instance: "a", n };
  }

  readMore(): Answer {
    throw new Error("a broke");
  }
}

function start(app: App): Promise<App> {
  apps.push(app);
  return app.start().then(() => app);
}

const cases: Record<"http" | "redis" | "local", AppOptions["transports"] | undefined> = {
  http: { http: {} },
  redis: redisUp ? { redis: { url: REDIS_URL } } : undefined,
  local: {},
};

for (const [name, transports] of Object.entries(cases)) {
  const suite = transports === undefined ? describe.skip : describe;
  suite(`a relayed error over ${name}`, () => {
    const c = `${cluster}-${name}`;
    const base: AppOptions = { cluster: c, discovery: "memory", logger: silent, transports: transports as never };

    /** B served in a cluster of its own, then stopped; A and the caller (breaker: 3 failures). */
    async function system(): Promise<{ a: RelayImpl; client: FlakyClient; caller: App }> {
      const b = await start(
        createApp({ ...base, cluster: `${c}-b` }).serve(Flaky, new FlakyImpl("b"), { instanceId: "b" }),
      );
      const dep = await start(createApp({ ...base, cluster: `${c}-b` }));
      const toB = dep.client(Flaky, { policy: { retry: false } });
      expect(await toB.read({ n: 0 })).toEqual({ instance: "b", n: 0 });
      await b.stop();
      return serveA(new RelayImpl(() => toB));
    }

    /** A served with `a` as its handler, and the caller (breaker: 3 failures). */
    async function serveA(a: RelayImpl): Promise<{ a: RelayImpl; client: FlakyClient; caller: App }> {
      const policy = { breaker: { failures: 3, ratio: 0.5, openMs: 60_000 } };
      let caller: App;
      if (name === "local") {
        caller = await start(createApp({ ...base, policy }).serve(Flaky, a, { instanceId: "a" }));
      } else {
        await start(createApp(base).serve(Flaky, a, { instanceId: "a", transports: [name as "http"] }));
        caller = await start(createApp({ ...base, policy }));
        const set = await caller.watch(service);
        await until(() => set.instances().length === 1);
      }
      const client = caller.client(Flaky, name === "local" ? {} : { transport: name as "http" });
      return { a, client, caller };
    }

    it("keeps the breaker on the relaying instance closed; its other methods still answer", async () => {
      const { a, client, caller } = await system();
      for (let i = 0; i < 6; i++) {
        const err = await rejection(() => client.read({ n: i }));
        const relayed = a.reads.at(-1) as FanError;
        expect(err.code).toBe(Code.UNAVAILABLE);
        expect(err.message).toBe(relayed.message);
        expect(err.relayedFrom).toBe(service);
        expect(err.traceId).toMatch(/^[0-9a-f]{32}$/);
        expect(err.traceId).toBe(relayed.traceId);
      }
      // Not retried (read is @idempotent): another instance of A would call the same B.
      expect(a.reads).toHaveLength(6);
      expect(caller.policy.breakerStates().every((s) => s.state === "closed")).toBe(true);
      expect(await client.write({ n: 7 })).toEqual({ instance: "a", n: 7 });
    });

    it("relays an IDL error of B that A does not declare with its code, name and fields, not as INTERNAL", async () => {
      await start(
        createApp({ ...base, cluster: `${c}-t` }).serve(Conformance, new ConformanceService(), { instanceId: "t" }),
      );
      const toB = (await start(createApp({ ...base, cluster: `${c}-t` }))).client(Conformance);
      // A is Flaky, whose IDL declares Refused only; B's Teapot reaches its handler uncaught.
      const teapot = { read: () => toB.fail({ code: "TEAPOT", message: "no coffee here" }) };
      const { a, client, caller } = await serveA(new RelayImpl(() => teapot as unknown as FlakyClient));
      for (let i = 0; i < 3; i++) {
        const err = await rejection(() => client.read({ n: i }));
        expect(a.reads.at(-1)?.constructor.name).toBe("Teapot");
        expect(err.code).toBe(Code.FAILED_PRECONDITION);
        expect(err.message).toBe("no coffee here");
        expect(err.relayedFrom).toBe(Conformance.descriptor.name);
        // The caller's IDL of A does not know Teapot: its name and fields come as details.
        expect(err.details).toEqual({ error: "fan.conformance.Teapot", fields: { reason: "short and stout" } });
      }
      // An answer of a healthy A: its breaker stays closed (three INTERNALs would have opened it).
      expect(caller.policy.breakerStates().every((s) => s.state === "closed")).toBe(true);
    });

    it("makes an IDL error of another service that A's handler throws itself INTERNAL, naming only the trace", async () => {
      // Not the error of one of A's calls: A built B's Teapot itself, and Flaky does not declare it.
      const thrown: Teapot[] = [];
      const own = {
        read: async () => {
          const e = new Teapot({ reason: "a secret of A" }, "A's own teapot");
          thrown.push(e);
          throw e;
        },
      };
      const { client, caller } = await serveA(new RelayImpl(() => own as unknown as FlakyClient));
      for (let i = 0; i < 3; i++) {
        const err = await rejection(() => client.read({ n: i }));
        expect(thrown).toHaveLength(i + 1);
        expect(err.code).toBe(Code.INTERNAL);
        expect(err.message).toMatch(/^internal error \(trace [0-9a-f]{32}\)$/);
        expect(err.relayedFrom).toBeUndefined();
        expect(err.details).toBeUndefined();
        expect(err.constructor.name).not.toBe("Teapot");
        expect(JSON.stringify({ ...err, message: err.message })).not.toMatch(/Teapot|secret|own teapot/);
      }
      // A's own failure: three open the breaker, as any INTERNAL does.
      expect(caller.policy.breakerStates()).toEqual([expect.objectContaining({ service, state: "open" })]);
    });

    it("still opens the breaker on A's own failure (INTERNAL)", async () => {
      const { client, caller } = await system();
      for (let i = 0; i < 3; i++) {
        const err = await rejection(() => client.readMore({ n: i }));
        expect(err.code).toBe(Code.INTERNAL);
        expect(err.relayedFrom).toBeUndefined();
      }
      expect(caller.policy.breakerStates()).toEqual([expect.objectContaining({ service, state: "open" })]);
      const err = await rejection(() => client.write({ n: 9 }));
      expect(err.message).toContain("circuit breaker of every instance is open");
    });
  });
}
