/**
 * How a push's deliveries end, between processes over amqp, redis and nats (a notifier in a
 * child process, fixtures/notifier-child.ts, whose handlers all fail), and in-process over the
 * local transport: `@retry(n)` on a push bounds its deliveries to n + 1 before the dead-letter
 * queue, below the transport's `maxDeliveries` (5 here); a push whose handler throws an
 * IDL-declared error is dead-lettered at its first delivery, with one warning naming the
 * method, the error and where it went, also for a declared error with a retryable code; a
 * failure whose `details.retryAfterMs` (here: every circuit breaker of a dependency open) says
 * when trying again can help is redelivered no sooner than that.
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { Code, FanError } from "../../src/runtime/errors.js";
import { localTransport } from "../../src/runtime/transports/local/index.js";
import { describeWithBroker } from "./amqp-broker.js";
import { type ChildApp, childApp } from "./child.js";
import { until } from "./conformance.js";
import {
  AccountBusy,
  AccountNotFound,
  Notifier,
  type NotifierClient,
  NotifierDescriptor,
} from "./fixtures/generated-notifier/fan/notifier.js";
import { captureLog } from "./fixtures/log.js";
import { deadLetterKey, PUSH_GROUP, pushKey } from "../../src/runtime/transports/redis/names.js";
import { encodeEnvelopeText } from "../../src/runtime/codec/wire.js";
import type { Envelope } from "../../src/runtime/transports/transport.js";
import { readStream, withRedis } from "./redis-server.js";
import { ETCD, factoryFor, forgetCluster, runnable, uniqueCluster } from "./processes.js";

const script = fileURLToPath(new URL("./fixtures/notifier-child.ts", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Line {
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

/** The notifier in a child process serving over `name`, and a client of it in this one. */
interface Notified {
  child: ChildApp;
  app: App;
  client: NotifierClient;
}

/** Starts the notifier over `name` in `cluster` (in `into`) in a beforeAll, and stops it after. */
function notifierOver(name: "amqp" | "redis" | "nats" | "http", cluster: string, into: Notified): void {
  beforeAll(async () => {
    into.child = childApp({ FAN_CHILD_TRANSPORTS: name, FAN_CHILD_CLUSTER: cluster, FAN_ETCD: ETCD }, script);
    await into.child.next("ready");
    into.app = createApp({
      cluster,
      discovery: `etcd://${ETCD}`,
      transports: { [name]: factoryFor(name) },
      logger: captureLog().log,
    });
    await into.app.start();
    into.client = into.app.client(Notifier, { transport: name });
  }, 60_000);
  afterAll(async () => {
    await into.child?.stop();
    await into.app?.stop();
    if (name !== "http") await forgetCluster(cluster, [name]);
  });
}

