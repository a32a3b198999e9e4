/**
 * Breaker state in `fanc ls`: a caller App publishes the breakers it holds open in etcd (with a
 * lease of its own), and `fanc ls <service>` shows, per instance, which callers gave up on it;
 * the entry goes when the caller stops.
 */
import { pino } from "pino";
import { afterEach, expect, it } from "vitest";
import { type App, type AppOptions, createApp } from "../../src/runtime/app/app.js";
import { run as ls } from "../../src/cli/ls.js";
import { describeEtcd, randomCluster, SHARED_ETCD, until } from "../discovery/helpers.js";
import { FlakyImpl } from "./fixtures/handlers.js";
import { Flaky } from "./fixtures/generated/fan/policytest.js";

const silent = pino({ level: "silent" });
const apps: App[] = [];

afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
});

interface Listed {
  readonly instanceId: string;
  readonly breakers: readonly { appId: string; state: string }[];
}

/** `fanc ls ...args` in process: exit code and what it printed. */
async function fancLs(args: readonly string[]): Promise<{ code: number; out: string }> {
  const printed: string[] = [];
  const code = await ls([...args], { out: (t) => printed.push(t), err: (t) => printed.push(t) });
  return { code, out: printed.join("\n") };
}

/** `fanc ls <service> --json` in `cluster`: each instance's published breakers. */
async function listed(cluster: string): Promise<Map<string, Listed["breakers"]>> {
  const r = await fancLs([
    Flaky.descriptor.name,
    "--discovery",
    `etcd://${SHARED_ETCD}`,
    "--cluster",
    cluster,
    "--json",
  ]);
  expect(r.code).toBe(0);
  return new Map((JSON.parse(r.out) as Listed[]).map((i) => [i.instanceId, i.breakers]));
}

describeEtcd("breakers in fanc ls", () => {
  it("removes the entry once the caller's breaker closed again", async () => {
    const cluster = randomCluster();
    const base: AppOptions = { cluster, discovery: `etcd://${SHARED_ETCD}`, logger: silent, transports: { http: {} } };
    const a = new FlakyImpl("a");
    a.mode = "internal";
    const server = createApp(base).serve(Flaky, a, { instanceId: "a", transports: ["http"] });
    apps.push(server);
    await server.start();
    const caller = createApp({ ...base, policy: { breaker: { failures: 2, openMs: 300 }, retry: false } });
    apps.push(caller);
    await caller.start();
    const set = await caller.watch(Flaky.descriptor.name);
    await until("the instance", () => set.instances().length === 1, 20_000);
    const client = caller.client(Flaky);
    for (let i = 0; i < 2; i++) await client.read({ n: i }).catch(() => undefined);
    await until(
      "the open breaker in fanc ls",
      async () => ((await listed(cluster)).get("a")?.length ?? 0) > 0,
      20_000,
      100,
    );
    a.mode = "ok";
    await new Promise((r) => setTimeout(r, 350));
    // The half-open probe succeeds and closes the breaker: the caller deletes its entry.
    expect(await client.read({ n: 3 })).toEqual({ instance: "a", n: 3 });
    await until(
      "the closed breaker gone from fanc ls",
      async () => ((await listed(cluster)).get("a")?.length ?? 1) === 0,
      20_000,
      100,
    );
    expect(caller.policy.breakerStates()).toMatchObject([{ instanceId: "a", state: "closed" }]);
  });

  it("shows which caller holds an instance's breaker open, until that caller stops", async () => {
    const cluster = randomCluster();
    const base: AppOptions = {
      cluster,
      discovery: `etcd://${SHARED_ETCD}`,
      logger: silent,
      transports: { http: {} },
    };
    const good = new FlakyImpl("good");
    const bad = new FlakyImpl("bad");
    bad.mode = "internal";
    for (const h of [good, bad]) {
      const app = createApp(base).serve(Flaky, h, { instanceId: h.name, transports: ["http"] });
      apps.push(app);
      await app.start();
    }
    const caller = createApp({ ...base, policy: { breaker: { failures: 3, openMs: 60_000 } } });
    apps.push(caller);
    await caller.start();
    const set = await caller.watch(Flaky.descriptor.name);
    await until("both instances", () => set.instances().length === 2, 20_000);
    const client = caller.client(Flaky, { strategy: "round-robin" });
    for (let i = 0; i < 40 && !caller.policy.breakerStates().some((b) => b.state === "open"); i++)
      await client.write({ n: i }).catch(() => undefined);

    const args = [Flaky.descriptor.name, "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
    let seen = new Map<string, Listed["breakers"]>();
    await until(
      "the open breaker of bad in fanc ls",
      async () => {
        seen = await listed(cluster);
        return (seen.get("bad")?.length ?? 0) > 0;
      },
      20_000,
      100,
    );
    expect(seen.get("bad")).toMatchObject([{ appId: caller.appId, state: "open" }]);
    expect(seen.get("good")).toEqual([]);

    const table = await fancLs(args);
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/^INSTANCE\s+.*\s+BREAKERS$/m);
    expect(table.out).toMatch(new RegExp(`^bad\\s.*\\sopen by ${caller.appId}$`, "m"));
    expect(table.out).toMatch(/^good\s.*\s-$/m);

    await caller.stop();
    await until(
      "the breaker entry gone with its caller",
      async () => ((await listed(cluster)).get("bad")?.length ?? 0) === 0,
      20_000,
    );
  });
});
