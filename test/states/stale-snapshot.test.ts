/**
 * A snapshot older than the updates that asked for it (two owners on one stream, and snapshots
 * reach only the older one): the view follows the owner that answers, warns once naming both
 * owners and epochs, and backs off instead of asking again at once — a tight loop took
 * thousands of snapshots a second. Once a snapshot reaches the newer epoch it follows that one.
 * A watch host of the test's own drives one view, so the owners' interleaving is exact.
 */
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { StateView } from "../../src/runtime/descriptor.js";
import type { StateMessage, StateSnapshot } from "../../src/runtime/states/protocol.js";
import { stateHandle, type WatchHost } from "../../src/runtime/states/watch.js";
import { Board } from "./fixtures/generated/fan/replica.js";
import { until } from "./processes.js";

const views: StateView<unknown>[] = [];
afterEach(async () => {
  await Promise.all(views.splice(0).map((v) => v.close()));
});

/** A host whose snapshots come from `answer`, each after an event-loop turn (as an rpc's would). */
function host(answer: () => StateSnapshot, records: Record<string, unknown>[]) {
  const subs = new Set<(p: unknown) => void>();
  let snapshots = 0;
  const h: WatchHost = {
    log: pino(
      { level: "debug" },
      { write: (s: string) => void records.push(JSON.parse(s) as Record<string, unknown>) },
    ),
    heartbeatMs: 50,
    check: () => undefined,
    opened: () => () => undefined,
    subscribe: async (_s, _state, _shard, deliver) => {
      subs.add(deliver);
      return { close: async () => void subs.delete(deliver) };
    },
    snapshot: async () => {
      snapshots++;
      await new Promise((r) => setImmediate(r));
      return answer();
    },
  };
  const publish = (m: StateMessage): void => {
    for (const d of subs) d(m);
  };
  return { h, publish, snapshots: () => snapshots };
}

describe("a snapshot older than the updates that asked for it", () => {
  it("is followed, warned about once naming both owners, and the next snapshot waits (backing off)", async () => {
    const records: Record<string, unknown>[] = [];
    const older = { e: 100, s: 1, v: { a: { n: 1, label: "a" } }, o: "app-a (1.0.0)" };
    let answer: StateSnapshot = older;
    const { h, publish, snapshots } = host(() => answer, records);
    const view = (stateHandle(Board.descriptor, "entries", h) as { watch(): StateView<unknown> }).watch();
    views.push(view);
    await view.ready(2000);

    // The newer owner publishes (heartbeats and updates of its epoch) for a second, every 5 ms.
    let seq = 0;
    const end = Date.now() + 1000;
    while (Date.now() < end) {
      publish({ k: "h", e: 200, s: seq, i: 50, o: "app-b (1.0.0)" });
      publish({ k: "p", e: 200, s: ++seq, v: { b: { n: seq, label: "b" } } });
      await new Promise((r) => setTimeout(r, 5));
    }
    // Backing off from one heartbeat period (50 ms) to 16 (800 ms): a handful, not thousands.
    expect(snapshots()).toBeLessThanOrEqual(8);
    expect(view.epoch).toBe(100);
    expect(view.current).toEqual(older.v);
    const warns = records.filter(
      (r) => r.msg === "state snapshot older than the updates seen; following it and backing off",
    );
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({
      level: 40,
      snapshotEpoch: 100,
      snapshotOwner: "app-a (1.0.0)",
      newerEpoch: 200,
      newerOwner: "app-b (1.0.0)",
    });

    // The newer owner answers snapshots now: the view follows it at its next attempt.
    answer = { e: 200, s: seq, v: { b: { n: seq, label: "b" } }, o: "app-b (1.0.0)" };
    publish({ k: "h", e: 200, s: seq, i: 50, o: "app-b (1.0.0)" });
    await until(
      "the view on the newer owner",
      async () => ({ status: view.status, epoch: view.epoch, seq: view.seq }),
      (r) => r.status === "live" && r.epoch === 200 && r.seq === seq,
      5000,
    );
    // Updates of the older epoch are dropped now.
    publish({ k: "p", e: 100, s: 2, v: { a: null } });
    expect(view.epoch).toBe(200);
    expect(view.status).toBe("live");
  });

  it("a last heartbeat of the followed owner makes the view owner-absent at once; another owner's is ignored", async () => {
    const records: Record<string, unknown>[] = [];
    let answer: () => StateSnapshot = () => ({ e: 100, s: 1, v: {}, o: "app-a (1.0.0)" });
    const { h, publish } = host(() => answer(), records);
    const view = (stateHandle(Board.descriptor, "entries", h) as { watch(): StateView<unknown> }).watch();
    views.push(view);
    await view.ready(2000);
    publish({ k: "h", e: 90, s: 4, i: 50, o: "app-old (1.0.0)", last: true });
    expect(view.status).toBe("live");
    answer = () => {
      throw new Error("no instance is registered");
    };
    publish({ k: "h", e: 100, s: 1, i: 50, o: "app-a (1.0.0)", last: true });
    expect(view.status).toBe("owner-absent");
    expect(view.reason).toBe("the owner app-a (1.0.0) stopped publishing at 100/1");
    const absent = records.filter((r) => r.msg === "state owner absent");
    expect(absent).toHaveLength(1);
    expect(absent[0]?.reason).toBe("the owner app-a (1.0.0) stopped publishing at 100/1");
    await until(
      "the snapshot attempt's reason",
      async () => view.reason,
      (r) => r === "no instance is registered",
      2000,
    );
  });
});