for (const name of ["amqp", "redis", "nats"] as const) {
  describeWithBroker(
    runnable(name),
    `${name} and etcd`,
    `push ends over ${name}`,
  )(`push ends over ${name}, the notifier in a process of its own`, () => {
    const n = {} as Notified;
    notifierOver(name, uniqueCluster(`pushends-${name}`), n);

    const deliveries = (method: string, id: string): unknown[] =>
      n.child.events.filter((e) => e.event === "delivery" && e.method === method && e.id === id).map((e) => e.attempt);
    // The lines about push `id`, or, naming no push id, about a push of `method`.
    const lines = (id: string, method?: string): Line[] =>
      n.child.events.flatMap((e) => {
        if (e.event !== "log") return [];
        const l = e as unknown as Line;
        const about =
          (method !== undefined && l.fields.targetMethod === method) || JSON.stringify(l.fields).includes(`"${id}"`);
        return about ? [l] : [];
      });
    const deadLettered = async (id: string, method?: string): Promise<Line> => {
      await until(() => lines(id, method).some((l) => l.msg.includes("dead-lettered")), 20_000);
      // Time for a delivery the limit should have prevented (retryDelayMs 20, doubling).
      await sleep(1500);
      return lines(id, method).find((l) => l.msg.includes("dead-lettered")) as Line;
    };

    it("@retry(1) on a push: delivered twice, then dead-lettered (maxDeliveries is 5)", async () => {
      const id = `notify-${name}`;
      await n.client.notify({ id }, { idempotencyKey: id });
      const line = await deadLettered(id, "notify");
      expect(deliveries("notify", id)).toEqual([1, 2]);
      expect(line.msg).toContain("delivery failed 2 times (its @retry allows 2); dead-lettered");
      expect(line.fields.targetMethod).toBe("notify");
    }, 30_000);

    it("a push without @retry keeps the transport's maxDeliveries", async () => {
      const id = `plain-${name}`;
      await n.client.plain({ id }, { idempotencyKey: id });
      const line = await deadLettered(id, "plain");
      expect(deliveries("plain", id)).toEqual([1, 2, 3, 4, 5]);
      expect(line.msg).toContain("delivery failed 5 times; dead-lettered");
    }, 30_000);

    it("a failure whose dependency's circuit breakers are all open is redelivered no sooner than its retryAfterMs", async () => {
      const id = `breaker-${name}`;
      await n.client.plain({ id }, { idempotencyKey: id });
      // The child's retryDelayMs is 20: without retryAfterMs the third delivery comes within 100 ms.
      const at = () =>
        n.child.events
          .filter((e) => e.event === "delivery" && e.method === "plain" && e.id === id)
          .map((e) => e.at as number);
      await until(() => at().length >= 3, 20_000);
      const [first, second, third] = at();
      expect(second - first).toBeGreaterThanOrEqual(1500);
      expect(third - second).toBeGreaterThanOrEqual(1500);
      // redis and nats name the entry or sequence, not the push id: this is the only plain push whose failure names mailer.
      const redelivering = lines(id, "plain").filter((l) => l.msg.includes("mailer"));
      expect(redelivering[0]?.msg).toMatch(
        /^delivery failed; redelivering in 1500 ms \(the circuit breaker of every mailer instance is open \(retryAfterMs 1500\)\)$/,
      );
      expect(redelivering[0]?.fields.retryMs).toBe(1500);
    }, 30_000);

    for (const error of ["AccountNotFound", "AccountBusy"]) {
      it(`a declared error (${error}) is final: one delivery, one warning, the dead-letter queue`, async () => {
        const id = `settle-${error}-${name}`;
        await n.client.settle({ id, error }, { idempotencyKey: id });
        const line = await deadLettered(id);
        expect(deliveries("settle", id)).toEqual([1]);
        expect(lines(id).map((l) => l.msg)).toEqual([line.msg]);
        expect(line.msg).toContain(
          `push fan.notifier.Notifier.settle failed with its declared error fan.notifier.${error}`,
        );
        expect(line.msg).toContain("final, not delivered again; dead-lettered to ");
        expect(line.fields.error).toBe(`fan.notifier.${error}`);
        expect(line.fields.deadLetters).toEqual(expect.any(String));
      }, 30_000);
    }
  });
}

describeWithBroker(
  runnable("http"),
  "etcd",
  "push ends over http",
)("push ends over http, between processes", () => {
  const n = {} as Notified;
  notifierOver("http", uniqueCluster("pushends-http"), n);
  const deliveries = (method: string, id: string): unknown[] =>
    n.child.events.filter((e) => e.event === "delivery" && e.method === method && e.id === id).map((e) => e.attempt);

  it("@retry(1): the sender sends it twice (pushAttempts is 5), then the push rejects", async () => {
    const e = await n.client.notify({ id: "h-notify" }).then(
      () => undefined,
      (err: unknown) => err as FanError,
    );
    expect(e?.message).toContain("(final)");
    // The child's lines come through a pipe, after its answer may have.
    await until(() => deliveries("notify", "h-notify").length > 0);
    await sleep(300);
    expect(deliveries("notify", "h-notify")).toEqual([1, 2]);
  });

  it("a declared error is final: sent once, one warning naming it", async () => {
    const e = await n.client.settle({ id: "h-settle", error: "AccountNotFound" }).then(
      () => undefined,
      (err: unknown) => err as FanError,
    );
    expect(e?.message).toContain("(final)");
    // The child's lines come through a pipe, after its answer may have.
    await until(() => deliveries("settle", "h-settle").length > 0);
    await sleep(300);
    expect(deliveries("settle", "h-settle")).toEqual([1]);
    await until(() => n.child.events.some((l) => l.event === "log" && String(l.msg).includes("declared error")));
    const warned = n.child.events.filter((l) => l.event === "log" && String(l.msg).includes("settle"));
    expect(warned.map((l) => l.msg)).toEqual([
      "push handler settle failed with its declared error fan.notifier.AccountNotFound: final, not delivered again",
    ]);
  });
});

