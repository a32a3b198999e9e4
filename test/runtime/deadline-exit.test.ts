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

/** Runs the fixture; `afterLineMs` is how long the process lived after printing its line. */
function run(timeoutMs: number): Promise<{ code: number | null; out: string; afterLineMs: number }> {
  let lineAt = Number.NaN;
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    env: { ...process.env, FAN_TIMEOUT_MS: String(timeoutMs) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
    if (out.includes("\n") && Number.isNaN(lineAt)) lineAt = Date.now();
  });
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, out, afterLineMs: Date.now() - lineAt })));
}

it("a pending call's deadline keeps the process alive until it fails; then the process exits on its own", async () => {
  const r = await run(1500);
  expect(r.code).toBe(0);
  const line = JSON.parse(r.out.trim()) as { code: string; ms: number };
  expect(line.code).toBe("DEADLINE_EXCEEDED");
  expect(line.ms).toBeGreaterThanOrEqual(1400);
  // The settled echo call's bucket was 10 s (its default deadline) out, about 8.5 s after the
  // line: an exit well before that means no timer of the wheel held the process once nothing
  // was pending (measured from the line, so a slow start under load does not count).
  expect(r.afterLineMs).toBeLessThan(5000);
}, 30_000);
