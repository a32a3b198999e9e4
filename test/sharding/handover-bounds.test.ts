/**
 * The hand-over's bounds and signals, on one Ownership with a scripted view of discovery (the
 * cross-process behaviour is handover.test.ts): the gaining side gains a shard when the previous
 * owner's record stops serving it, or warns and gains it past the bound that record advertises;
 * the losing side keeps a shard whose admitted call runs (writes allowed, record still serving
 * it), releases it when that call settles, or warns and releases it past its deadline.
 */
import { createServer, type Server, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/runtime/index.js";
import { MemoryRegistry } from "../../src/runtime/discovery/memory.js";
import { Orders } from "./fixtures/handover.js";
import type { LifecycleContext, ShardChange } from "../../src/runtime/call/context.js";
import { HOLD_LIMITS, type HoldLimits, Ownership, type ReleaseLimits } from "../../src/runtime/call/ownership.js";
import { assignShards, keyPart, shardOfKey } from "../../src/runtime/call/shards.js";
import type { ServingInfo } from "../../src/runtime/discovery/types.js";
import { Store } from "./fixtures/generated/test/shards.js";
import { record as recordOf, scriptedView } from "./fixtures/scripted-view.js";
import { captureLog } from "../transports/fixtures/log.js";

const N = Store.descriptor.shards;
const paths = Store.descriptor.methods.store?.shard as readonly (readonly string[])[];
const LIMITS = { marginMs: 100, takeoverMs: 250, noticeMs: 300 };

/** A view of discovery the test changes by hand, and an Ownership of `me` following it. */
function scripted(
  me: string,
  o: { advertise?: (s: ServingInfo) => Promise<void>; limits?: HoldLimits; release?: Partial<ReleaseLimits> } = {},
) {
  const captured = captureLog();
  const log = captured.log;
  const { directory, set } = scriptedView();
  const changes: ShardChange[] = [];
  const hooks = { onShards: (c: ShardChange) => void changes.push(c) };
  const own = new Ownership(Store.descriptor, me, [], hooks, () => ({}) as LifecycleContext, log, o.limits, {
    ...LIMITS,
    ...o.release,
  });
  const advertised: ServingInfo[] = [];
  const start = () =>
    own.start(directory, async (s) => {
      advertised.push(s);
      await o.advertise?.(s);
    });
  return { own, set, start, warnings: captured.warnings, changes, advertised };
}

const record = (id: string, serving?: readonly number[], releasingUntil?: number, stopping?: boolean) =>
  recordOf(Store.descriptor, id, serving, releasingUntil, stopping);

/** The shards `b` takes from `a` when it joins. */
function taken(a: string, b: string): number[] {
  const owners = assignShards(
    [
      { instanceId: a, shards: [] },
      { instanceId: b, shards: [] },
    ],
    N,
  );
  return owners.flatMap((o, s) => (o === b ? [s] : []));
}

function keyOf(shard: number): string {
  for (let i = 0; ; i++) if (shardOfKey([keyPart(`k${i}`)], N) === shard) return `k${i}`;
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));
const all = [...Array(N).keys()];

describe("the gaining side of a hand-over", () => {
  it("holds the calls of a shard the previous owner's record still serves, and gains it once that record drops it", async () => {
    const { own, set, start, warnings, changes } = scripted("B");
    const moved = taken("A", "B");
    expect(moved.length).toBeGreaterThan(0);
    const shard = moved[0] as number;
    // B's first view: A's record serves every shard.
    set([record("A", all), record("B", [])]);
    await start();
    expect(changes).toEqual([{ owned: [], gained: [], lost: [] }]);
    const held = own.guard(paths, { storeId: keyOf(shard) }, Date.now() + 5000);
    expect(held).toBeInstanceOf(Promise);
    // A released them: its record no longer lists them.
    set([
      record(
        "A",
        all.filter((s) => !moved.includes(s)),
      ),
      record("B", []),
    ]);
    await tick(20);
    expect(changes.at(-1)).toEqual({ owned: moved, gained: moved, lost: [] });
    expect(await held).toBeUndefined();
    expect(own.guard(paths, { storeId: keyOf(shard) }, Date.now() + 5000)).toBe(shard);
    expect(warnings()).toEqual([]);
  });

  it("gains it at once from a record that lists nothing served (an earlier version) or that is gone", async () => {
    const { set, start, changes } = scripted("B");
    const moved = taken("A", "B");
    set([record("A"), record("B", [])]);
    await start();
    expect(changes).toEqual([{ owned: moved, gained: moved, lost: [] }]);
  });

  it("past the bound the previous owner advertised, warns and gains it", async () => {
    const { set, start, warnings, changes } = scripted("B");
    const moved = taken("A", "B");
    const t0 = Date.now();
    set([record("A", all, t0 + 200), record("B", [])]);
    await start();
    expect(changes.at(-1)?.gained).toEqual([]);
    await tick(150);
    expect(changes.length).toBe(1);
    await tick(400);
    expect(changes.at(-1)).toEqual({ owned: moved, gained: moved, lost: [] });
    expect(warnings().join("\n")).toMatch(/but A has not released it in \d+ s .*taking it over now/);
  });

  it("at a call past its deadline, waits past the old owner's own bound, so that it sees the release", async () => {
    const { set, start, warnings, changes } = scripted("B");
    const moved = taken("A", "B");
    const until = Date.now() + 50;
    set([record("A", all, until), record("B", [])]);
    await start();
    // A gives up on its call at until + marginMs (100 ms) and releases: B has not taken it over.
    await tick(until + LIMITS.marginMs + 20 - Date.now());
    expect(changes.length).toBe(1);
    set([
      record(
        "A",
        all.filter((s) => !moved.includes(s)),
      ),
      record("B", []),
    ]);
    await tick(20);
    expect(changes.at(-1)).toEqual({ owned: moved, gained: moved, lost: [] });
    expect(warnings()).toEqual([]);
  });
});

