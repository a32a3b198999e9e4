/**
 * A graceful stop drains the calls in flight before its states stop publishing: a call running
 * when `app.stop()` begins still reads its states as they were and its writes, to an unsharded
 * and to a sharded state, are published and saved (persist), so a new instance resumes them.
 * They were lost: the states were unbound before the drain (value dropped, owner inactive, the
 * write neither published nor saved, and nothing said).
 */
import { afterEach, describe, expect, it } from "vitest";
import { keyPart, shardOfKey } from "../../src/runtime/call/shards.js";
import { shortId } from "../../src/runtime/ids.js";
import {
  type App,
  type CallContext,
  type CallOptions,
  createApp,
  defineService,
  type ServiceDefinition,
  type ServiceDescriptor,
  type Sharded,
  type StatePublisher,
} from "../../src/runtime/index.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { type StateOwner, StateOwners } from "../../src/runtime/states/owner.js";
import { deleteKeys, REDIS_URL } from "../transports/redis-server.js";
import { captureLog } from "../transports/fixtures/log.js";

interface Seen {
  total: string[];
  shard: string[];
}

interface TallyStates {
  total: StatePublisher<Record<string, number>>;
  perShard: Sharded<Record<string, number>>;
}

interface TallyHandler {
  add(
    req: { key: string; waitMs: number },
    ctx: CallContext<Record<string, never>, Record<never, never>, TallyStates>,
  ): Promise<Seen>;
}

interface TallyClient {
  add(req: { key: string; waitMs: number }, opts?: CallOptions): Promise<Seen>;
}

const list = { kind: "list", of: { kind: "string" } } as const;
const counts = { kind: "map", key: { kind: "string" }, of: { kind: "int" } } as const;

const descriptor: ServiceDescriptor = {
  name: "test.stopdrain.Tally",
  version: "1.0.0",
  transports: ["local"],
  shards: 4,
  unique: false,
  methods: {
    add: {
      name: "add",
      kind: "rpc",
      input: {
        kind: "struct",
        name: "test.stopdrain.Tally.add$input",
        fields: [
          { name: "key", schema: { kind: "string" } },
          { name: "waitMs", schema: { kind: "int" } },
        ],
      },
      output: {
        kind: "struct",
        name: "test.stopdrain.Seen",
        fields: [
          { name: "total", schema: list },
          { name: "shard", schema: list },
        ],
      },
      timeoutMs: 10_000,
      idempotent: false,
      retry: 0,
      throws: [],
      shard: [["key"]],
    },
  },
  events: {},
  states: {
    total: { name: "total", schema: counts, mode: "delta" },
    perShard: { name: "perShard", schema: counts, mode: "delta", sharded: true },
  },
  subscriptions: [],
  depends: [],
  errors: {},
};

const Tally: ServiceDefinition<TallyHandler, TallyClient> = defineService<TallyHandler, TallyClient>({
  descriptor,
  createClient: (c) => ({ add: (req, opts) => c.call("add", req, opts) as Promise<Seen> }),
});

/** Waits `waitMs`, then answers what both states held and adds `key` to each. */
const impl: TallyHandler = {
  async add(req, ctx) {
    await new Promise((r) => setTimeout(r, req.waitMs));
    const shard = ctx.states.perShard.forKey(req.key);
    const seen = {
      total: Object.keys(ctx.states.total.value() ?? {}).sort(),
      shard: Object.keys(shard.value() ?? {}).sort(),
    };
    ctx.states.total.patch({ [req.key]: 1 });
    shard.patch({ [req.key]: 1 });
    return seen;
  },
};

/** Keys of one shard (of 4). */
function keys(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (shardOfKey([keyPart(`k${i}`)], 4) === 1) out.push(`k${i}`);
  return out;
}

const apps: App[] = [];
afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
});

function app(cluster: string): App {
  const a = createApp({
    cluster,
    discovery: "memory",
    logger: silentLogger(),
    transports: { local: {} },
    stopGraceMs: 5000,
    // A long save delay: only the stop's own save can hold the drained call's write.
    states: { heartbeatMs: 200, persist: { redis: REDIS_URL, intervalMs: 10_000 } },
  }).serve(Tally, impl);
  apps.push(a);
  return a;
}

describe("a graceful stop with a call in flight that writes states", () => {
  it("lets the call read and write them as before: its writes are saved and a new instance resumes them", async () => {
    const cluster = `stopdrain-${process.pid}-${shortId()}`;
    const [k1, k2, k3] = keys(3) as [string, string, string];
    try {
      const one = app(cluster);
      await one.start();
      const client = one.client(Tally);
      expect(await client.add({ key: k1, waitMs: 0 })).toEqual({ total: [], shard: [] });
      const inFlight = client.add({ key: k2, waitMs: 600 });
      await new Promise((r) => setTimeout(r, 100));
      await Promise.all([one.stop(), inFlight]);
      // The draining call saw the states as they were.
      expect(await inFlight).toEqual({ total: [k1], shard: [k1] });

      const two = app(cluster);
      await two.start();
      expect(await two.client(Tally).add({ key: k3, waitMs: 0 })).toEqual({
        total: [k1, k2].sort(),
        shard: [k1, k2].sort(),
      });
    } finally {
      await deleteKeys(`fan.${cluster}*`).catch(() => undefined);
    }
  }, 60_000);
});

describe("a write to an owner that stopped publishing", () => {
  it("is logged as a warning, once until it publishes again", async () => {
    const captured = captureLog();
    const log = captured.log;
    const published: unknown[] = [];
    const states = new StateOwners({
      cluster: "lost-writes",
      log,
      heartbeatMs: 60_000,
      store: undefined,
      publish: async (_service, env) => void published.push(env.payload),
      serves: () => true,
    });
    await states.bound(descriptor);
    const total = states.owner(descriptor, "total") as StateOwner;
    total.patch({ a: 1 });
    expect(captured.warnings()).toEqual([]);
    await states.unbound(descriptor);
    const before = published.length;
    total.patch({ b: 1 });
    total.patch({ c: 1 });
    expect(published.length).toBe(before);
    expect(captured.warnings().filter((w) => w.includes("came after this instance stopped publishing"))).toHaveLength(
      1,
    );
    await states.close();
  });
});
