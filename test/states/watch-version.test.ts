/**
 * `fanc watch --version`: owners of Board at 1.2.0 and at 2.0.0 in processes of their own
 * (test/states/fixtures/node.ts) over redis, side by side as in a major rollout, and `fanc watch`
 * run in the test's process against them. Without `--version` it follows the IDL's major (the
 * fixture IDL is at 1.0.0); with it, the one major the range admits; a range that admits two is
 * refused before fanc connects, and one that matches no registered instance is watched with a
 * warning saying so. A range that names a prerelease owner (`2.0.0-beta.1`) takes its snapshot.
 */
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { run as watchCli } from "../../src/cli/state-watch.js";
import { shortId } from "../../src/runtime/ids.js";
import { REDIS_URL } from "../transports/redis-server.js";
import { clusterNodes, type Node, until } from "./processes.js";

const idl = fileURLToPath(new URL("./fixtures/idl", import.meta.url));
const nodes: Node[] = [];
afterEach(async () => {
  await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));
});

interface Line {
  readonly state: string;
  readonly cause: string;
  readonly seq: number;
  readonly value: unknown;
  readonly patch?: unknown;
}

/** `fanc watch` in this process: its output so far, and a stop that resolves with its exit code. */
function watch(args: readonly string[]): {
  lines(): Line[];
  err(): string;
  stop(): Promise<number>;
  code: Promise<number>;
} {
  const out: string[] = [];
  const err: string[] = [];
  const ctl = new AbortController();
  const code = watchCli([...args], { out: (t) => void out.push(t), err: (t) => void err.push(t) }, ctl.signal);
  return {
    lines: () => out.map((l) => JSON.parse(l) as Line),
    err: () => err.join("\n"),
    stop: () => {
      ctl.abort();
      return code;
    },
    code,
  };
}

/** The arguments of `fanc watch` of Board.entries in `cluster`, then `more`. */
const argsIn =
  (cluster: string) =>
  (...more: string[]): string[] => [
    "fan.replica.Board.entries",
    "--idl",
    idl,
    "--discovery",
    "etcd://127.0.0.1:2379",
    "--cluster",
    cluster,
    "--json",
    ...more,
  ];

