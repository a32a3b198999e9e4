/** Flaky instances in child processes (fixtures/flaky-server.ts), for suites that pick the transport. */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("./fixtures/flaky-server.ts", import.meta.url));

export type FlakyProcess = ChildProcessByStdio<null, Readable, Readable>;

/** Starts one instance; resolves once it is registered (rejects with its stderr when it exits first). */
export function flakyProcess(args: {
  cluster: string;
  id: string;
  mode?: string;
  transport: "http" | "zmq" | "tcp";
  delayMs?: number;
  env?: Record<string, string>;
}): Promise<FlakyProcess> {
  const argv = [args.cluster, args.id, args.mode ?? "ok", args.transport, String(args.delayMs ?? 0)];
  // node --import tsx, not the tsx CLI: a SIGKILL of the CLI would leave its node child running.
  const proc = spawn(process.execPath, ["--import", "tsx", script, ...argv], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...args.env },
  });
  let err = "";
  proc.stderr.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.id} did not start: ${err}`)), 120_000);
    let out = "";
    proc.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes(`"ready":"${args.id}"`)) {
        clearTimeout(timer);
        resolve(proc);
      }
    });
    proc.once("exit", (code) => reject(new Error(`${args.id} exited with ${code}: ${err}`)));
  });
}
