/**
 * Without `--via`, `fanc subscribe` and `fanc watch` follow the transport the service's
 * registered instances publish on, as an App's subscription and watch do
 * (runtime/call/followed-events.ts): they picked one transport at start and kept it, so one
 * started before its service (it took redis, the first the service allows), which then came up
 * on nats, waited for good and said nothing (trial 3, new finding 1). Real processes against the
 * shared etcd and the loopback brokers: fanc first, then the service on nats alone (then moved to amqp),
 * then what it publishes must arrive; with $FAN_ZMQ_HUB naming the services' event hub, fanc follows
 * a service or state owner onto zmq the same way. A publisher on a transport fanc cannot reach (zmq
 * without $FAN_ZMQ_HUB, a registered record) is a warning naming it. And a state owner serving calls
 * on http or zmq only, registered after fanc watch started, is asked for its snapshot.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import { run as events } from "../../src/cli/events.js";
import { RegistryDirectory } from "../../src/runtime/discovery/directory.js";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { Node } from "../states/processes.js";
import { startEventHub } from "../../src/runtime/transports/zmq/index.js";
import { NATS_URL } from "../transports/nats-server.js";
import { REDIS_URL } from "../transports/redis-server.js";
import { type CapturedChild, captureIo, spawnCaptured, until } from "./helpers.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const bin = join(repo, "bin/fanc.mjs");
const tsx = join(repo, "node_modules/.bin/tsx");
const CONFORMANCE = "fan.conformance.Conformance";
const BOARD = "fan.replica.Board";
const BOARD_IDL = join(repo, "test/states/fixtures/idl");

const children: CapturedChild[] = [];
const nodes: Node[] = [];
afterAll(async () => {
  for (const c of children) c.child.kill("SIGKILL");
  await Promise.allSettled(nodes.map((n) => n.stop()));
});

/** `bin/fanc.mjs ...args` as a child process (`env` added to this one's), killed after the tests. */
function fanc(args: readonly string[], env: Record<string, string> = {}): CapturedChild {
  const c = spawnCaptured(process.execPath, [bin, ...args], env);
  children.push(c);
  return c;
}

