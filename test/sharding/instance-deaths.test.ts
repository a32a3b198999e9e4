/**
 * Sharded calls in flight to an owner that dies, between processes on etcd, over nats and amqp:
 * the owner (a child process) holds `store` calls when it is SIGKILLed. Neither broker tells the
 * caller (nats delivered the message; amqp's calls were in the owner's exclusive queue, which
 * went with its connection), so the client fails them once discovery says the owner is gone
 * (its lease expired: `call/instance-watch.ts`): UNAVAILABLE, maybe delivered, naming the owner
 * and the shard, well before the deadline; a call the retry policy may retry is answered by
 * the shard's new owner. An owner stopped gracefully (SIGTERM) deletes its record at once but
 * keeps its lease while it finishes its calls: those are answered, not failed.
 */
import { afterEach, expect, it } from "vitest";
import { assignShards, shardOfKey } from "../../src/runtime/call/shards.js";
import { type App, createApp, type FanError } from "../../src/runtime/index.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { describeEtcd, SHARED_ETCD, until } from "../discovery/helpers.js";
import { Store } from "./fixtures/generated/test/shards.js";
import { type Child, serveStore, tearDown } from "./helpers.js";

const TRANSPORTS = {
  nats: { url: process.env.FAN_NATS_URL ?? "nats://127.0.0.1:4222" },
  amqp: { url: process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672" },
} as const;
/** The owner's lease: etcd expires it within about this after the kill. */
const LEASE_MS = 1000;
const TIMEOUT_MS = 15_000;

interface Outcome {
  readonly ok?: string;
  readonly code?: string;
  readonly message?: string;
  readonly maybeDelivered?: unknown;
  readonly at: number;
}

const outcome = (p: Promise<{ instanceId: string }>): Promise<Outcome> =>
  p.then(
    (w) => ({ ok: w.instanceId, at: Date.now() }),
    (e: FanError) => ({
      code: e.code,
      message: e.message,
      maybeDelivered: (e.details as { maybeDelivered?: unknown } | undefined)?.maybeDelivered,
      at: Date.now(),
    }),
  );

describeEtcd("sharded calls in flight to an owner that dies (nats, amqp; etcd)", () => {
  let children: Child[] = [];
  let apps: App[] = [];
  let cluster = "";
  afterEach(async () => {
    await tearDown(cluster, children, apps);
    children = [];
    apps = [];
  }, 60_000);

  /**
   * Instances `keep` (answers at once) and `victim` (holds `store` calls `holdMs`) in children,
   * a client App seeing both, and a store id of each of two shards the victim owns.
   */
  const setUp = async (t: keyof typeof TRANSPORTS, holdMs: number) => {
    const tag = Math.random().toString(36).slice(2, 8);
    cluster = `deaths-${t}-${process.pid}-${tag}`;
    const ids = [`keep-${tag}`, `victim-${tag}`] as const;
    children = await Promise.all(
      ids.map((instanceId) =>
        serveStore({
          etcd: SHARED_ETCD,
          cluster,
          instanceId,
          transports: [t],
          leaseTtlMs: LEASE_MS,
          ...(instanceId === ids[1] ? { env: { FAN_TEST_HOLD_MS: String(holdMs), FAN_TEST_SIGNALS: "1" } } : {}),
        }),
      ),
    );
    const app = createApp({
      cluster,
      discovery: `etcd://${SHARED_ETCD}`,
      logger: silentLogger(),
      transports: { [t]: TRANSPORTS[t] },
    });
    apps.push(app);
    await app.start();
    const set = await app.watch(Store.descriptor.name);
    await until("both Store instances", () => set.instances().length === 2, 20_000);
    const owners = assignShards(
      ids.map((instanceId) => ({ instanceId, shards: [] })),
      16,
    );
    const keys = Array.from({ length: 200 }, (_, i) => `s${i}`).filter((k) => owners[shardOfKey([k], 16)] === ids[1]);
    const [a, b] = keys.filter((k, i) => keys.findIndex((o) => shardOfKey([o], 16) === shardOfKey([k], 16)) === i);
    if (a === undefined || b === undefined) throw new Error("the victim owns fewer than two shards");
    const victim = children[1] as Child;
    const held = (n: number) =>
      until(`${n} calls held by the victim`, () => victim.stdout().split("hold ").length - 1 >= n, 20_000);
    return { app, set, keep: ids[0], victim, victimId: ids[1], keys: [a, b] as const, held };
  };

  for (const t of ["nats", "amqp"] as const) {
    it(`${t}: SIGKILLed in the handler, its calls fail UNAVAILABLE once its lease is gone; an idempotent one is answered by the new owner`, async () => {
      const { app, victim, victimId, keep, keys, held } = await setUp(t, 60_000);
      const store = app.client(Store);
      const [once, retried] = keys;
      // `retry: false`: the policy may not send it again (as a method without @idempotent).
      const failing = outcome(store.store({ storeId: once }, { timeout: TIMEOUT_MS, retry: false }));
      const answered = outcome(store.store({ storeId: retried }, { timeout: TIMEOUT_MS }));
      await held(2);
      const killedAt = Date.now();
      victim.proc.kill("SIGKILL");
      const [f, a] = await Promise.all([failing, answered]);
      expect(f.code).toBe("UNAVAILABLE");
      expect(f.maybeDelivered).toBe(true);
      expect(f.message).toContain(victimId);
      expect(f.message).toContain(`shard ${shardOfKey([once], 16)} `);
      expect(f.message).toContain("may have run");
      // The lease expires within about LEASE_MS (etcd counts whole seconds); the deadline is 15 s away.
      expect(f.at - killedAt).toBeLessThan(6000);
      expect(a.ok).toBe(keep);
      expect(a.at - killedAt).toBeLessThan(7000);
    }, 90_000);
  }

  it("nats: an owner stopped gracefully (SIGTERM) answers the calls it holds, though its record is gone at once", async () => {
    const { app, set, victim, victimId, keys, held } = await setUp("nats", 2500);
    const store = app.client(Store);
    const call = outcome(store.store({ storeId: keys[0] }, { timeout: TIMEOUT_MS, retry: false }));
    await held(1);
    victim.proc.kill("SIGTERM");
    await until("the victim's record gone", () => set.instances().every((i) => i.instanceId !== victimId), 10_000);
    expect(await call).toMatchObject({ ok: victimId });
  }, 90_000);
});
