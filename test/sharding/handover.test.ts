/**
 * A shard moving to a joining instance while a call for it runs in the old owner's handler
 * (trial 5, finding 1): the call was admitted there, so it runs to the end and its write to
 * the shard's state goes out; the newcomer takes the shard only after the old owner released
 * it, and serves the next call with that write in the state (persisted snapshot). Owners are
 * separate processes (fixtures/serve-handover.ts) over a broker transport; the caller and a
 * watcher of the shard are this process. A graceful stop hands its shards over the same way:
 * the instance taking them resumes them with the writes of the calls the stopping one drained.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { assignShards, keyPart, shardOfKey } from "../../src/runtime/call/shards.js";
import { shortId } from "../../src/runtime/ids.js";
import { type App, createApp } from "../../src/runtime/index.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { AMQP_URL } from "../transports/amqp-broker.js";
import { deleteStreams, NATS_URL } from "../transports/nats-server.js";
import { deleteKeys } from "../transports/redis-server.js";
import { Orders } from "./fixtures/handover.js";

const script = fileURLToPath(new URL("./fixtures/serve-handover.ts", import.meta.url));

interface Owner {
  readonly proc: ChildProcess;
  readonly out: () => string;
}

const owners: Owner[] = [];
const apps: App[] = [];
afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
  await Promise.allSettled(
    owners.splice(0).map(
      (o) =>
        new Promise<void>((resolve) => {
          if (o.proc.exitCode !== null || o.proc.signalCode !== null) return resolve();
          o.proc.once("exit", () => resolve());
          o.proc.kill("SIGKILL");
        }),
    ),
  );
});

function serve(cluster: string, instanceId: string, transport: string, env: NodeJS.ProcessEnv = {}): Promise<Owner> {
  const proc = spawn(process.execPath, ["--import", "tsx", script, cluster, instanceId, transport], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, FAN_LOG_LEVEL: "warn", ...env },
  });
  let out = "";
  let err = "";
  proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  const owner = { proc, out: () => out };
  owners.push(owner);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${instanceId} not ready in 60 s: ${err}`)), 60_000);
    proc.stdout?.on("data", () => {
      if (!out.includes("ready\n")) return;
      clearTimeout(t);
      resolve(owner);
    });
    proc.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`${instanceId} exited with ${code}: ${err}`));
    });
  });
}

/** This test's App, calling the owners and watching their state, started. */
async function caller(cluster: string, transport: string, url: string): Promise<App> {
  const app = createApp({
    cluster,
    discovery: "etcd://127.0.0.1:2379",
    logger: silentLogger(),
    transports: { [transport]: { url } },
    states: { heartbeatMs: 200 },
  });
  apps.push(app);
  await app.start();
  return app;
}

/** Two instance ids such that the second takes at least `min` shards from the first when it joins. */
function ids(prefix: string, min = 1): { a: string; b: string; moved: number[] } {
  for (;;) {
    const a = `${prefix}-a-${shortId()}`;
    const b = `${prefix}-b-${shortId()}`;
    const both = assignShards(
      [
        { instanceId: a, shards: [] },
        { instanceId: b, shards: [] },
      ],
      8,
    );
    const moved = both.flatMap((o, s) => (o === b ? [s] : []));
    if (moved.length >= min) return { a, b, moved };
  }
}

/** A key of `shard` (n-th such key). */
function keyOf(shard: number, n: number): string {
  for (let i = 0; ; i++) {
    const k = `order-${n}-${i}`;
    if (shardOfKey([keyPart(k)], 8) === shard) return k;
  }
}

const CASES = [
  { name: "nats", url: NATS_URL },
  { name: "amqp", url: AMQP_URL },
] as const;

