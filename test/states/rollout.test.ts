/**
 * Versions changing under a watch, owners and watchers in processes of their own over redis
 * (test/states/fixtures/node.ts): a major whose only owner is a prerelease (the default `2.x`
 * range admits none, for calls and states alike; a shard's view too), an owner upgraded from
 * 1.x to 2.0 while 1.x watchers stay (a `@unique` one too: its election spans majors), an owner
 * that stops while another, of another minor, takes over, and a 2.0 owner with `persist` next
 * to a value a 1.x owner saved before each major had its own key.
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { REDIS_URL, withRedis } from "../transports/redis-server.js";
import { clusterNodes, converged, type Node, until } from "./processes.js";

const nodes: Node[] = [];
afterEach(async () => {
  await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));
});

const redis = { name: "redis", transports: () => ({ redis: { url: REDIS_URL } }) };

/** The `reason` of the process's warnings `msg`. */
const warned = (n: Node, msg: string): string[] =>
  n.logs.flatMap((l) => {
    const o = JSON.parse(l) as { level?: number; msg?: string; reason?: string };
    return o.level === 40 && o.msg === msg ? [o.reason ?? ""] : [];
  });

/** How many log lines of `n` start with `msg`. */
const lines = (n: Node, msg: string): number =>
  n.logs.filter((l) => (JSON.parse(l) as { msg?: string }).msg?.startsWith(msg) === true).length;

/** The error message a command of `n` rejects with. */
const refusal = (n: Node, op: string): Promise<string> =>
  n.send(op).then(
    (r) => `answered ${JSON.stringify(r)}`,
    (e: unknown) => (e as Error).message,
  );

