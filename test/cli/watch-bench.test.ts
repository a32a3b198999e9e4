/**
 * `fanc watch` and `fanc bench` as a user runs them, in child processes. watch: an owner
 * process of the states tests (test/states/fixtures/node.ts) serves Board on redis, amqp, nats
 * or zmq (an event hub of this test, named to fanc by $FAN_ZMQ_HUB); `fanc watch Board.entries
 * --json` prints the snapshot, then each set and patch the owner makes, and stops on SIGINT.
 * bench: against the conformance service (test/transports/fixtures/child-app.ts) on redis,
 * closed loop and --rate, --json and text.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { type EventHub, startEventHub } from "../../src/runtime/transports/zmq/index.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { Node } from "../states/processes.js";
import { AMQP_URL } from "../transports/amqp-broker.js";
import { deleteStreams, NATS_URL } from "../transports/nats-server.js";
import { REDIS_URL } from "../transports/redis-server.js";
import { type CapturedChild, runFanc, spawnCaptured, until } from "./helpers.js";

let hub: EventHub;
beforeAll(async () => {
  hub = await startEventHub();
});
afterAll(async () => {
  await hub?.close();
});

const CASES = [
  { name: "redis", transports: () => ({ redis: { url: REDIS_URL } }) },
  { name: "amqp", transports: () => ({ amqp: { url: AMQP_URL } }) },
  { name: "nats", transports: () => ({ nats: { url: NATS_URL } }) },
  { name: "zmq", transports: () => ({ zmq: { events: { publish: hub.publish, subscribe: hub.subscribe } } }) },
] as const;

interface Line {
  state: string;
  cause: string;
  seq: number;
  value: unknown;
  patch?: unknown;
}

describeEtcd("fanc watch (child processes)", () => {
  for (const c of CASES) {
    it(`prints the snapshot, then each update, over ${c.name}; SIGINT stops it`, async () => {
      const cluster = `watch-${c.name}-${process.pid}-${shortId()}`;
      const owner = await Node.start("owner", {
        FAN_STATES_CLUSTER: cluster,
        FAN_STATES_TRANSPORTS: JSON.stringify(c.transports()),
        FAN_STATES_DISCOVERY: `etcd://${SHARED_ETCD}`,
      });
      let watch: CapturedChild | undefined;
      try {
        await owner.send("set", { value: { a: { n: 1, label: "one" } } });
        watch = spawnCaptured(
          process.execPath,
          // amqp and nats without --via: the default is the transport the owner's instance advertises.
          [
            "bin/fanc.mjs",
            "watch",
            "Board.entries",
            "--idl",
            "test/states/fixtures/idl",
            ...(c.name === "amqp" || c.name === "nats" ? [] : ["--via", c.name]),
            "--json",
          ],
          {
            FAN_CLUSTER: cluster,
            FAN_DISCOVERY: `etcd://${SHARED_ETCD}`,
            FAN_ZMQ_HUB: `${hub.publish},${hub.subscribe}`,
          },
        );
        const w = watch;
        const lines = (): Line[] =>
          w
            .stdout()
            .split("\n")
            .filter((l) => l.startsWith("{"))
            .map((l) => JSON.parse(l) as Line);
        await until("the snapshot", () => lines().length >= 1, 60_000);
        expect(lines()[0]).toMatchObject({
          state: "fan.replica.Board.entries",
          cause: "snapshot",
          value: { a: { n: 1, label: "one" } },
        });
        expect(w.stderr()).toMatch(new RegExp(`watching fan\\.replica\\.Board\\.entries over ${c.name}`));
        await owner.send("patch", { patch: { b: { n: 2, label: "two" } } });
        await owner.send("patch", { patch: { a: null } });
        await until("two patches", () => lines().length >= 3, 30_000);
        const [, p1, p2] = lines();
        expect(p1).toMatchObject({
          cause: "patch",
          patch: { b: { n: 2, label: "two" } },
          value: { a: { n: 1, label: "one" }, b: { n: 2, label: "two" } },
        });
        expect(p2).toMatchObject({ cause: "patch", patch: { a: null }, value: { b: { n: 2, label: "two" } } });
        expect((p2 as Line).seq).toBe((p1 as Line).seq + 1);
        w.child.kill("SIGINT");
        expect(await w.exited).toBe(0);
      } finally {
        watch?.child.kill("SIGKILL");
        await owner.stop();
        if (c.name === "nats") await deleteStreams(`fan_${cluster}`).catch(() => undefined);
      }
    }, 120_000);
  }

  it("--shard all on a sharded state: every shard's snapshot and updates, each line naming its shard (redis)", async () => {
    const cluster = `watch-all-${process.pid}-${shortId()}`;
    const owner = await Node.start("owner", {
      FAN_STATES_CLUSTER: cluster,
      FAN_STATES_TRANSPORTS: JSON.stringify({ redis: { url: REDIS_URL } }),
      FAN_STATES_DISCOVERY: `etcd://${SHARED_ETCD}`,
      FAN_STATES_SERVICE: "ShardBoard",
      FAN_STATES_STATE: "carts",
    });
    let watch: CapturedChild | undefined;
    try {
      await owner.send("set", { shard: 1, value: { one: { n: 1, label: "one" } } });
      await owner.send("set", { shard: 5, value: { five: { n: 5, label: "five" } } });
      watch = spawnCaptured(
        process.execPath,
        ["bin/fanc.mjs", "watch", "ShardBoard.carts", "--idl", "test/states/fixtures/idl", "--shard", "all", "--json"],
        { FAN_CLUSTER: cluster, FAN_DISCOVERY: `etcd://${SHARED_ETCD}` },
      );
      const w = watch;
      const lines = (): Line[] =>
        w
          .stdout()
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as Line);
      const of = (state: string): Line[] => lines().filter((l) => l.state === state);
      const carts = "fan.replica.ShardBoard.carts";
      await until(
        "both shards' snapshots",
        () => of(`${carts}[1]`).length >= 1 && of(`${carts}[5]`).length >= 1,
        60_000,
      );
      expect(of(`${carts}[1]`)[0]).toMatchObject({ cause: "snapshot", value: { one: { n: 1, label: "one" } } });
      expect(of(`${carts}[5]`)[0]).toMatchObject({ cause: "snapshot", value: { five: { n: 5, label: "five" } } });
      await owner.send("patch", { shard: 5, patch: { more: { n: 6, label: "six" } } });
      await until("shard 5's patch", () => of(`${carts}[5]`).some((l) => l.cause === "patch"), 30_000);
      expect(of(`${carts}[5]`).find((l) => l.cause === "patch")).toMatchObject({
        patch: { more: { n: 6, label: "six" } },
        value: { five: { n: 5, label: "five" }, more: { n: 6, label: "six" } },
      });
      expect(of(`${carts}[1]`).some((l) => l.cause === "patch")).toBe(false);
      expect(w.stderr()).toContain(`watching ${carts}[all] over redis`);
      w.child.kill("SIGINT");
      expect(await w.exited).toBe(0);
    } finally {
      watch?.child.kill("SIGKILL");
      await owner.stop();
    }
  }, 120_000);

  it("text output: one line per change; an unknown state names the states", async () => {
    const r = await runFanc(["watch", "Board.nope", "--idl", "test/states/fixtures/idl"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('fan.replica.Board has no state "nope" (states: entries, mode)');
  }, 60_000);
});

describeEtcd("fanc bench (child processes)", () => {
  const cluster = randomCluster();
  const C = ["--idl", "test/transports/fixtures/idl", "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  let server: CapturedChild;

  beforeAll(async () => {
    server = spawnCaptured("node_modules/.bin/tsx", ["test/transports/fixtures/child-app.ts"], {
      FAN_CHILD_SERVE: "Conformance",
      FAN_CHILD_TRANSPORTS: "redis,http",
      FAN_CHILD_CLUSTER: cluster,
      FAN_ETCD: SHARED_ETCD,
    });
    await until("the service process is ready", () => /"event":"ready"/.test(server.stdout()), 120_000);
  }, 150_000);

  afterAll(async () => {
    server?.child.kill("SIGTERM");
    await server?.exited;
  }, 30_000);

  interface Report {
    service: string;
    method: string;
    transport: string;
    concurrency: number;
    rate?: number;
    calls: number;
    ok: number;
    errors: Record<string, number>;
    throughput: number;
    shed: number;
    latencyMs: { p50: number; p90: number; p99: number; max: number; min: number };
  }

  it("closed loop: throughput and ordered percentiles as JSON", async () => {
    const r = await runFanc([
      "bench",
      "Conformance.echo",
      '{"n":1}',
      ...C,
      "--via",
      "redis",
      "--concurrency",
      "4",
      "--duration",
      "2s",
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout) as Report;
    expect(o).toMatchObject({
      service: "fan.conformance.Conformance",
      method: "echo",
      transport: "redis",
      concurrency: 4,
      errors: {},
    });
    expect(o.calls).toBeGreaterThan(10);
    expect(o.ok).toBe(o.calls);
    expect(o.throughput).toBeGreaterThan(5);
    const l = o.latencyMs;
    expect(l.min).toBeGreaterThan(0);
    expect(l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max).toBe(true);
  }, 120_000);

  it("--rate: about the asked rate, text output with p50/p90/p99/max and no progress line off a terminal", async () => {
    const r = await runFanc([
      "bench",
      "Conformance.echo",
      '{"n":2}',
      ...C,
      "--via",
      "http",
      "--rate",
      "20",
      "--duration",
      "2s",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^fanc bench: fan\.conformance\.Conformance\.echo over http \(Conformance-\S+\) · 20\/s target, at most 10 in flight · [\d.]+ s$/m,
    );
    const calls = Number(/calls {5}(\d+) \((\d+) ok, 0 failed\)/.exec(r.stdout)?.[1]);
    expect(calls).toBeGreaterThanOrEqual(25); // 40 asked; generous for a loaded machine
    expect(calls).toBeLessThanOrEqual(41);
    expect(r.stdout).toMatch(/latency {3}p50 [\d.]+ ms · p90 [\d.]+ ms · p99 [\d.]+ ms · max [\d.]+ ms/);
    expect(r.stdout).not.toContain("\r");
  }, 120_000);

  it("bad arguments and durations are refused before sending", async () => {
    const bad = await runFanc(["bench", "Conformance.echo", '{"n":"x"}', ...C]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid argument n/);
    const dur = await runFanc(["bench", "Conformance.echo", "{}", ...C, "--duration", "soon"]);
    expect(dur.code).toBe(2);
    expect(dur.stderr).toContain("--duration must look like 5s, 500ms or 1m");
  }, 60_000);
});

describe("bench helpers", () => {
  it("parses durations", async () => {
    const { parseDuration } = await import("../../src/cli/bench.js");
    expect(parseDuration("5s")).toBe(5000);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("1m")).toBe(60_000);
    expect(parseDuration("1500")).toBe(1500);
  });
});
