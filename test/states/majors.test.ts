/**
 * Two major versions of a service with states served side by side (a major-version rollout),
 * owners and watchers in processes of their own, over every transport the states suites cover:
 * each major publishes on a stream of its own, so a watcher generated at 1.x (range 1.x) follows
 * the 1.x owner only and a 2.x watcher the 2.x owner. Before, both majors published on one
 * stream: the 1.x watcher saw 2.x's newer epoch, asked a 1.x instance for a snapshot, got the
 * older epoch and asked again, thousands of times a second. A client pinned to a prerelease
 * (`2.0.0-beta.1`) takes its snapshots from that owner too (`2.x` alone admits no prerelease).
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import { majorsOf } from "../../src/runtime/states/protocol.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { Board } from "./fixtures/generated/fan/replica.js";
import { casesWithHttp, clusterNodes, type Node, converged, type TransportCase } from "./processes.js";

const CASES: readonly TransportCase[] = casesWithHttp();

const nodes: Node[] = [];
afterEach(async () => {
  await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));
});

const lines = (n: Node, msg: string): number =>
  n.logs.filter((l) => (JSON.parse(l) as { msg?: string }).msg?.startsWith(msg) === true).length;

for (const c of CASES) {
  describe(`two majors of a service with states over ${c.name}`, () => {
    const cluster = `majors-${c.name}-${process.pid}-${shortId()}`;
    const nodesOf = clusterNodes(cluster, c, nodes, { FAN_LOG_LEVEL: "info" });
    const start = (role: "owner" | "watcher", version: string): Promise<Node> =>
      nodesOf.start(role, { FAN_STATES_VERSION: version });
    afterAll(nodesOf.forget);

    it("each major keeps its own stream: a 1.x watcher follows the 1.x owner, a 2.x watcher the 2.x owner, no snapshot storm", async () => {
      const v1 = await start("owner", "1.2.0");
      await v1.send("set", { value: { a: { n: 1, label: "one" } } });
      // Started second: the 2.x owner's epoch is the newer one.
      const v2 = await start("owner", "2.0.0");
      await v2.send("set", { value: { b: { n: 2, label: "two" } } });
      expect((await v2.report()).epoch).toBeGreaterThan((await v1.report()).epoch);
      const w1 = await start("watcher", "1.2.0");
      const w2 = await start("watcher", "2.0.0");
      await converged(w1, v1, "1.x watcher live on the 1.x owner");
      await converged(w2, v2, "2.x watcher live on the 2.x owner");

      // Both publish for about a second (2.x's updates and heartbeats would reach a 1.x watcher
      // sharing its stream).
      await Promise.all([
        v2.send("deltas", { n: 20, keys: 5, pace: 50 }),
        v1.send("patch", { patch: { c: { n: 3, label: "three" } } }),
      ]);
      const r1 = await converged(w1, v1, "1.x watcher on the 1.x owner's last update");
      const r2 = await converged(w2, v2, "2.x watcher on the 2.x owner's last update");
      expect(r1.value).toEqual((await v1.report()).value);
      expect(r2.value).toEqual((await v2.report()).value);
      // One snapshot each to start (a second when a heartbeat crossed the first), nothing after.
      expect(r1.snapshots, `1.x watcher log:\n${w1.logs.slice(-5).join("\n")}`).toBeLessThanOrEqual(2);
      expect(r2.snapshots, `2.x watcher log:\n${w2.logs.slice(-5).join("\n")}`).toBeLessThanOrEqual(2);
      for (const w of [w1, w2]) {
        expect(lines(w, "state resyncing")).toBe(0);
        expect(lines(w, "state snapshot older")).toBe(0);
      }
      // Two majors are two contracts, not two owners of one state: neither owner warns.
      for (const o of [v1, v2]) expect(o.logs.filter((l) => l.includes("have one owner per service"))).toEqual([]);
    }, 90_000);

    it("a client's version range picks the major it watches: code at 1.2.0 pinned to 2.x follows the 2.x owner, code at 2.0.0 pinned to ^1.2 the 1.x owner", async () => {
      const v1 = await start("owner", "1.2.0");
      await v1.send("set", { value: { a: { n: 1, label: "one" } } });
      const v2 = await start("owner", "2.0.0");
      await v2.send("set", { value: { b: { n: 2, label: "two" } } });
      // Before, client.states ignored the range: both followed the major of their code.
      const to2 = await nodesOf.start("watcher", { FAN_STATES_VERSION: "1.2.0", FAN_STATES_CLIENT_VERSION: "2.x" });
      const to1 = await nodesOf.start("watcher", { FAN_STATES_VERSION: "2.0.0", FAN_STATES_CLIENT_VERSION: "^1.2" });
      expect((await converged(to2, v2, "the 2.x-pinned watcher live on the 2.x owner")).value).toEqual({
        b: { n: 2, label: "two" },
      });
      expect((await converged(to1, v1, "the ^1.2-pinned watcher live on the 1.x owner")).value).toEqual({
        a: { n: 1, label: "one" },
      });
      // Updates come on the pinned major's stream, not on the code's.
      await v2.send("patch", { patch: { c: { n: 3, label: "three" } } });
      await v1.send("patch", { patch: { d: { n: 4, label: "four" } } });
      expect((await converged(to2, v2, "the 2.x-pinned watcher on the 2.x owner's patch")).value).toEqual({
        b: { n: 2, label: "two" },
        c: { n: 3, label: "three" },
      });
      expect((await converged(to1, v1, "the ^1.2-pinned watcher on the 1.x owner's patch")).value).toEqual({
        a: { n: 1, label: "one" },
        d: { n: 4, label: "four" },
      });
      for (const w of [to1, to2]) expect(lines(w, "state snapshot older")).toBe(0);
    }, 90_000);

    it("a client pinned to a prerelease follows its owner: code at 1.2.0 pinned to 2.0.0-beta.1 goes live on the 2.0.0-beta.1 owner", async () => {
      const beta = await start("owner", "2.0.0-beta.1");
      await beta.send("set", { value: { b: { n: 2, label: "beta" } } });
      // Before, its snapshots went to `2.x`, which admits no prerelease: owner-absent, never live.
      const w = await nodesOf.start("watcher", {
        FAN_STATES_VERSION: "1.2.0",
        FAN_STATES_CLIENT_VERSION: "2.0.0-beta.1",
      });
      expect((await converged(w, beta, "the beta-pinned watcher live on the beta owner")).value).toEqual({
        b: { n: 2, label: "beta" },
      });
      await beta.send("patch", { patch: { c: { n: 3, label: "three" } } });
      expect((await converged(w, beta, "the beta-pinned watcher on the beta owner's patch")).value).toEqual({
        b: { n: 2, label: "beta" },
        c: { n: 3, label: "three" },
      });
    }, 90_000);
  });
}

describe("a client whose version range admits two majors", () => {
  const apps: App[] = [];
  afterEach(async () => {
    await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
  });

  it("majorsOf: the lowest majors a range admits", () => {
    const table: [string, number[]][] = [
      ["2.x", [2]],
      ["~2.1 || ^2.3", [2]],
      [">=2.0.0 <3.0.0", [2]],
      ["^0.3", [0]],
      ["2.0.0-beta.1", [2]],
      ["1.x || 2.x", [1, 2]],
      ["1.x || 3.x", [1, 3]],
      [">=1.4", [1, 2, 3]],
      ["*", [0, 1, 2]],
      [">2 <1", []],
    ];
    for (const [range, majors] of table) expect(majorsOf(range), range).toEqual(majors);
  });

  it("is built (its calls may go to either major), and fails each watch and get naming both majors", async () => {
    const app = createApp({
      cluster: `majors-span-${process.pid}-${shortId()}`,
      discovery: "memory",
      logger: silentLogger(),
    });
    apps.push(app);
    await app.start();
    const states = app.client(Board, { version: "1.x || 2.x" }).states;
    const why = 'fan.replica.Board.entries: the version range "1.x || 2.x" admits majors 1 and 2';
    expect(() => states.entries.watch()).toThrow(why);
    await expect(states.entries.watch(() => undefined)).rejects.toThrow(why);
    await expect(states.entries.get()).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(states.entries.get()).rejects.toThrow(why);
    expect(() => app.client(Board, { version: ">=1.4" }).states.mode.watch()).toThrow(
      /admits majors 1, 2 and more, and each major's state is its own/,
    );
  });
});