describe("a major whose only owner is a prerelease", () => {
  const cluster = `rollout-beta-${process.pid}-${shortId()}`;
  const nodesOf = clusterNodes(cluster, redis, nodes, { FAN_LOG_LEVEL: "info" });
  afterAll(nodesOf.forget);

  it("a client of the default range 2.x is refused as its calls are, with a reason and a warning naming the prerelease and the range that admits it, and goes live once a 2.x release owns the state", async () => {
    // Started before any owner: absent because none is registered.
    const early = await nodesOf.start("watcher", { FAN_STATES_VERSION: "2.0.0" });
    await until(
      "no instance is registered",
      () => early.report(),
      (r) => r.status === "owner-absent" && r.reason?.includes("no instance is registered") === true,
    );
    const beta = await nodesOf.start("owner", { FAN_STATES_VERSION: "2.0.0-beta.1" });
    await beta.send("set", { value: { b: { n: 2, label: "beta" } } });
    const late = await nodesOf.start("watcher", { FAN_STATES_VERSION: "2.0.0" });

    const why =
      "fan.replica.Board.entries: major 2 runs only prereleases (2.0.0-beta.1), which the range 2.x does not admit (a range admits a prerelease only when it names one, as in semver), so this client's calls do not reach them either; to watch a prerelease's state, give the client a range that names it: { version: \"2.x || 2.0.0-beta.1\" }";
    for (const w of [early, late]) {
      // Before, the reason was the call's "no instance of fan.replica.Board 2.x (versions
      // available: 2.0.0-beta.1)" under "owner absent", though the beta's heartbeats reach the
      // view; and a view started before the beta warned only "no instance is registered".
      const r = await until(
        "the prerelease refusal",
        () => w.report(),
        (r) => r.reason === why,
      );
      expect(r).toMatchObject({ status: "owner-absent", snapshots: 0 });
      expect(r.value).toBeUndefined();
      await until(
        "its warning",
        async () => warned(w, "state owner absent"),
        (reasons) => reasons.includes(why),
      );
      // Its calls are refused as its snapshots are; get() says why as the view does.
      expect(await refusal(w, "ping")).toBe("no instance of fan.replica.Board 2.x (versions available: 2.0.0-beta.1)");
      expect(await refusal(w, "get")).toBe(why);
    }
    expect(warned(early, "state owner absent")).toEqual([expect.stringContaining("no instance is registered"), why]);
    // Once: the retries every heartbeat period repeat no warning.
    await new Promise((r) => setTimeout(r, 1000));
    expect(warned(late, "state owner absent")).toEqual([why]);

    // A client whose range names the beta follows it (as its calls reach it).
    const named = await nodesOf.start("watcher", {
      FAN_STATES_VERSION: "2.0.0",
      FAN_STATES_CLIENT_VERSION: "2.x || 2.0.0-beta.1",
    });
    expect((await converged(named, beta, "the watcher naming the beta live on it")).value).toEqual({
      b: { n: 2, label: "beta" },
    });
    expect(await named.send("ping")).toMatchObject({ value: "pong" });

    // The beta is replaced by the release: the 2.x watchers go live on it.
    await beta.stop();
    const release = await nodesOf.start("owner", { FAN_STATES_VERSION: "2.0.0" });
    await release.send("set", { value: { r: { n: 3, label: "release" } } });
    for (const w of [early, late, named])
      expect((await converged(w, release, "live on the 2.0.0 owner")).value).toEqual({ r: { n: 3, label: "release" } });
  }, 90_000);

  it("handed over to a prerelease of the major: the 1.x watcher says so, as its calls are refused", async () => {
    const v1 = await nodesOf.start("owner", { FAN_STATES_VERSION: "1.2.0" });
    await v1.send("set", { value: { a: { n: 1, label: "one" } } });
    const w = await nodesOf.start("watcher", { FAN_STATES_VERSION: "1.2.0" });
    await converged(w, v1, "live on 1.2.0");
    await v1.stop();
    const rc = await nodesOf.start("owner", { FAN_STATES_VERSION: "1.3.0-rc.1" });
    await rc.send("set", { value: { r: { n: 2, label: "rc" } } });
    const why =
      "fan.replica.Board.entries: major 1 runs only prereleases (1.3.0-rc.1), which the range 1.x does not admit (a range admits a prerelease only when it names one, as in semver), so this client's calls do not reach them either; to watch a prerelease's state, give the client a range that names it: { version: \"1.x || 1.3.0-rc.1\" }";
    await until(
      "the prerelease refusal",
      () => w.report(),
      (r) => r.status === "owner-absent" && r.reason === why,
    );
    expect(warned(w, "state owner absent")).toEqual([expect.stringContaining("stopped publishing"), why]);
    expect(await refusal(w, "ping")).toBe("no instance of fan.replica.Board 1.x (versions available: 1.3.0-rc.1)");
    expect((await w.report()).value).toEqual({ a: { n: 1, label: "one" } });
  }, 60_000);

  it("a sharded state: a shard's view of the default range says the same", async () => {
    const sharded = { FAN_STATES_SERVICE: "ShardBoard", FAN_STATES_STATE: "carts" };
    await nodesOf.start("owner", { ...sharded, FAN_STATES_VERSION: "2.0.0-beta.1" });
    const w = await nodesOf.start("watcher", { ...sharded, FAN_STATES_VERSION: "2.0.0", FAN_STATES_SHARDS: "0" });
    const why =
      "fan.replica.ShardBoard.carts: major 2 runs only prereleases (2.0.0-beta.1), which the range 2.x does not admit";
    await until(
      "the prerelease refusal",
      () => w.send("state", { shard: 0 }),
      (r) => r.status === "owner-absent" && String(r.reason).startsWith(why),
    );
    await until(
      "its warning",
      async () => warned(w, "state owner absent"),
      (reasons) => reasons.some((r) => r.startsWith(why)),
    );
  }, 60_000);
});