for (const c of CASES) {
  describe(`a shard moving to a joining instance over ${c.name}`, () => {
    it("lets the call running for it finish and write its state; the newcomer serves the next call with that write", async () => {
      const cluster = `handover-${c.name}-${process.pid}-${shortId()}`;
      try {
        const { a, b, moved } = ids(c.name);
        const shard = moved[0] as number;
        const first = keyOf(shard, 1);
        const second = keyOf(shard, 2);
        const ownerA = await serve(cluster, a, c.name);
        const app = await caller(cluster, c.name, c.url);
        const client = app.client(Orders);
        const view = client.states.perShard.watch({ shard });
        const seen: Record<string, number>[] = [];
        view.subscribe((ch) => seen.push(ch.value as Record<string, number>));
        // Live on A's epoch (the shard has no value yet).
        await expect.poll(() => view.status, { timeout: 20_000, interval: 100 }).toBe("live");

        // A call for the shard that waits in A's handler until B has joined and taken the shard.
        const t0 = Date.now();
        // Settled into a value (its rejection is the failure the test reports, not an unhandled one).
        const running = client.place({ orderId: first, waitMs: 25_000 }, { timeout: 30_000 }).then(
          (ok) => ok,
          (e: unknown) => e as Error,
        );
        await new Promise((r) => setTimeout(r, 300));
        const ownerB = await serve(cluster, b, c.name);
        const placed = await running;
        if (placed instanceof Error) throw placed;
        // A's handler saw the shard move (it stopped waiting well before waitMs) and answered.
        expect(Date.now() - t0).toBeLessThan(24_000);
        expect(placed.instanceId).toBe(a);
        expect(placed.keys).toEqual([first]);
        // Its write reached the watcher of the shard.
        await expect.poll(() => seen.some((v) => v?.[first] === 1), { timeout: 15_000, interval: 100 }).toBe(true);

        // The next call for the shard is B's, and its state holds A's write (the persisted snapshot).
        const next = await client.place({ orderId: second, waitMs: 0 }, { timeout: 15_000 });
        expect(next.instanceId).toBe(b);
        expect(next.keys).toEqual([first, second].sort());
        await expect.poll(() => view.current, { timeout: 15_000, interval: 100 }).toEqual({ [first]: 1, [second]: 1 });
        // Nothing was refused on either side.
        for (const o of [ownerA, ownerB]) expect(o.out()).not.toMatch(/was refused|has not released|releasing it now/);
      } finally {
        await deleteKeys(`fan.${cluster}*`).catch(() => undefined);
        if (c.name === "nats") await deleteStreams(`fan_${cluster}`).catch(() => undefined);
      }
    }, 120_000);
  });
}

/** Resolves with the exit code of `o` once it exited (a graceful stop exits 0). */
function exited(o: Owner): Promise<number | null> {
  if (o.proc.exitCode !== null || o.proc.signalCode !== null) return Promise.resolve(o.proc.exitCode);
  return new Promise((resolve) => o.proc.once("exit", (code) => resolve(code)));
}