describe("the losing side of a hand-over", () => {
  it("keeps a shard whose admitted call runs releasing (its states writable), its record serving it until the call settles", async () => {
    const { own, set, start, warnings, changes, advertised } = scripted("A");
    const lose = taken("A", "B");
    const shard = lose[0] as number;
    set([record("A", [])]);
    await start();
    await tick(20);
    expect(advertised.at(-1)?.serving).toEqual(all);
    // A call admitted for the shard, with its deadline.
    const deadline = Date.now() + 5000;
    expect(own.guard(paths, { storeId: keyOf(shard) }, deadline)).toBe(shard);
    // B joins: new calls for the shard are redirected, the running one keeps it releasing.
    set([record("A", all), record("B", [])]);
    await tick(20);
    expect(own.guard(paths, { storeId: keyOf(shard) }, deadline)).toMatchObject({ details: { redirect: true, shard } });
    expect(own.releasing(shard)).toBe(true);
    expect(changes.at(-1)?.lost).toEqual(lose.filter((s) => s !== shard));
    expect(advertised.at(-1)).toEqual({
      serving: [...own.owned(), shard].sort((a, b) => a - b),
      releasingUntil: deadline,
    });
    // It settles: released (onShards hears of it), and the record drops it.
    own.settled(shard);
    await tick(20);
    expect(own.releasing(shard)).toBe(false);
    expect(changes.at(-1)).toEqual({ owned: own.owned(), gained: [], lost: [shard] });
    expect(advertised.at(-1)).toEqual({ serving: own.owned() });
    expect(warnings()).toEqual([]);
  });

  it("releases it, with a warning, once the call runs past its deadline and the margin", async () => {
    const { own, set, start, warnings, changes } = scripted("A");
    const shard = taken("A", "B")[0] as number;
    set([record("A", [])]);
    await start();
    expect(own.guard(paths, { storeId: keyOf(shard) }, Date.now() + 100)).toBe(shard);
    set([record("A", all), record("B", [])]);
    await tick(50);
    expect(own.releasing(shard)).toBe(true);
    await tick(300);
    expect(own.releasing(shard)).toBe(false);
    expect(changes.at(-1)?.lost).toEqual([shard]);
    expect(warnings().join("\n")).toMatch(
      new RegExp(`shard ${shard} of .* still run 100 ms past the latest of their deadlines: releasing it now`),
    );
    // Its late end changes nothing.
    own.settled(shard);
    expect(own.releasing(shard)).toBe(false);
  });
});

describe("what the record says this instance serves", () => {
  it("is written again, with backoff, after a write failed, until the record holds what it serves", async () => {
    let writes = 0;
    const { own, set, start, warnings, advertised } = scripted("A", {
      advertise: async () => {
        if (++writes === 1) throw new Error("etcd unavailable");
      },
    });
    set([record("A", [])]);
    await start();
    await tick(500);
    // 100 ms after the failure, then written: no more writes while nothing changes.
    expect(writes).toBe(2);
    expect(advertised.at(-1)).toEqual({ serving: all });
    expect(warnings().join("\n")).toMatch(/discovery record failed: tried again 100 ms later/);
    own.stop();
  });

  it("stops trying once the instance stops", async () => {
    let writes = 0;
    const { own, set, start } = scripted("A", {
      advertise: async () => {
        writes++;
        throw new Error("etcd unavailable");
      },
    });
    set([record("A", [])]);
    await start();
    await tick(350);
    // 0, 100, 300 ms.
    expect(writes).toBe(3);
    own.stop();
    await tick(500);
    expect(writes).toBe(3);
  });
});

