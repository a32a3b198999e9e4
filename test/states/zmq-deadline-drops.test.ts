/**
 * A state owner over zmq whose process stalls (a long GC, a starved CPU) with updates still
 * queued to be sent: the updates whose deadline passed meanwhile are dropped by the publisher,
 * on purpose. The owner logs the drop as a warn naming the state; the watcher (another process)
 * does not count it as loss (no "events lost (sequence gap)": the dropped updates took no
 * transport sequence number), and converges on the owner's latest value (the state's own
 * sequence shows it missed updates: it takes a snapshot).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { type EventHub, startEventHub } from "../../src/runtime/transports/zmq/index.js";
import { Node, until } from "./processes.js";

/** The log records of a process with this message. */
const logged = (n: Node, msg: string): Record<string, unknown>[] =>
  n.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.msg === msg);

let hub: EventHub;
const nodes: Node[] = [];
beforeAll(async () => {
  hub = await startEventHub();
});
afterAll(async () => {
  await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));
  await hub.close();
});

it("updates dropped at their deadline by a stalled owner: a warn there, no loss at the watcher, which converges", async () => {
  const env = {
    FAN_STATES_CLUSTER: `states-zmq-drops-${process.pid}-${shortId()}`,
    FAN_STATES_TRANSPORTS: JSON.stringify({ zmq: { events: { publish: hub.publish, subscribe: hub.subscribe } } }),
    FAN_LOG_LEVEL: "info",
  };
  // The owner beats every second; the watcher calls it absent only after 15 s of silence, so it
  // stays subscribed through the owner's stall (a new subscription would not see the gap).
  const owner = await Node.start("owner", { ...env, FAN_STATES_HEARTBEAT_MS: "1000" });
  nodes.push(owner);
  const watcher = await Node.start("watcher", { ...env, FAN_STATES_HEARTBEAT_MS: "5000" });
  nodes.push(watcher);
  await until(
    "watcher live",
    () => watcher.report(),
    (r) => r.status === "live",
  );
  await owner.send("deltas", { n: 20, keys: 10 });
  const before = await owner.report();
  await until(
    "watcher in step",
    () => watcher.report(),
    (r) => r.seq === before.seq,
  );
  // 50 updates in one turn: the first goes to zeromq (unless a send is still in progress), the
  // others queue behind it; the owner then stalls past their 10 s deadline.
  await owner.send("deltas", { n: 50, keys: 50, stallMs: 10_500 }, 60_000);
  const want = await owner.report();
  expect(want.seq).toBe(before.seq + 50);
  const got = await until(
    "watcher converged on the owner",
    () => watcher.report(),
    (r) => r.status === "live" && r.epoch === want.epoch && r.seq === want.seq,
    30_000,
  );
  expect(got.value).toEqual(want.value);
  expect(logged(watcher, "zmq: events lost (sequence gap)")).toEqual([]);
  const drops = logged(owner, "zmq: state updates past their deadline before they were sent; dropped");
  expect(drops.length, `owner log: ${owner.logs.slice(-5).join("\n")}`).toBeGreaterThan(0);
  expect(drops[0]).toMatchObject({ level: 40, state: "$state.v1.entries" });
  // All but the first (all, when the writer was still busy with a heartbeat).
  expect(drops.reduce((n, d) => n + (d.dropped as number), 0)).toBeGreaterThanOrEqual(49);
}, 90_000);
