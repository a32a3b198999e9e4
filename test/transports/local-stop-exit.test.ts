/**
 * A push on the local transport waiting to be delivered again (a failure's `retryAfterMs`, up
 * to 60 s) does not keep the process alive once its App has stopped: a script's process exits
 * when its work is done. While the transport is open the wait holds the process, so the
 * redelivery happens (push-ends.test.ts).
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const tsx = fileURLToPath(new URL("../../node_modules/.bin/tsx", import.meta.url));
const child = fileURLToPath(new URL("./fixtures/local-stop-child.ts", import.meta.url));

describe("a stopped App on the local transport", () => {
  it("exits with a redelivery still waiting for its 20 s retryAfterMs", async () => {
    const p = spawn(tsx, [child], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let stoppedAt = 0;
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (stoppedAt === 0 && out.includes("stopped")) stoppedAt = Date.now();
    });
    let err = "";
    p.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const code = await new Promise<number | null>((r) => p.on("exit", (c) => r(c)));
    expect(out, err).toContain("stopped");
    expect(code).toBe(0);
    // Without the fix the process lives until the 20 s timer fires.
    expect(Date.now() - stoppedAt).toBeLessThan(5000);
  }, 40_000);
});