for (const c of CASES) {
  describe(`a graceful stop over ${c.name}`, () => {
    it("hands its shards over after the calls it drains: their writes are in the taker's state, and no call is routed to it meanwhile", async () => {
      const cluster = `handover-stop-${c.name}-${process.pid}-${shortId()}`;
      try {
        const { a, b, moved } = ids(c.name);
        // A shard A keeps with B there: the one A's stop hands over.
        const shard = [...Array(8).keys()].find((s) => !moved.includes(s));
        if (shard === undefined) throw new Error("B took every shard");
        const first = keyOf(shard, 1);
        const second = keyOf(shard, 2);
        // A's handler writes 1.5 s after its shard moved away (here: after the stop began).
        const env = { HANDOVER_AFTER_MS: "1500" };
        const ownerA = await serve(cluster, a, c.name, env);
        const ownerB = await serve(cluster, b, c.name, env);
        const app = await caller(cluster, c.name, c.url);
        const set = await app.watch(Orders.descriptor.name);
        await expect.poll(() => set.instances().length, { timeout: 20_000, interval: 100 }).toBe(2);
        const client = app.client(Orders);
        // B has gained its shards from A (A released them; A's record serves only its own).
        await expect
          .poll(
            () =>
              set
                .records?.()
                .find((i) => i.instanceId === a)
                ?.serving?.includes(moved[0] as number),
            {
              timeout: 20_000,
              interval: 100,
            },
          )
          .toBe(false);
        // A call for A's shard, running in A's handler when A is told to stop.
        const running = client.place({ orderId: first, waitMs: 20_000 }, { timeout: 30_000 }).then(
          (ok) => ok,
          (e: unknown) => e as Error,
        );
        await new Promise((r) => setTimeout(r, 1000));
        ownerA.proc.kill("SIGTERM");
        // While A drains, its record is there, marked stopping and serving the shard, and routing leaves it out.
        await expect
          .poll(() => set.records?.().find((i) => i.instanceId === a)?.stopping, { timeout: 5000, interval: 20 })
          .toBe(true);
        expect(set.records?.().find((i) => i.instanceId === a)?.serving).toContain(shard);
        expect(set.instances().map((i) => i.instanceId)).toEqual([b]);
        // A call for the shard meanwhile goes to B, which answers once A released the shard, with A's write.
        const next = await client.place({ orderId: second, waitMs: 0 }, { timeout: 15_000 });
        const placed = await running;
        if (placed instanceof Error) throw placed;
        expect(placed.instanceId).toBe(a);
        expect(placed.keys).toEqual([first]);
        expect(next.instanceId).toBe(b);
        expect(next.keys).toEqual([first, second].sort());
        expect(await exited(ownerA)).toBe(0);
        await expect
          .poll(() => set.records?.().map((i) => i.instanceId), { timeout: 5000, interval: 100 })
          .toEqual([b]);
        // Nothing was refused, and B waited for the release, not for its bound.
        for (const o of [ownerA, ownerB]) expect(o.out()).not.toMatch(/was refused|has not released|releasing it now/);
      } finally {
        await deleteKeys(`fan.${cluster}*`).catch(() => undefined);
        if (c.name === "nats") await deleteStreams(`fan_${cluster}`).catch(() => undefined);
      }
    }, 120_000);
  });
}

describe("a shard awaited from its previous owner (nats)", () => {
  it("is not loaded by a read of its state on the joiner: the joiner resumes it with the old owner's late write", async () => {
    const cluster = `handover-read-${process.pid}-${shortId()}`;
    try {
      const { a, b, moved } = ids("nats", 2);
      // s: held in A's handler across the join; t: released at once, so B answers for it first.
      const s = moved[0] as number;
      const t = moved[1] as number;
      const held = keyOf(s, 1);
      const after = keyOf(s, 2);
      // A writes 3 s after s moved away: B answers for t, and reads s, before that.
      const env = { HANDOVER_AFTER_MS: "3000" };
      const ownerA = await serve(cluster, a, "nats", env);
      const app = await caller(cluster, "nats", NATS_URL);
      const client = app.client(Orders);
      const running = client.place({ orderId: held, waitMs: 25_000 }, { timeout: 30_000 }).then(
        (ok) => ok,
        (e: unknown) => e as Error,
      );
      await new Promise((r) => setTimeout(r, 300));
      const ownerB = await serve(cluster, b, "nats", env);
      // B serves t, and its call only reads s's state while A still holds s.
      const looked = await client.look({ orderId: keyOf(t, 1), peek: s }, { timeout: 15_000 });
      expect(looked.instanceId).toBe(b);
      expect(looked.keys).toEqual([]);
      const placed = await running;
      if (placed instanceof Error) throw placed;
      expect(placed.instanceId).toBe(a);
      expect(placed.keys).toEqual([held]);
      // B took s only after A released it, and resumed it with A's late write.
      const next = await client.place({ orderId: after, waitMs: 0 }, { timeout: 15_000 });
      expect(next.instanceId).toBe(b);
      expect(next.keys).toEqual([after, held].sort());
      for (const o of [ownerA, ownerB]) expect(o.out()).not.toMatch(/was refused|has not released|releasing it now/);
    } finally {
      await deleteKeys(`fan.${cluster}*`).catch(() => undefined);
      await deleteStreams(`fan_${cluster}`).catch(() => undefined);
    }
  }, 120_000);
});