describe("a release slow to reach the states", () => {
  it("is warned about while the listeners of the change run, not only while onShards does", async () => {
    const limits = { ...HOLD_LIMITS, slowHookMs: 100, slowHookRepeatMs: 10_000 };
    const { own, set, start, warnings } = scripted("A", { limits });
    const lose = taken("A", "B");
    set([record("A", [])]);
    await start();
    let done!: () => void;
    own.onChange((c) => (c.lost.length > 0 ? new Promise<void>((r) => (done = r)) : undefined));
    set([record("A", all), record("B", [])]);
    await tick(250);
    expect(warnings().join("\n")).toMatch(
      new RegExp(
        `following a change of its shards \\(gained none, lost ${lose.join(", ")}: .*have not finished in 0 s`,
      ),
    );
    done();
    await tick(20);
    own.stop();
  });
});

describe("a release's bounds", () => {
  it("counts a call's deadline at most maxReleaseMs past the move (a push's long ttl), and warns when it releases at that bound", async () => {
    const { own, set, start, warnings, changes, advertised } = scripted("A", { release: { maxReleaseMs: 200 } });
    const shard = taken("A", "B")[0] as number;
    set([record("A", [])]);
    await start();
    // Admitted with a deadline an hour out (a push with a long @ttl).
    expect(own.guard(paths, { storeId: keyOf(shard) }, Date.now() + 3_600_000)).toBe(shard);
    const moved = Date.now();
    set([record("A", all), record("B", [])]);
    await tick(20);
    const until = advertised.at(-1)?.releasingUntil as number;
    expect(until).toBeGreaterThanOrEqual(moved + 200);
    expect(until).toBeLessThan(moved + 400);
    expect(own.releasing(shard)).toBe(true);
    // Released at the bound plus the margin, not an hour later.
    await tick(until + LIMITS.marginMs + 100 - Date.now());
    expect(own.releasing(shard)).toBe(false);
    expect(changes.at(-1)?.lost).toEqual([shard]);
    expect(warnings().join("\n")).toMatch(
      new RegExp(`shard ${shard} of .* past the bound of a release \\(maxReleaseMs 200 ms\\): releasing it now`),
    );
    own.settled(shard);
    own.stop();
  });

  it("waits at most saveMs for the states' release, then drops the shards from the record with a warning, and later changes go on", async () => {
    const { own, set, start, warnings, changes, advertised } = scripted("A", { release: { saveMs: 100 } });
    const lose = taken("A", "B");
    set([record("A", [])]);
    await start();
    // The states' release of the lost shards never ends (a snapshot store that does not answer).
    own.onChange((c) => (c.lost.length > 0 ? new Promise<void>(() => undefined) : undefined));
    set([record("A", all), record("B", [])]);
    await tick(50);
    expect(advertised.at(-1)?.serving).toEqual(all);
    await tick(150);
    expect(advertised.at(-1)?.serving).toEqual(all.filter((s) => !lose.includes(s)));
    expect(warnings().join("\n")).toMatch(
      new RegExp(
        `releasing shards ${lose.join(", ")} of .* have not .* saved their snapshot in 100 ms .*released anyway`,
      ),
    );
    // B leaves: A gains them back (its onShards is not stuck behind the hung release).
    set([
      record(
        "A",
        all.filter((s) => !lose.includes(s)),
      ),
    ]);
    await tick(20);
    expect(changes.at(-1)).toEqual({ owned: all, gained: lose, lost: [] });
    own.stop();
  });
});

