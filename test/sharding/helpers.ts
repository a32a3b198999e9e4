/** Child processes serving `test.shards.Store` on etcd, for the sharding and versioning suites. */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("./fixtures/serve-store.ts", import.meta.url));

/** One serving child. */
export interface Child {
  readonly instanceId: string;
  readonly proc: ChildProcess;
  readonly stderr: () => string;
  /** Everything it printed so far. */
  readonly stdout: () => string;
}

/** Starts a child and resolves once it printed `ready` (rejects with its stderr when it exits first). */
export function serveStore(args: {
  etcd: string;
  cluster: string;
  instanceId: string;
  transports: readonly string[];
  version?: string;
  leaseTtlMs?: number;
  shards?: readonly number[];
}): Promise<Child> {
  // node --import tsx, not the tsx CLI: the CLI runs node as a child of its own, which a
  // SIGKILL of the CLI would leave running.
  const argv = [
    "--import",
    "tsx",
    script,
    args.etcd,
    args.cluster,
    args.instanceId,
    args.transports.join(","),
    args.version ?? "",
    String(args.leaseTtlMs ?? 2000),
    (args.shards ?? []).join(","),
  ];
  const proc = spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  proc.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${args.instanceId} not ready in 60 s: ${err}`)), 60_000);
    proc.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("ready\n")) {
        clearTimeout(timer);
        resolve({ instanceId: args.instanceId, proc, stderr: () => err, stdout: () => out });
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.instanceId} exited with ${code}: ${err}`));
    });
  });
}

/** SIGKILLs a child and waits for it to be gone. */
export function kill(c: Child): Promise<void> {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    c.proc.once("exit", () => resolve());
    c.proc.kill("SIGKILL");
  });
}