// A push two deliveries of which a consumer that died held (XPENDING counts 2, the consumer not
// in the live set): the next live consumer claims it as its third delivery, past `@retry(1)`'s 2.
describeWithBroker(
  runnable("redis"),
  "Redis and etcd",
  "push ends: held past the limit",
)("push ends over redis: a push dead consumers held past its @retry limit", () => {
  const cluster = uniqueCluster("pushends-held");
  const key = pushKey({ cluster, service: NotifierDescriptor.name, version: NotifierDescriptor.version });
  beforeAll(async () => {
    const env: Envelope = {
      v: 1,
      id: "held-1",
      kind: "push",
      service: NotifierDescriptor.name,
      method: "notify",
      version: NotifierDescriptor.version,
      headers: {},
      payload: { id: "held-1" },
    };
    await withRedis(async (r) => {
      await r.xgroup("CREATE", key, PUSH_GROUP, "0", "MKSTREAM");
      const id = await r.xadd(key, "*", "e", encodeEnvelopeText(env));
      await r.xreadgroup("GROUP", PUSH_GROUP, "ghost", "COUNT", 1, "STREAMS", key, ">");
      await r.xclaim(key, PUSH_GROUP, "ghost", 0, id as string);
    });
  });
  const n = {} as Notified;
  notifierOver("redis", cluster, n);

  it("is dead-lettered as it is claimed, not delivered a third time", async () => {
    const held = () => n.child.events.filter((e) => e.event === "log" && String(e.msg).includes("@retry allows"));
    await until(() => held().length > 0, 20_000);
    await sleep(500);
    expect(held().map((e) => e.msg)).toEqual([
      "not acknowledged after 2 deliveries (its @retry allows 2) (its consumers went away holding it); dead-lettered",
    ]);
    expect(n.child.events.filter((e) => e.event === "delivery")).toEqual([]);
    const dead = await readStream(deadLetterKey(key));
    expect(dead.map(([, f]) => f.reason)).toEqual(["not acknowledged after 2 deliveries (its @retry allows 2)"]);
  }, 40_000);
});

describe("push ends over the local transport", () => {
  const log = captureLog();
  const seen: Array<{ method: string; id: string; attempt: number; at?: number }> = [];
  let app: App;
  let client: NotifierClient;
  beforeAll(async () => {
    app = createApp({
      cluster: uniqueCluster("pushends-local"),
      discovery: "memory",
      transports: { local: localTransport({ backoffMs: 5 }) },
      logger: log.log,
    });
    app.serve(Notifier, {
      notify(req, ctx) {
        seen.push({ method: "notify", id: req.id, attempt: ctx.attempt });
        throw new FanError(Code.UNAVAILABLE, "the mail gateway is down");
      },
      plain(req, ctx) {
        seen.push({ method: "plain", id: req.id, attempt: ctx.attempt, at: Date.now() });
        const open = new FanError(Code.UNAVAILABLE, "every circuit breaker of mailer is open", {
          details: { service: "mailer", openBreakers: ["m1"], retryAfterMs: 400 },
        });
        throw new FanError(Code.UNAVAILABLE, "sending failed", { cause: open });
      },
      settle(req, ctx) {
        seen.push({ method: "settle", id: req.id, attempt: ctx.attempt });
        if (req.error === "AccountBusy") throw new AccountBusy({ account: req.id });
        throw new AccountNotFound({ account: req.id });
      },
      lookup() {},
    });
    await app.start();
    client = app.client(Notifier, { transport: "local" });
  });
  afterAll(() => app.stop());
  const attempts = (method: string, id: string) =>
    seen.filter((s) => s.method === method && s.id === id).map((s) => s.attempt);

  it("@retry(1): two attempts, then given up", async () => {
    await client.notify({ id: "n" });
    await until(() => log.find("given up after").length > 0);
    await sleep(200);
    expect(attempts("notify", "n")).toEqual([1, 2]);
  });

  it("a failure's retryAfterMs (a dependency's breakers all open) holds its redeliveries back", async () => {
    await client.plain({ id: "b" });
    const at = () => seen.filter((s) => s.method === "plain" && s.id === "b").map((s) => s.at as number);
    await until(() => at().length >= 3, 5000);
    const [first, second, third] = at();
    // backoffMs is 5: without retryAfterMs the third attempt comes within 20 ms.
    expect(second - first).toBeGreaterThanOrEqual(400);
    expect(third - second).toBeGreaterThanOrEqual(400);
  });

  it("the wait is not cut at the push's deadline, which bounds its send, not its deliveries", async () => {
    // A queued push is handled with no deadline (a backlog delivers it past its @timeout); the
    // 100 ms deadline here stands for one that passed while the push waited in a queue.
    await client.plain({ id: "d" }, { timeout: 100 });
    const at = () => seen.filter((s) => s.method === "plain" && s.id === "d").map((s) => s.at as number);
    await until(() => at().length >= 3, 5000);
    const [first, second, third] = at();
    expect(second - first).toBeGreaterThanOrEqual(400);
    expect(third - second).toBeGreaterThanOrEqual(400);
  });

  it("a declared error with a retryable code is final: one attempt, one warning", async () => {
    await client.settle({ id: "s", error: "AccountBusy" });
    await until(() => log.find("declared error").length > 0);
    await sleep(200);
    expect(attempts("settle", "s")).toEqual([1]);
    const found = log.find("declared error");
    expect(found.map((r) => r.msg)).toEqual([
      "push fan.notifier.Notifier.settle failed with its declared error fan.notifier.AccountBusy (UNAVAILABLE): final, not delivered again; dead-lettered to nowhere (the local transport keeps no dead letters)",
    ]);
  });
});
