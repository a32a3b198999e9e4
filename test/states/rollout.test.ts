/**
 * Versions changing under a watch, owners and watchers in processes of their own over redis
 * (test/states/fixtures/node.ts): a major whose only owner is a prerelease (the default `2.x`
 * range admits none, for calls and states alike).
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { REDIS_URL } from "../transports/redis-server.js";
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
});
