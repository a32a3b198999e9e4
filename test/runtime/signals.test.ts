import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const script = fileURLToPath(new URL("./fixtures/signal-app.ts", import.meta.url));
const tsx = fileURLToPath(new URL("../../node_modules/.bin/tsx", import.meta.url));

interface Run {
  events: Record<string, unknown>[];
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Starts the app in a child process; sends `signals` (one per line of output matching `after`). */
function run(
  env: Record<string, string>,
  plan: (events: Record<string, unknown>[], kill: (s: NodeJS.Signals) => void) => void,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(tsx, [script], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    const events: Record<string, unknown>[] = [];
    let buf = "";
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith("{")) events.push(JSON.parse(line) as Record<string, unknown>);
        plan(events, (s) => child.kill(s));
      }
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`child did not exit; events ${JSON.stringify(events)}; stderr ${stderr}`));
    }, 20_000);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ events, code, signal });
    });
  });
}

const names = (r: Run) => r.events.map((e) => e.event);

describe("signals, @task and @timer (in a child process)", () => {
  it("SIGTERM stops gracefully: tasks cancelled, in-flight call drained, hooks run, exit 0", async () => {
    let sent = false;
    const r = await run({ SLOW: "400" }, (events, kill) => {
      if (!sent && events.some((e) => e.event === "timer ticked twice")) {
        sent = true;
        kill("SIGTERM");
      }
    });
    expect(r.code).toBe(0);
    const ev = names(r);
    expect(ev.slice(0, 2)).toEqual(["task started", "started"]);
    expect(ev).toContain("timer ticked twice");
    expect(ev.indexOf("task cancelled")).toBeLessThan(ev.indexOf("in-flight call finished"));
    expect(ev.indexOf("in-flight call finished")).toBeLessThan(ev.indexOf("postStop"));
  });

  it("a second signal exits at once", async () => {
    let sent = 0;
    const r = await run({ SLOW: "10000" }, (events, kill) => {
      if (sent === 0 && events.some((e) => e.event === "started")) {
        sent = 1;
        kill("SIGINT");
        setTimeout(() => kill("SIGINT"), 300);
      }
    });
    expect(r.code).toBe(130);
    expect(names(r)).not.toContain("postStop");
    expect(names(r)).not.toContain("in-flight call finished");
  });
});
