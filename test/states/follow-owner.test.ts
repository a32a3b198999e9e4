/**
 * A watcher whose first event transport is not its state's owner's (the state side of trial
 * finding 1, docs/decisions.md 2026-12-07): a watcher App on amqp,nats of a state owned by an
 * App on nats alone subscribed to the updates on amqp, took its snapshots over nats rpc, and
 * never saw an update or a heartbeat, with no word from either process. A watch now follows the
 * transport its owner's instances record in discovery (`events`), also when the owner moves to
 * another transport, and warns, naming the state and both sides' transports, when the owner
 * publishes on a transport the watcher has not got. Since review 2 of that change a watch subscribes on
 * every transport of its App that carries the service's events from the start, so a new owner's
 * first updates are not published before the watch is there. Owners and watchers in processes of their own.
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { AMQP_URL } from "../transports/amqp-broker.js";
import { deleteStreams, NATS_URL } from "../transports/nats-server.js";
import { deleteKeys, REDIS_URL } from "../transports/redis-server.js";
import { Node, until } from "./processes.js";

const AMQP_NATS = JSON.stringify({ amqp: { url: AMQP_URL }, nats: { url: NATS_URL } });
const ONLY = {
  amqp: JSON.stringify({ amqp: { url: AMQP_URL } }),
  nats: JSON.stringify({ nats: { url: NATS_URL } }),
  redis: JSON.stringify({ redis: { url: REDIS_URL } }),
};

const nodes: Node[] = [];
const clusters: string[] = [];
afterEach(async () => {
  await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));
});
afterAll(async () => {
  for (const c of clusters) {
    await deleteKeys(`fan.${c}*`).catch(() => undefined);
    await deleteStreams(`fan_${c}`).catch(() => undefined);
  }
});

const cluster = (what: string): string => {
  const c = `follow-owner-${what}-${process.pid}-${shortId()}`;
  clusters.push(c);
  return c;
};

const start = async (role: "owner" | "watcher", c: string, transports: string, more: Record<string, string> = {}) => {
  const n = await Node.start(role, {
    FAN_STATES_CLUSTER: c,
    FAN_STATES_TRANSPORTS: transports,
    FAN_LOG_LEVEL: "info",
    ...more,
  });
  nodes.push(n);
  return n;
};

/** The parsed log lines of `n` at `level` whose message contains every word. */
const lines = (n: Node, level: number, ...words: string[]): { msg: string }[] =>
  n.logs
    .map((l) => JSON.parse(l) as { level: number; msg?: string })
    .filter((l) => l.level === level && words.every((w) => String(l.msg).includes(w))) as { msg: string }[];
const WARN = 40;

/** The watcher is live on the owner's epoch and sequence, and got there by updates (patches), not snapshots alone. */
const followsUpdates = async (
  w: Node,
  o: Node,
  what: string,
  n: number,
  entry: (i: number) => unknown = (i) => ({ n: i, label: what }),
): Promise<void> => {
  const at = await o.report();
  await until(
    `${what}: watcher live before the updates`,
    () => w.report(),
    (r) => r.status === "live" && r.epoch === at.epoch && r.seq === at.seq,
    15_000,
  );
  const before = (await w.report()).patches ?? 0;
  for (let i = 0; i < n; i++) await o.send("patch", { patch: { [`k${i}`]: entry(i) } });
  const want = await o.report();
  const got = await until(
    `${what}: watcher live at the owner's ${want.epoch}/${want.seq}`,
    () => w.report(),
    (r) => r.status === "live" && r.epoch === want.epoch && r.seq === want.seq,
    15_000,
  );
  expect(got.value).toEqual(want.value);
  expect((got.patches ?? 0) - before, `${what}: updates received as patches`).toBe(n);
};

describe("a state watch follows its owner's event transport", () => {
  it("owner on nats only, watcher on amqp,nats: the watcher gets the updates, not only snapshots", async () => {
    const c = cluster("nats");
    const owner = await start("owner", c, ONLY.nats);
    await owner.send("set", { value: { a: { n: 0, label: "zero" } } });
    const watcher = await start("watcher", c, AMQP_NATS);
    await followsUpdates(watcher, owner, "nats owner", 5);
    // Subscribed on nats from its start (docs/decisions.md), and nothing to warn about.
    expect(lines(watcher, WARN, "does not receive"), watcher.logs.join("\n")).toEqual([]);
  }, 60_000);

  it("a @unique owner fails over from amqp to a standby on nats: the watcher follows it there", async () => {
    const c = cluster("failover");
    const leader = { FAN_STATES_SERVICE: "Leader", FAN_STATES_STATE: "counter" };
    const first = await start("owner", c, ONLY.amqp, leader);
    await first.send("set", { value: { a: 1 } });
    const watcher = await start("watcher", c, AMQP_NATS, leader);
    await followsUpdates(watcher, first, "amqp leader", 3, (i) => i);
    // With a first value of its own, so that what it publishes next are patches.
    const standby = await start("owner", c, ONLY.nats, { ...leader, FAN_STATES_FIRST: '{"z":0}' });
    await first.stop();
    await until(
      "the standby on nats leads",
      () => standby.report(),
      (r) => r.active === true,
      15_000,
    );
    // Subscribed on nats since its start: the new leader's updates reach it as soon as it publishes.
    await followsUpdates(watcher, standby, "nats leader", 5, (i) => 10 + i);
    expect(lines(watcher, WARN, "does not receive"), watcher.logs.join("\n")).toEqual([]);
  }, 60_000);

  it("owner on redis only, watcher on amqp,nats: one warning names the state and both sides' transports", async () => {
    const c = cluster("redis");
    const owner = await start("owner", c, ONLY.redis);
    await owner.send("set", { value: { a: { n: 0, label: "zero" } } });
    const watcher = await start("watcher", c, AMQP_NATS);
    const warned = await until(
      "the watcher's warning",
      async () => lines(watcher, WARN, "does not receive"),
      (l) => l.length > 0,
      15_000,
    );
    expect(warned[0]?.msg).toMatch(
      /^a watch in this app does not receive the updates of fan\.replica\.Board\.entries \(major 1\) from instances that publish them on redis \(Board-[^)]+@1\.0\.0\): this app has no redis transport \(its event transports: amqp, nats; it subscribes on amqp, nats\); add redis to its transports/,
    );
    // The view resubscribes while it hears nothing (every few heartbeat periods): still one warning.
    await new Promise((r) => setTimeout(r, 3000));
    expect(lines(watcher, WARN, "does not receive")).toHaveLength(1);
    expect((await watcher.report()).status).not.toBe("live");
  }, 60_000);

  it("a watchAll of a sharded state owned on redis only: one warning, not one per shard", async () => {
    const c = cluster("redis-shards");
    const sharded = { FAN_STATES_SERVICE: "ShardBoard", FAN_STATES_STATE: "carts" };
    await start("owner", c, ONLY.redis, sharded);
    const watcher = await start("watcher", c, AMQP_NATS, { ...sharded, FAN_STATES_SHARDS: "all" });
    const warned = await until(
      "the watcher's warning",
      async () => lines(watcher, WARN, "does not receive"),
      (l) => l.length > 0,
      15_000,
    );
    expect(warned[0]?.msg).toContain(
      "a watch in this app does not receive the updates of fan.replica.ShardBoard.carts (major 1) from instances that publish them on redis",
    );
    await new Promise((r) => setTimeout(r, 3000));
    expect(lines(watcher, WARN, "does not receive")).toHaveLength(1);
  }, 60_000);
});