describe("fanc watch --version: two majors of a service side by side (redis)", () => {
  const cluster = `watch-version-${process.pid}-${shortId()}`;
  const nodesOf = clusterNodes(cluster, { name: "redis", transports: () => ({ redis: { url: REDIS_URL } }) }, nodes);
  afterAll(nodesOf.forget);
  const args = argsIn(cluster);

  it("follows the IDL's major by default and the range's major with --version, saying which; a range over two majors is refused; one no instance matches is watched with a warning", async () => {
    const v1 = await nodesOf.start("owner", { FAN_STATES_VERSION: "1.2.0" });
    await v1.send("set", { value: { a: { n: 1, label: "one" } } });
    const v2 = await nodesOf.start("owner", { FAN_STATES_VERSION: "2.0.0" });
    await v2.send("set", { value: { b: { n: 2, label: "two" } } });

    const byIdl = watch(args());
    const two = watch(args("--version", "2.x"));
    try {
      await until(
        "the IDL major's snapshot",
        async () => byIdl.lines().length,
        (n) => n >= 1,
        60_000,
      );
      await until(
        "2.x's snapshot",
        async () => two.lines().length,
        (n) => n >= 1,
        60_000,
      );
      expect(byIdl.lines()[0]).toMatchObject({ cause: "snapshot", value: { a: { n: 1, label: "one" } } });
      expect(byIdl.err()).toContain(
        "watching fan.replica.Board.entries over redis, major 1 (the IDL's: it is at 1.0.0) (Ctrl-C to stop)",
      );
      expect(two.lines()[0]).toMatchObject({ cause: "snapshot", value: { b: { n: 2, label: "two" } } });
      expect(two.err()).toContain("watching fan.replica.Board.entries over redis, major 2 (--version 2.x)");
      expect(two.err()).not.toContain("warning");

      // Each hears its own major's updates only.
      await v1.send("patch", { patch: { c: { n: 3, label: "three" } } });
      await v2.send("patch", { patch: { d: { n: 4, label: "four" } } });
      const patches = (w: typeof byIdl): unknown[] => w.lines().flatMap((l) => (l.cause === "patch" ? [l.patch] : []));
      await until(
        "1.x's patch",
        async () => patches(byIdl).length,
        (n) => n >= 1,
        30_000,
      );
      await until(
        "2.x's patch",
        async () => patches(two).length,
        (n) => n >= 1,
        30_000,
      );
      // A patch of the other major, sent at the same time, would have arrived by now.
      await new Promise((r) => setTimeout(r, 500));
      expect(patches(byIdl)).toEqual([{ c: { n: 3, label: "three" } }]);
      expect(patches(two)).toEqual([{ d: { n: 4, label: "four" } }]);
      expect(byIdl.lines().at(-1)?.value).toEqual({ a: { n: 1, label: "one" }, c: { n: 3, label: "three" } });
      expect(two.lines().at(-1)?.value).toEqual({ b: { n: 2, label: "two" }, d: { n: 4, label: "four" } });
    } finally {
      expect(await byIdl.stop()).toBe(0);
      expect(await two.stop()).toBe(0);
    }

    // A range that admits two majors: refused (exit 2) before fanc connects, naming them.
    for (const [range, named] of [
      ["1.x || 2.x", "admits majors 1 and 2"],
      [">=1.0.0", "admits majors 1, 2 and more"],
    ] as const) {
      const spans = watch(args("--version", range));
      expect(await spans.code, spans.err()).toBe(2);
      expect(spans.err()).toContain(`fanc watch: --version "${range}" ${named}, and each major's state is its own`);
    }

    // A range no registered instance matches: watched (its owner may start later), with a warning.
    const three = watch(args("--version", "3.x"));
    try {
      await until(
        "owner-absent",
        async () => three.err(),
        (e) => e.includes("is owner-absent"),
        30_000,
      );
      expect(three.err()).toContain(
        `fanc: warning: no instance of fan.replica.Board matches version 3.x in cluster "${cluster}" (versions running: 1.2.0, 2.0.0); watching major 3's state until its owner registers`,
      );
      expect(three.lines()).toEqual([]);
    } finally {
      expect(await three.stop()).toBe(0);
    }
  }, 120_000);
});

describe("fanc watch --version of a prerelease (redis)", () => {
  const cluster = `watch-beta-${process.pid}-${shortId()}`;
  const nodesOf = clusterNodes(cluster, { name: "redis", transports: () => ({ redis: { url: REDIS_URL } }) }, nodes);
  afterAll(nodesOf.forget);

  it("--version 2.0.0-beta.1 takes its snapshot from the 2.0.0-beta.1 owner, without a warning", async () => {
    const beta = await nodesOf.start("owner", { FAN_STATES_VERSION: "2.0.0-beta.1" });
    await beta.send("set", { value: { b: { n: 2, label: "beta" } } });
    // Before, fanc watched with `2.x`, which admits no prerelease: no snapshot, no warning.
    const w = watch(argsIn(cluster)("--version", "2.0.0-beta.1"));
    try {
      await until(
        "the beta's snapshot",
        async () => w.lines().length,
        (n) => n >= 1,
        30_000,
      );
      expect(w.lines()[0]).toMatchObject({ cause: "snapshot", value: { b: { n: 2, label: "beta" } } });
      expect(w.err()).toContain("major 2 (--version 2.0.0-beta.1)");
      expect(w.err()).not.toContain("warning");
      expect(w.err()).not.toContain("owner-absent");
    } finally {
      expect(await w.stop()).toBe(0);
    }
  }, 60_000);
});