describe("an owner replaced mid-watch", () => {
  const cluster = `rollout-replace-${process.pid}-${shortId()}`;
  const nodesOf = clusterNodes(cluster, redis, nodes, { FAN_LOG_LEVEL: "info" });
  afterAll(nodesOf.forget);

  it("upgraded from 1.2.0 to 2.0.0: a 1.x watcher stays on the 1.x value, owner-absent naming 2.0.0 as its calls do, never takes 2.0's value, and goes live on a 1.x owner that returns", async () => {
    const v1 = await nodesOf.start("owner", { FAN_STATES_VERSION: "1.2.0" });
    await v1.send("set", { value: { a: { n: 1, label: "one" } } });
    const w1 = await nodesOf.start("watcher", { FAN_STATES_VERSION: "1.2.0" });
    const w2 = await nodesOf.start("watcher", { FAN_STATES_VERSION: "2.0.0" });
    const was = await converged(w1, v1, "the 1.x watcher live on 1.2.0");

    await v1.stop();
    const v2 = await nodesOf.start("owner", { FAN_STATES_VERSION: "2.0.0" });
    await v2.send("set", { value: { b: { n: 2, label: "two" } } });
    expect((await converged(w2, v2, "the 2.x watcher live on 2.0.0")).value).toEqual({ b: { n: 2, label: "two" } });
    const absent = await until(
      "the 1.x watcher absent, naming the 2.0.0 instance",
      () => w1.report(),
      (r) => r.status === "owner-absent" && r.reason?.includes("versions available: 2.0.0") === true,
    );
    const refused = "no instance of fan.replica.Board 1.x (versions available: 2.0.0)";
    expect(absent.reason).toBe(refused);
    expect(await refusal(w1, "ping")).toBe(refused);
    await v2.send("patch", { patch: { c: { n: 3, label: "three" } } });
    await converged(w2, v2, "the 2.x watcher on 2.0.0's patch");
    const still = await w1.report();
    expect(still).toMatchObject({ status: "owner-absent", epoch: was.epoch, seq: was.seq, snapshots: was.snapshots });
    expect(still.value).toEqual({ a: { n: 1, label: "one" } });

    // A rollback: a 1.x owner again.
    const back = await nodesOf.start("owner", { FAN_STATES_VERSION: "1.2.1" });
    await back.send("set", { value: { d: { n: 4, label: "back" } } });
    expect((await converged(w1, back, "the 1.x watcher live on 1.2.1")).value).toEqual({ d: { n: 4, label: "back" } });
    expect(lines(w1, "state snapshot older")).toBe(0);
  }, 90_000);

  it("@unique, persisted: the 1.2.0 leader stops and the 1.3.0 standby takes over; a watcher pinned to ~1.2 follows it with the value continued (the state is the major's), though its calls reach only 1.2.x", async () => {
    const leader = {
      FAN_STATES_SERVICE: "Leader",
      FAN_STATES_STATE: "counter",
      FAN_STATES_PERSIST: REDIS_URL,
      FAN_STATES_FIRST: "{}",
    };
    const a = await nodesOf.start("owner", { ...leader, FAN_STATES_VERSION: "1.2.0" });
    await until(
      "1.2.0 leads",
      () => a.report(),
      (r) => r.active === true,
    );
    const b = await nodesOf.start("owner", { ...leader, FAN_STATES_VERSION: "1.3.0" });
    const w = await nodesOf.start("watcher", {
      ...leader,
      FAN_STATES_VERSION: "1.2.0",
      FAN_STATES_CLIENT_VERSION: "~1.2",
    });
    await a.send("deltas", { n: 50, keys: 10, pace: 5 });
    const before = await converged(w, a, "live on the 1.2.0 leader");
    expect(await w.send("ping")).toMatchObject({ value: "pong" });
    expect((await b.report()).active).toBe(false);

    // Mid-watch: the leader stops while b's updates start as soon as it leads.
    await a.stop();
    await until(
      "1.3.0 leads",
      () => b.report(),
      (r) => r.active === true,
      30_000,
    );
    await b.send("patch", { patch: { handover: 1 } });
    const got = await converged(w, b, "live on the 1.3.0 leader");
    expect(got.epoch).toBeGreaterThan(before.epoch);
    expect(got.value).toEqual({ ...(before.value as object), handover: 1 });
    expect(got.violations).toBe(0);
    expect(await refusal(w, "ping")).toBe("no instance of fan.replica.Leader ~1.2 (versions available: 1.3.0)");
  }, 90_000);

  it("@unique upgraded from 1.2.0 to 2.0.0: the election is the service's, so the 2.0.0 instance waits while 1.2.0 leads (its watchers say no 2.x is registered), then leads; the 1.x watcher keeps its value, owner-absent naming 2.0.0", async () => {
    const leader = { FAN_STATES_SERVICE: "Leader", FAN_STATES_STATE: "counter", FAN_STATES_FIRST: "{}" };
    const v1 = await nodesOf.start("owner", { ...leader, FAN_STATES_VERSION: "1.2.0" });
    await until(
      "1.2.0 leads",
      () => v1.report(),
      (r) => r.active === true,
    );
    await v1.send("patch", { patch: { one: 1 } });
    const v2 = await nodesOf.start("owner", { ...leader, FAN_STATES_VERSION: "2.0.0" });
    const w1 = await nodesOf.start("watcher", { ...leader, FAN_STATES_VERSION: "1.2.0" });
    const w2 = await nodesOf.start("watcher", { ...leader, FAN_STATES_VERSION: "2.0.0" });
    await converged(w1, v1, "the 1.x watcher live on the 1.2.0 leader");
    expect((await v2.report()).active).toBe(false);
    expect(
      await until(
        "the 2.x watcher absent while 1.2.0 leads",
        () => w2.report(),
        (r) => r.status === "owner-absent" && r.reason?.includes("versions available") === true,
      ),
    ).toMatchObject({ reason: "no instance of fan.replica.Leader 2.x (versions available: 1.2.0)" });

    await v1.stop();
    await until(
      "2.0.0 leads",
      () => v2.report(),
      (r) => r.active === true,
      30_000,
    );
    await v2.send("patch", { patch: { two: 2 } });
    expect((await converged(w2, v2, "the 2.x watcher live on the 2.0.0 leader")).value).toEqual({ two: 2 });
    const left = await until(
      "the 1.x watcher absent, naming 2.0.0",
      () => w1.report(),
      (r) => r.status === "owner-absent" && r.reason?.includes("versions available: 2.0.0") === true,
    );
    expect(left.reason).toBe("no instance of fan.replica.Leader 1.x (versions available: 2.0.0)");
    expect(left.value).toEqual({ one: 1 });
  }, 90_000);
});

