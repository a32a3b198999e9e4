/**
 * The example system as separate processes (`npm run example`, examples/system.ts): one
 * process per service on real brokers, registered in the shared etcd under a cluster of this
 * test. `fanc ls` lists the five services, `fanc call` answers (a value and a typed error),
 * `fanc bench` runs against it, and SIGINT stops every process cleanly (exit 0), as SIGHUP does;
 * a SIGKILLed launcher leaves no service running or registered.
 */
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { deleteByPrefix } from "../transports/amqp-broker.js";
import { deleteKeys } from "../transports/redis-server.js";
import { alive, type CapturedChild, runFanc, spawnCaptured, until } from "./helpers.js";

const tsx = fileURLToPath(new URL("../../node_modules/tsx/dist/loader.mjs", import.meta.url));

interface System {
  readonly system: CapturedChild;
  readonly cluster: string;
  /** The five services' pids. */
  readonly pids: number[];
}

/**
 * Starts the launcher on `transport` in a fresh cluster and runs `body` once all five services
 * run; then kills whatever is left and deletes what the services' durable queues and streams
 * left on the shared brokers.
 */
async function withSystem(transport: string, body: (s: System) => Promise<void>): Promise<void> {
  const cluster = randomCluster();
  const args = [
    "examples/system.ts",
    "--discovery",
    `etcd://${SHARED_ETCD}`,
    "--transport",
    transport,
    "--cluster",
    cluster,
  ];
  const system = spawnCaptured(process.execPath, ["--import", tsx, ...args]);
  let pids: number[] = [];
  try {
    await until(
      "all services running",
      () => /all 5 services running/.test(system.stdout()) || system.child.exitCode !== null,
      180_000,
    );
    expect(system.stdout(), system.stderr()).toContain("all 5 services running");
    pids = [...system.stdout().matchAll(/✓ \S+ \(pid (\d+)\)/g)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(5);
    await body({ system, cluster, pids });
  } finally {
    system.child.kill("SIGKILL");
    for (const pid of pids.filter(alive)) process.kill(pid, "SIGKILL");
    await deleteByPrefix(`fan.${cluster}`).catch(() => undefined);
    await deleteKeys(`fan.${cluster}.*`).catch(() => undefined);
  }
}

/** `signal` makes the launcher stop every service gracefully and exit 0. */
async function stopsCleanly({ system, pids }: System, signal: NodeJS.Signals): Promise<void> {
  system.child.kill(signal);
  expect(await system.exited).toBe(0);
  expect(system.stdout()).toContain("example: every service stopped");
  expect(pids.filter(alive)).toEqual([]);
}

describeEtcd("npm run example: the example system, one process per service", () => {
  for (const transport of ["redis", "amqp"]) {
    it(`runs on ${transport}: fanc ls, call and bench reach it; SIGINT stops it cleanly`, async () => {
      await withSystem(transport, async (started) => {
        const { cluster } = started;
        const C = ["--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];

        const ls = await runFanc(["ls", ...C]);
        expect(ls.code, ls.stderr).toBe(0);
        for (const s of [
          "integration.api.IntegrationApi",
          "integration.api.LightspeedSync",
          "retail.wines.Lightspeed",
          "retail.wines.PublicWines",
          "trading.Exchange",
        ])
          expect(ls.stdout).toContain(s);
        expect(ls.stdout).toMatch(new RegExp(`retail\\.wines\\.PublicWines\\s+1\\s+2\\.1\\.0\\s+\\S*${transport}`));

        const list = await runFanc([
          "call",
          "PublicWines.list",
          '{"storeId":"s1"}',
          ...C,
          "--via",
          transport,
          "--json",
        ]);
        expect(list.code, list.stderr).toBe(0);
        expect(JSON.parse(list.stdout)).toMatchObject({ ok: true, transport, value: [] });
        const missing = await runFanc([
          "call",
          "PublicWines.get",
          '{"storeId":"s1","inventoryId":"nope"}',
          ...C,
          "--via",
          transport,
        ]);
        expect(missing.code).toBe(1);
        expect(missing.stderr).toMatch(/error NOT_FOUND retail\.wines\.WineNotFound/);

        const bench = await runFanc([
          "bench",
          "IntegrationApi.ping",
          ...C,
          "--duration",
          "1s",
          "--concurrency",
          "2",
          "--json",
        ]);
        expect(bench.code, bench.stderr).toBe(0);
        expect((JSON.parse(bench.stdout) as { ok: number }).ok).toBeGreaterThan(0);

        await stopsCleanly(started, "SIGINT");
      });
    }, 400_000);
  }

  // Before the launcher shared fanc dev's guard (src/cli/child-guard.ts), SIGHUP killed it
  // without stopping its services, and so did SIGKILL: five services ran on with PPID 1,
  // registered and holding their ports.
  it("SIGHUP (the terminal closed) stops every service gracefully and exits 0", async () => {
    await withSystem("redis", (started) => stopsCleanly(started, "SIGHUP"));
  }, 400_000);

  it("a SIGKILLed launcher: every service stops itself within seconds and leaves discovery", async () => {
    await withSystem("redis", async ({ system, cluster, pids }) => {
      system.child.kill("SIGKILL");
      await system.exited;
      await until("the orphaned services to exit", () => pids.filter(alive).length === 0, 15_000);
      const ls = await runFanc(["ls", "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster]);
      expect(ls.code, ls.stderr).toBe(0);
      expect(ls.stdout).not.toContain("PublicWines");
    });
  }, 400_000);
});