describeEtcd("fanc subscribe and fanc watch without --via follow where the service publishes", () => {
  /** `fanc subscribe Conformance.ping` (with `env`) in a new cluster; resolves once it is subscribed. */
  async function subscribeFirst(env: Record<string, string> = {}): Promise<{ s: CapturedChild; cluster: string }> {
    const cluster = randomCluster();
    const args = ["subscribe", "Conformance.ping", "--idl", "test/transports/fixtures/idl"];
    const s = fanc([...args, "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster], env);
    await until("fanc subscribe is subscribed", () => s.stderr().includes("subscribed to"), 120_000);
    expect(s.stderr()).toBe(`subscribed to ${CONFORMANCE}.ping over redis (Ctrl-C to stop)\n`);
    return { s, cluster };
  }

  /** Conformance served in `cluster` on `transports`, emitting `{n}` every 300 ms; resolves once it is ready. */
  async function service(
    cluster: string,
    transports: string,
    n: number,
    env: Record<string, string> = {},
  ): Promise<CapturedChild> {
    const app = spawnCaptured(tsx, ["test/transports/fixtures/child-app.ts"], {
      FAN_CHILD_SERVE: "Conformance",
      FAN_CHILD_CLUSTER: cluster,
      FAN_ETCD: SHARED_ETCD,
      FAN_CHILD_TRANSPORTS: transports,
      FAN_CHILD_EMIT: String(n),
      ...env,
    });
    children.push(app);
    await until("the service is ready", () => /"event":"(ready|start failed)"/.test(app.stdout()), 120_000);
    expect(app.stdout()).toContain('"event":"ready"');
    return app;
  }

  /** The line fanc subscribe prints when it follows the service's instances onto `t`. */
  const followed = (t: string): RegExp =>
    new RegExp(
      `^fanc subscribe: subscribed to ${CONFORMANCE}\\.ping on ${t} as well: instances of ${CONFORMANCE} publish it there \\([^)]+@1\\.0\\.0\\)$`,
      "m",
    );

  it("fanc subscribe started before its service, which comes up on nats, then moves to amqp: the events arrive", async () => {
    const { s, cluster } = await subscribeFirst();
    const app = await service(cluster, "nats", 71);
    await until('fanc subscribe prints {"n":71}', () => s.stdout().includes('{"n":71}'), 30_000);
    expect(s.stderr()).toMatch(followed("nats"));
    expect(s.stderr()).not.toContain("warning");
    // The service moves: stopped on nats, started again on amqp.
    app.child.kill("SIGTERM");
    await app.exited;
    const moved = await service(cluster, "amqp", 72);
    await until('fanc subscribe prints {"n":72}', () => s.stdout().includes('{"n":72}'), 60_000);
    expect(s.stderr()).toMatch(followed("amqp"));
    s.child.kill("SIGINT");
    expect(await s.exited).toBe(0);
    moved.child.kill("SIGTERM");
    await moved.exited;
  }, 300_000);

  it("with FAN_ZMQ_HUB, fanc subscribe follows a service that comes up on zmq (through the services' hub): the events arrive", async () => {
    const hub = await startEventHub();
    try {
      const { s, cluster } = await subscribeFirst({ FAN_ZMQ_HUB: `${hub.publish},${hub.subscribe}` });
      const app = await service(cluster, "zmq", 73, {
        FAN_ZMQ_EVENTS_PUBLISH: hub.publish,
        FAN_ZMQ_EVENTS_SUBSCRIBE: hub.subscribe,
      });
      await until('fanc subscribe prints {"n":73}', () => s.stdout().includes('{"n":73}'), 30_000);
      expect(s.stderr()).toMatch(followed("zmq"));
      expect(s.stderr()).not.toContain("warning");
      s.child.kill("SIGINT");
      expect(await s.exited).toBe(0);
      app.child.kill("SIGTERM");
      await app.exited;
    } finally {
      await hub.close();
    }
  }, 300_000);

  /**
   * `fanc watch` first, then the state's owner (test/states/fixtures/node.ts with `env`), which
   * patches twice: resolves with fanc's stderr once the snapshot and the second patch are printed.
   */
  async function watchBeforeOwner(env: Record<string, string>, fancEnv: Record<string, string> = {}): Promise<string> {
    const cluster = randomCluster();
    const w = fanc(
      ["watch", "Board.entries", "--idl", BOARD_IDL, "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster],
      fancEnv,
    );
    await until("fanc watch is watching", () => w.stderr().includes(`watching ${BOARD}`), 120_000);
    expect(w.stderr()).toContain(`watching ${BOARD}.entries over redis, major 1`);
    const owner = await Node.start("owner", { FAN_STATES_CLUSTER: cluster, ...env });
    nodes.push(owner);
    await owner.send("patch", { patch: { a: { n: 1, label: "first" } } });
    await until("fanc watch prints a snapshot", () => w.stdout().includes("snapshot #"), 30_000);
    await owner.send("patch", { patch: { b: { n: 2, label: "second" } } });
    await until(
      "fanc watch prints the patch",
      () => /^patch #\d+: \{"b":\{"n":2,"label":"second"\}\}$/m.test(w.stdout()),
      30_000,
    );
    w.child.kill("SIGINT");
    expect(await w.exited).toBe(0);
    return w.stderr();
  }

  it("fanc watch started before the state's owner, which comes up on nats: the snapshot and the patch arrive", async () => {
    const stderr = await watchBeforeOwner({ FAN_STATES_TRANSPORTS: JSON.stringify({ nats: { url: NATS_URL } }) });
    expect(stderr).toMatch(
      new RegExp(`^fanc watch: subscribed to the updates of ${BOARD}\\.entries \\(major 1\\) on nats as well`, "m"),
    );
  }, 300_000);

  it("with FAN_ZMQ_HUB, fanc watch follows an owner that comes up on zmq (through the services' hub)", async () => {
    const hub = await startEventHub();
    try {
      const events = { publish: hub.publish, subscribe: hub.subscribe };
      const stderr = await watchBeforeOwner(
        { FAN_STATES_TRANSPORTS: JSON.stringify({ zmq: { events } }) },
        { FAN_ZMQ_HUB: `${hub.publish},${hub.subscribe}` },
      );
      expect(stderr).toMatch(
        new RegExp(`^fanc watch: subscribed to the updates of ${BOARD}\\.entries \\(major 1\\) on zmq as well`, "m"),
      );
    } finally {
      await hub.close();
    }
  }, 300_000);

  // Snapshots are a call to the owner: fanc opened only what the instances registered at its
  // start offered (nothing, here), so an owner serving calls on http or zmq alone (its updates on
  // redis) was never asked, and fanc stayed owner-absent without a word.
  for (const direct of ["http", "zmq"])
    it(`fanc watch started before the state's owner, which serves calls on ${direct} only: the snapshot and the patch arrive`, async () => {
      const stderr = await watchBeforeOwner({
        FAN_STATES_TRANSPORTS: JSON.stringify({ [direct]: {}, redis: { url: REDIS_URL } }),
        FAN_STATES_SERVE_ON: direct,
      });
      expect(stderr).toContain(`fanc watch: ${BOARD}.entries is live`);
    }, 300_000);

  it("a publisher on a transport fanc cannot reach (zmq without FAN_ZMQ_HUB) is a warning naming it", async () => {
    const cluster = randomCluster();
    const reg = new EtcdRegistry(SHARED_ETCD);
    const dir = new RegistryDirectory(reg, { cluster, appId: "app-z" });
    const io = captureIo();
    const stop = new AbortController();
    const hub = process.env.FAN_ZMQ_HUB;
    delete process.env.FAN_ZMQ_HUB;
    try {
      const done = events(
        [
          "Conformance.ping",
          "--idl",
          "test/transports/fixtures/idl",
          "--discovery",
          `etcd://${SHARED_ETCD}`,
          "--cluster",
          cluster,
        ],
        io,
        "subscribe",
        stop.signal,
      );
      await until(
        "subscribed",
        () => io.errText().includes("subscribed to") || io.errText().includes("fanc subscribe:"),
        30_000,
      );
      await dir.register({
        service: CONFORMANCE,
        instanceId: "conf-zmq",
        version: "1.0.0",
        endpoints: { zmq: "tcp://127.0.0.1:1" },
        events: "zmq",
        shards: [],
        appId: "app-z",
      });
      await until("the warning", () => io.errText().includes("warning"), 30_000);
      stop.abort();
      expect(await done).toBe(0);
      expect(io.stderr).toContain(
        `fanc: warning: fanc subscribe does not receive ${CONFORMANCE}.ping from instances that publish it on zmq (conf-zmq@1.0.0): fanc receives zmq events only through the event hub: set FAN_ZMQ_HUB=<publish endpoint>,<subscribe endpoint> as the services have it`,
      );
    } finally {
      if (hub !== undefined) process.env.FAN_ZMQ_HUB = hub;
      await dir.close();
      await reg.close();
    }
  }, 120_000);
});