describe("an owner upgraded to a new major, persisted", () => {
  const cluster = `rollout-persist-${process.pid}-${shortId()}`;
  const nodesOf = clusterNodes(cluster, redis, nodes, { FAN_LOG_LEVEL: "info" });
  afterAll(nodesOf.forget);

  it("a 2.0.0 owner does not resume the 1.x value saved under the key from before each major had its own; a 1.3.0 owner does", async () => {
    // What a 1.2.0 owner saved before the key had the major (ff2ddc1): one key for every major.
    const legacy = `fan.${cluster}.state.fan.replica.Board.entries`;
    const saved = { e: 1, s: 7, v: { a: { n: 1, label: "one" } }, o: "old (1.2.0)" };
    await withRedis((r) => r.set(legacy, JSON.stringify(saved)));
    const persist = { FAN_STATES_PERSIST: REDIS_URL };
    const v2 = await nodesOf.start("owner", { ...persist, FAN_STATES_VERSION: "2.0.0" });
    // Before, it took the 1.x value (another contract's) and published it to 2.x watchers.
    const fresh = await v2.report();
    expect(fresh.atStart).toEqual({}); // { value: undefined }, as JSON
    expect(fresh.value).toBeUndefined();
    expect(fresh.seq).toBe(0);
    expect(v2.logs.filter((l) => l.includes("saved by another major"))).toHaveLength(1);
    await v2.stop();
    const v1 = await nodesOf.start("owner", { ...persist, FAN_STATES_VERSION: "1.3.0" });
    expect(await v1.report()).toMatchObject({ atStart: { value: saved.v }, value: saved.v, seq: 7 });
  }, 60_000);
});
