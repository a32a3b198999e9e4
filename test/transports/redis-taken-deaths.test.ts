/**
 * redis between processes: what the callers of a server SIGKILLed mid-call get when the calls
 * were taken off the version's shared list (unsharded). The server tells the caller which
 * instance took a call still running at the end of its turn; the caller watches that instance
 * and, once its entry expires (`aliveTtlMs` after its last refresh), fails the call UNAVAILABLE
 * as maybe delivered: a call that may be retried (`@idempotent`, or `{ retry }` on the call) is
 * retried and answered by the instance still alive, the others fail at once saying that the
 * call may have run, instead of both waiting out their deadline. A server that dies in the turn
 * it took the calls in sends no notice: its callers find their calls gone from the list and fail
 * them the same way once the entries of that moment have expired. A server stopped gracefully
 * keeps its callers waiting for the replies of the calls it still runs.
 */
import { expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import { describeWithBroker } from "./amqp-broker.js";
import { until } from "./conformance.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { ConformanceService } from "./fixtures/handlers.js";
import { callNames, killAndSettle, sleepCalls, Survivor } from "./fixtures/killed-mid-call.js";
import { captureLog } from "./fixtures/log.js";
import { startPeer } from "./fixtures/peers.js";
import { undoAfterEach } from "./fixtures/process-cleanup.js";
import { up } from "./processes.js";
import { deleteKeys, REDIS_URL } from "./redis-server.js";

const ETCD = "etcd://127.0.0.1:2379";
/** The dead server's alive entry expires within this after the kill. */
const ALIVE_TTL_MS = 1000;
const TIMEOUT_MS = 8000;

/** Holds its one slot (`maxInFlight` 1) with the `blocker` call until it is cancelled; answers any other at once. */
class BusySurvivor extends ConformanceService {
  override async sleep(req: { ms: number }, ctx: Parameters<ConformanceService["sleep"]>[1]): Promise<void> {
    if (ctx.headers["x-call"] === "blocker") return super.sleep(req, ctx);
    this.started.push(String(ctx.headers["x-call"]));
  }
}

describeWithBroker(
  up.redis && up.etcd,
  "Redis and etcd",
  "redis processes",
)("redis: a server SIGKILLed while it runs unsharded calls", () => {
  const { peers, apps, clusters } = undoAfterEach((c) => deleteKeys(`fan.${c}.*`));

  const newApp = (cluster: string, maxInFlight?: number): App => {
    const app = createApp({
      cluster,
      discovery: ETCD,
      logger: captureLog().log,
      transports: { redis: { url: REDIS_URL, aliveTtlMs: ALIVE_TTL_MS, maxInFlight } },
    });
    apps.push(app);
    return app;
  };

  /**
   * A peer serving Conformance in a cluster of its own, `count` 20 s `sleep` calls (with `retry`
   * attempts each) running in it, a second instance in this process, and the calls' outcomes.
   */
  const callsRunningInPeer = async (retry: number | false, count: number) => {
    const cluster = `redisk-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const peer = await startPeer({
      TRANSPORT: "redis",
      CLUSTER: cluster,
      TRANSPORT_OPTIONS: JSON.stringify({ url: REDIS_URL, aliveTtlMs: ALIVE_TTL_MS }),
    });
    peers.push(peer);
    const caller = newApp(cluster);
    await caller.start();
    const client = caller.client(Conformance, { transport: "redis", policy: { breaker: false } });
    const outcomes = sleepCalls(client, count, retry, TIMEOUT_MS);
    await peer.waitFor(() => peer.lines.filter((l) => "sleeping" in l).length === count, 10_000);
    // Started once the peer holds every call: it can take none of them.
    const survivor = new Survivor();
    await newApp(cluster)
      .serve(Conformance, survivor, { transports: ["redis"] })
      .start();
    return { peer, outcomes, survivor };
  };

  it("a call that may be retried fails over to the instance still alive once the dead one's entry expires", async () => {
    // Sixteen: the dead instance's calls take one token of the retry budget between them (its
    // death is one event), where one each left four of them retried and then, with the floor of
    // retries a second, fourteen.
    const { peer, outcomes, survivor } = await callsRunningInPeer(2, 16);
    const { done, killedAt } = await killAndSettle(peer, outcomes);
    for (const o of done) {
      expect(o).toMatchObject({ code: "OK", message: "" });
      expect(o.at - killedAt).toBeLessThan(ALIVE_TTL_MS + 1500);
    }
    expect(survivor.started.sort()).toEqual(callNames(16));
  }, 60_000);

  it("a call that may not be retried fails UNAVAILABLE at once, saying it may have run, and does not run again", async () => {
    const { peer, outcomes, survivor } = await callsRunningInPeer(false, 5);
    const { done, killedAt } = await killAndSettle(peer, outcomes);
    for (const o of done) {
      expect(o.code).toBe("UNAVAILABLE");
      expect(o.message).toMatch(/took the call and is no longer alive; the call may have run there/);
      expect(o.at - killedAt).toBeLessThan(ALIVE_TTL_MS + 1500);
    }
    expect(survivor.started).toEqual([]);
  }, 60_000);

  /**
   * `count` 20 s `sleep` calls (with `retry` attempts each) taken in one pop by a peer that
   * SIGKILLs itself in the turn it took them in (no taken notice), while a second instance,
   * started first, holds its one slot with a call of its own; that call is cancelled once the
   * peer is dead, so the second instance takes what comes after.
   */
  const callsTakenByPeerDyingInTurn = async (retry: number | false, count: number) => {
    const cluster = `redisk-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const survivor = new BusySurvivor();
    await newApp(cluster, 1)
      .serve(Conformance, survivor, { transports: ["redis"] })
      .start();
    const caller = newApp(cluster);
    await caller.start();
    const client = caller.client(Conformance, { transport: "redis", policy: { breaker: false } });
    const blocking = new AbortController();
    const blocker = client
      .sleep(
        { ms: 60_000 },
        { timeout: 60_000, retry: false, signal: blocking.signal, headers: { "x-call": "blocker" } },
      )
      .catch(() => undefined);
    await until(() => survivor.started.includes("blocker"), 10_000);
    const peer = await startPeer({
      TRANSPORT: "redis",
      CLUSTER: cluster,
      TRANSPORT_OPTIONS: JSON.stringify({ url: REDIS_URL, aliveTtlMs: ALIVE_TTL_MS }),
      SLEEP_KILLS: "1",
    });
    peers.push(peer);
    // Made in one tick: one LPUSH, which the peer's waiting pop takes whole.
    const outcomes = sleepCalls(client, count, retry, TIMEOUT_MS);
    await peer.waitFor((l) => "sleeping" in l, 10_000);
    await peer.kill();
    const killedAt = Date.now();
    expect(peer.lines.filter((l) => "sleeping" in l)).toHaveLength(1);
    blocking.abort();
    await blocker;
    return { outcomes, survivor, killedAt };
  };

  it("a call taken by a server that dies in the same turn is retried on the instance still alive", async () => {
    // Sixteen, lost with an unnamed taker of the list: one token between them, as above.
    const { outcomes, survivor, killedAt } = await callsTakenByPeerDyingInTurn(2, 16);
    const done = await Promise.all(outcomes);
    for (const o of done) {
      expect(o).toMatchObject({ code: "OK", message: "" });
      expect(o.at - killedAt).toBeLessThan(ALIVE_TTL_MS + 2500);
    }
    expect(survivor.started.sort()).toEqual(["blocker", ...callNames(16)].sort());
  }, 60_000);

  it("a call taken by a server that dies in the same turn, not to be retried, fails UNAVAILABLE before its deadline", async () => {
    const { outcomes, survivor, killedAt } = await callsTakenByPeerDyingInTurn(false, 5);
    const done = await Promise.all(outcomes);
    for (const o of done) {
      expect(o.code).toBe("UNAVAILABLE");
      expect(o.message).toMatch(/took the call and was lost before it said so; the call may have run there/);
      expect(o.at - killedAt).toBeLessThan(ALIVE_TTL_MS + 2500);
    }
    expect(survivor.started).toEqual(["blocker"]);
  }, 60_000);

  it("a server stopping gracefully keeps its callers waiting for the calls it still runs", async () => {
    const cluster = `redisk-${process.pid}-${shortId()}`;
    clusters.push(cluster);
    const server = newApp(cluster).serve(Conformance, new ConformanceService(), { transports: ["redis"] });
    await server.start();
    const caller = newApp(cluster);
    await caller.start();
    const client = caller.client(Conformance, { transport: "redis", policy: { breaker: false } });
    // Longer than the alive entry lives once the stop removed it, so the watch sees it gone.
    const call = client.sleep({ ms: ALIVE_TTL_MS * 3 }, { timeout: TIMEOUT_MS, retry: false });
    await new Promise((r) => setTimeout(r, 300));
    const stopped = server.stop();
    await expect(call).resolves.toBeUndefined();
    await stopped;
  }, 60_000);
});
