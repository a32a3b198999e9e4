/**
 * The example system as separate processes (`npm run example`, examples/system.ts): one
 * process per service on real brokers, registered in the shared etcd under a cluster of this
 * test. `fanc ls` lists the five services, `fanc call` answers (a value and a typed error),
 * `fanc bench` runs against it, and SIGINT stops every process cleanly (exit 0).
 */
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { deleteByPrefix } from "../transports/amqp-broker.js";
import { deleteKeys } from "../transports/redis-server.js";
import { runFanc, spawnCaptured, until } from "./helpers.js";

const tsx = fileURLToPath(new URL("../../node_modules/tsx/dist/loader.mjs", import.meta.url));

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describeEtcd("npm run example: the example system, one process per service", () => {
  for (const transport of ["redis", "amqp"]) {
    it(`runs on ${transport}: fanc ls, call and bench reach it; SIGINT stops it cleanly`, async () => {
      const cluster = randomCluster();
      const system = spawnCaptured(process.execPath, [
        "--import",
        tsx,
        "examples/system.ts",
        "--discovery",
        `etcd://${SHARED_ETCD}`,
        "--transport",
        transport,
        "--cluster",
        cluster,
      ]);
      try {
        await until("all services running", () => /all 5 services running/.test(system.stdout()) || system.child.exitCode !== null, 180_000);
        expect(system.stdout(), system.stderr()).toContain("all 5 services running");
        const pids = [...system.stdout().matchAll(/✓ \S+ \(pid (\d+)\)/g)].map((m) => Number(m[1]));
        expect(pids).toHaveLength(5);
        const C = ["--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];

        const ls = await runFanc(["ls", ...C]);
        expect(ls.code, ls.stderr).toBe(0);
        for (const s of ["integration.api.IntegrationApi", "integration.api.LightspeedSync", "retail.wines.Lightspeed", "retail.wines.PublicWines", "trading.Exchange"])
          expect(ls.stdout).toContain(s);
        expect(ls.stdout).toMatch(new RegExp(`retail\\.wines\\.PublicWines\\s+1\\s+2\\.1\\.0\\s+\\S*${transport}`));

        const list = await runFanc(["call", "PublicWines.list", '{"storeId":"s1"}', ...C, "--via", transport, "--json"]);
        expect(list.code, list.stderr).toBe(0);
        expect(JSON.parse(list.stdout)).toMatchObject({ ok: true, transport, value: [] });
        const missing = await runFanc(["call", "PublicWines.get", '{"storeId":"s1","inventoryId":"nope"}', ...C, "--via", transport]);
        expect(missing.code).toBe(1);
        expect(missing.stderr).toMatch(/error NOT_FOUND retail\.wines\.WineNotFound/);

        const bench = await runFanc(["bench", "IntegrationApi.ping", ...C, "--duration", "1s", "--concurrency", "2", "--json"]);
        expect(bench.code, bench.stderr).toBe(0);
        expect((JSON.parse(bench.stdout) as { ok: number }).ok).toBeGreaterThan(0);

        system.child.kill("SIGINT");
        expect(await system.exited).toBe(0);
        expect(system.stdout()).toContain("example: every service stopped");
        expect(pids.filter(alive)).toEqual([]);
      } finally {
        system.child.kill("SIGKILL");
        // What the services' durable queues and streams left on the shared brokers.
        await deleteByPrefix(`fan.${cluster}`).catch(() => undefined);
        await deleteKeys(`fan.${cluster}.*`).catch(() => undefined);
      }
    }, 400_000);
  }
});
