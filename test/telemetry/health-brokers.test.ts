/**
 * `fanc health <service>` over the brokers, with Apps in processes of their own on one broker:
 * one serving test.tel.A, the other test.tel.B. Both serve fan.Health, whose version's shared
 * queue either takes from; fanc must ask A's own App (its instance queue, list or subject), or
 * B's App answers SERVICE_UNKNOWN about A about half the time (exit 1), as a user trial saw.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { run as health } from "../../src/cli/health.js";
import { captureIo } from "../cli/helpers.js";
import { SHARED_ETCD, describeEtcd, randomCluster } from "../discovery/helpers.js";
import { deleteByPrefix } from "../transports/amqp-broker.js";
import { deleteKeys } from "../transports/redis-server.js";

const script = fileURLToPath(new URL("./serve-hop.ts", import.meta.url));
const BROKERS = ["amqp", "redis", "nats"] as const;

/** Starts a child serving `which` and resolves once it is registered. */
function serve(cluster: string, which: string, instanceId: string): Promise<ChildProcess> {
  const argv = ["--import", "tsx", script, SHARED_ETCD, cluster, which, instanceId, BROKERS.join(",")];
  const proc = spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  proc.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${instanceId} not ready in 60 s: ${err}`)), 60_000);
    proc.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("ready\n")) {
        clearTimeout(timer);
        resolve(proc);
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${instanceId} exited with ${code}: ${err}`));
    });
  });
}

describeEtcd("fanc health over the brokers (Apps in child processes, etcd)", () => {
  const cluster = randomCluster();
  let children: ChildProcess[] = [];

  beforeAll(async () => {
    children = await Promise.all([serve(cluster, "A", "a-1"), serve(cluster, "B", "b-1")]);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once("exit", () => resolve());
            c.kill("SIGKILL");
          }),
      ),
    );
    await Promise.allSettled([deleteKeys(`fan.${cluster}*`), deleteByPrefix(`fan.${cluster}`)]);
  }, 60_000);

  it.each(BROKERS)(
    "asks the instance's own App over %s: every run SERVING",
    async (via) => {
      const args = ["A", "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster, "--transport", via, "--json"];
      // Before the fix each run had one chance in two of reaching B's App.
      for (let run = 0; run < 8; run++) {
        const io = captureIo();
        const code = await health(args, io);
        expect(JSON.parse(io.outText()), `${via} run ${run}: ${io.errText()}`).toEqual([
          { instance: "a-1", transport: via, status: "SERVING" },
        ]);
        expect(code).toBe(0);
      }
    },
    120_000,
  );
});