describe("a graceful stop's hand-over", () => {
  it("keeps what the stopping instance held releasing (writable) and serving, marked stopping, until it is removed", async () => {
    const { own, set, start, warnings } = scripted("A");
    const lose = taken("A", "B");
    set([record("A", []), record("B", lose)]);
    await start();
    const kept = own.owned();
    expect(kept).toEqual(all.filter((s) => !lose.includes(s)));
    const until = Date.now() + 3000;
    expect(own.leave(until)).toEqual({ serving: kept, releasingUntil: until, stopping: true });
    for (const s of kept) expect(own.releasing(s)).toBe(true);
    // Its own record marked stopping: B owns everything in its view, and calls here are redirected to B.
    set([record("A", kept, until, true), record("B", lose)]);
    const other = kept[0] as number;
    expect(own.guard(paths, { storeId: keyOf(other) }, Date.now() + 1000)).toMatchObject({
      details: { redirect: true, shard: other, owner: "B" },
    });
    expect(own.releasing(other)).toBe(true);
    expect(own.serving()).toEqual({ serving: kept, releasingUntil: until, stopping: true });
    expect(warnings()).toEqual([]);
    own.stop();
  });

  it("is waited for by the instance taking its shards, which gains them when the stopping record goes", async () => {
    const { own, set, start, warnings, changes } = scripted("B");
    const mine = taken("A", "B");
    const theirs = all.filter((s) => !mine.includes(s));
    set([record("A", theirs), record("B", [])]);
    await start();
    expect(changes.at(-1)).toEqual({ owned: mine, gained: mine, lost: [] });
    // A stops: its record stays, marked stopping, serving its shards; B owns them but waits.
    set([record("A", theirs, Date.now() + 3000, true), record("B", mine)]);
    await tick(20);
    expect(changes.length).toBe(1);
    expect(own.owned()).toEqual(mine);
    expect(own.awaitedFrom(theirs[0] as number)).toEqual(["A"]);
    expect(own.guard(paths, { storeId: keyOf(theirs[0] as number) }, Date.now() + 5000)).toBeInstanceOf(Promise);
    // A drained and saved: its record goes.
    set([record("B", mine)]);
    await tick(20);
    expect(changes.at(-1)).toEqual({ owned: all, gained: theirs, lost: [] });
    expect(warnings()).toEqual([]);
    own.stop();
  });
});

/**
 * A Redis that answers reads (and the client's handshake) but never a write (EVAL, EVALSHA,
 * SET): a snapshot store that hangs on a save. Resolves with its url and its close.
 */
async function silentOnWrites(): Promise<{ url: string; close: () => void }> {
  const socks = new Set<Socket>();
  const srv: Server = createServer((sock) => {
    socks.add(sock);
    let buf = "";
    sock.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      for (;;) {
        // One command: *n, then n bulk strings ($len, bytes).
        const m = /^\*(\d+)\r\n/.exec(buf);
        if (m === null) return;
        let at = m[0].length;
        const args: string[] = [];
        for (let i = 0; i < Number(m[1]); i++) {
          const b = /^\$(\d+)\r\n/.exec(buf.slice(at));
          if (b === null || buf.length < at + b[0].length + Number(b[1]) + 2) return;
          args.push(buf.slice(at + b[0].length, at + b[0].length + Number(b[1])));
          at += b[0].length + Number(b[1]) + 2;
        }
        buf = buf.slice(at);
        const cmd = (args[0] ?? "").toUpperCase();
        if (cmd === "INFO") sock.write("$0\r\n\r\n");
        else if (cmd === "GET") sock.write("$-1\r\n");
        else if (cmd !== "EVAL" && cmd !== "EVALSHA" && cmd !== "SET") sock.write("+OK\r\n");
      }
    });
    sock.on("error", () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  // Closing drops its connections: the writes still waiting fail.
  return {
    url: `redis://127.0.0.1:${port}`,
    close: () => {
      srv.close();
      for (const sock of socks) sock.destroy();
    },
  };
}

describe("a graceful stop whose snapshot store hangs", () => {
  it("stops within its bound and warns that the next owner may resume an older snapshot", async () => {
    const redis = await silentOnWrites();
    const captured = captureLog();
    const app = createApp({
      cluster: `stop-hung-save-${process.pid}`,
      discovery: new MemoryRegistry(),
      logger: captured.log,
      stopGraceMs: 1000,
      transports: { local: {} },
      states: { heartbeatMs: 200, persist: { redis: redis.url, intervalMs: 20 } },
    }).serve(
      Orders,
      {
        async place(req, ctx) {
          const shard = ctx.states.perShard.shard(ctx.states.perShard.shardOf(req.orderId));
          shard.patch({ [req.orderId]: 1 });
          return { instanceId: ctx.instanceId, keys: Object.keys(shard.value() ?? {}) };
        },
        async look() {
          return { instanceId: "", keys: [] };
        },
      },
      { instanceId: "A", transports: ["local"] },
    );
    try {
      await app.start();
      await app.client(Orders).place({ orderId: "o-1", waitMs: 0 });
      const stopped = app.stop();
      // Said within the bound (the drain is instant: the stop waits 2 s for the states, no more).
      await expect
        .poll(() => captured.warnings().join("\n"), { timeout: 4000, interval: 100 })
        .toMatch(
          /stopping test\.handover\.Orders: its states have not sent their last heartbeat and saved their snapshot in 2000 ms .*stopping anyway/,
        );
      // (Closing the store itself waits for the save: ended by dropping the connection.)
      redis.close();
      await stopped;
    } finally {
      redis.close();
      await app.stop().catch(() => undefined);
    }
  }, 20_000);
});
