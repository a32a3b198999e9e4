/**
 * Without `--via`, `fanc subscribe` and `fanc publish` take a service's events from the
 * transport its Apps say they publish on (`events` in their discovery records), not from the
 * order of the endpoints they serve on: child processes against the shared etcd and the
 * loopback brokers, the events emitted by the service's own App (FAN_CHILD_EMIT).
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { eventTransportChoice } from "../../src/cli/events.js";
import type { InstanceInfo } from "../../src/runtime/discovery/types.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { Conformance } from "../transports/fixtures/generated/fan/conformance.js";
import { type CapturedChild, runFanc, spawnCaptured, until } from "./helpers.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const bin = join(repo, "bin/fanc.mjs");
const tsx = join(repo, "node_modules/.bin/tsx");
const SERVICE = "fan.conformance.Conformance";

/** A child App serving Conformance; resolves once it is registered. */
async function server(cluster: string, env: Record<string, string>): Promise<CapturedChild> {
  const c = spawnCaptured(tsx, ["test/transports/fixtures/child-app.ts"], {
    FAN_CHILD_SERVE: "Conformance",
    FAN_CHILD_CLUSTER: cluster,
    FAN_ETCD: SHARED_ETCD,
    ...env,
  });
  await until("the server is ready", () => /"event":"(ready|start failed)"/.test(c.stdout()), 120_000);
  expect(c.stdout()).toContain('"event":"ready"');
  return c;
}

async function stop(...children: (CapturedChild | undefined)[]): Promise<void> {
  for (const c of children) c?.child.kill("SIGTERM");
  await Promise.all(children.map((c) => c?.exited));
}

/** `fanc subscribe Conformance.ping` without --via until it prints `{"n":n}`; returns its stderr. */
async function subscribeSees(cluster: string, n: number, via: string): Promise<string> {
  const args = ["--idl", "test/transports/fixtures/idl", "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  const s = spawnCaptured(process.execPath, [bin, "subscribe", "Conformance.ping", ...args]);
  try {
    await until("fanc subscribe is subscribed", () => s.stderr().includes("subscribed to"), 120_000);
    expect(s.stderr()).toBe(`subscribed to ${SERVICE}.ping over ${via} (Ctrl-C to stop)\n`);
    await until(`fanc subscribe prints {"n":${n}}`, () => s.stdout().includes(`{"n":${n}}`), 30_000);
    s.child.kill("SIGINT");
    expect(await s.exited).toBe(0);
    return s.stderr();
  } finally {
    s.child.kill("SIGKILL");
  }
}

describeEtcd("the event transport an instance records (child processes)", () => {
  it("an App with amqp then redis serving on redis only: fanc subscribe listens on amqp, where it emits", async () => {
    // The endpoints say redis; the App publishes on amqp, its first event transport.
    const cluster = randomCluster();
    const app = await server(cluster, {
      FAN_CHILD_TRANSPORTS: "amqp,redis",
      FAN_CHILD_SERVE_TRANSPORTS: "redis",
      FAN_CHILD_EMIT: "61",
    });
    try {
      expect(await subscribeSees(cluster, 61, "amqp")).not.toContain("warning");
      const ls = await runFanc([
        "ls",
        "Conformance",
        "--json",
        "--discovery",
        `etcd://${SHARED_ETCD}`,
        "--cluster",
        cluster,
      ]);
      expect(ls.code).toBe(0);
      const [rec] = JSON.parse(ls.stdout) as InstanceInfo[];
      expect(Object.keys(rec?.endpoints ?? {}).sort()).toEqual(["local", "redis"]);
      expect(rec?.events).toBe("amqp");
    } finally {
      await stop(app);
    }
  }, 300_000);

  it("an App with http then nats serving on http only: fanc subscribe listens on nats, not the redis fallback", async () => {
    const cluster = randomCluster();
    const app = await server(cluster, {
      FAN_CHILD_TRANSPORTS: "http,nats",
      FAN_CHILD_SERVE_TRANSPORTS: "http",
      FAN_CHILD_EMIT: "62",
    });
    try {
      await subscribeSees(cluster, 62, "nats");
    } finally {
      await stop(app);
    }
  }, 300_000);

  it("instances that publish on different transports: fanc publish warns, naming them, and picks one", async () => {
    const cluster = randomCluster();
    let onRedis: CapturedChild | undefined;
    let onNats: CapturedChild | undefined;
    try {
      onRedis = await server(cluster, { FAN_CHILD_TRANSPORTS: "redis" });
      onNats = await server(cluster, { FAN_CHILD_TRANSPORTS: "nats" });
      const args = [
        "--idl",
        "test/transports/fixtures/idl",
        "--discovery",
        `etcd://${SHARED_ETCD}`,
        "--cluster",
        cluster,
      ];
      const r = await runFanc(["publish", "Conformance.ping", '{"n":63}', ...args]);
      expect(r.code).toBe(0);
      const lines = r.stderr.split("\n");
      expect(lines[0]).toMatch(
        new RegExp(
          `^fanc: warning: the instances of ${SERVICE} publish its events on different transports: ` +
            "(redis \\([\\w.-]+@1\\.0\\.0\\); nats \\([\\w.-]+@1\\.0\\.0\\)|nats \\([\\w.-]+@1\\.0\\.0\\); redis \\([\\w.-]+@1\\.0\\.0\\)); " +
            "using redis \\(as many use it as any other; first in the order redis, amqp, nats, zmq\\), so events published on nats are missed; --via chooses another$",
        ),
      );
      expect(lines[1]).toMatch(/^published · [\d.]+ ms · over redis · trace [0-9a-f]{32}$/);
    } finally {
      await stop(onRedis, onNats);
    }
  }, 300_000);
});

it("a record without `events` (an older version) falls back to its first event endpoint", () => {
  const d = Conformance.descriptor;
  const rec = (id: string, endpoints: InstanceInfo["endpoints"], events?: InstanceInfo["events"]): InstanceInfo => ({
    service: d.name,
    instanceId: id,
    version: "1.0.0",
    endpoints,
    shards: [],
    startedAt: 0,
    load: 0,
    appId: id,
    ...(events === undefined ? {} : { events }),
  });
  expect(eventTransportChoice(d, [rec("old", { http: "h", nats: "n" })])).toEqual({ via: "nats" });
  expect(eventTransportChoice(d, [rec("new", { http: "h" }, "amqp")])).toEqual({ via: "amqp" });
  expect(eventTransportChoice(d, [])).toEqual({ via: "redis" });
  const mixed = eventTransportChoice(d, [
    rec("a", { http: "h" }, "nats"),
    rec("b", { http: "h" }, "nats"),
    rec("old", { redis: "r" }),
  ]);
  expect(mixed.via).toBe("nats");
  expect(mixed.warning).toBe(
    `the instances of ${d.name} publish its events on different transports: nats (a@1.0.0, b@1.0.0); redis (old@1.0.0); ` +
      "using nats (the one most of them use), so events published on redis are missed",
  );
});
