/**
 * The deadline wheel and the process's life (call/deadlines.ts): its one timer holds the
 * process open while a call is pending, so a call whose handler never answers fails with
 * DEADLINE_EXCEEDED instead of the process exiting under it; with no call pending it holds
 * nothing, so a script exits as soon as its own work is done.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const script = fileURLToPath(new URL("./fixtures/deadline-exit.ts", import.meta.url));

function run(timeoutMs: number): Promise<{ code: number | null; out: string; ms: number }> {
  const t0 = Date.now();
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    env: { ...process.env, FAN_TIMEOUT_MS: String(timeoutMs) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, out, ms: Date.now() - t0 })));
}

it("a pending call's deadline keeps the process alive until it fails; then the process exits on its own", async () => {
  const r = await run(1500);
  expect(r.code).toBe(0);
  const line = JSON.parse(r.out.trim()) as { code: string; ms: number };
  expect(line.code).toBe("DEADLINE_EXCEEDED");
  expect(line.ms).toBeGreaterThanOrEqual(1400);
  // The settled calls' buckets were 10 s (echo's default deadline) and 1.5 s out: an exit
  // well before 10 s means no timer of the wheel held the process once nothing was pending.
  expect(r.ms).toBeLessThan(9000);
}, 30_000);
