/**
 * Runs `fixtures/child-app.ts` in a process of its own (tsx) and reads the JSON lines it
 * prints, for tests about what crosses processes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("./fixtures/child-app.ts", import.meta.url));
const tsx = fileURLToPath(new URL("../../node_modules/.bin/tsx", import.meta.url));

/** A running child App. */
export interface ChildApp {
  readonly process: ChildProcess;
  /** Every JSON line it printed so far. */
  readonly events: Array<Record<string, unknown>>;
  /** Resolves with the first event named `name` (or one of `names`), failing after `ms`. */
  next(names: string | readonly string[], ms?: number): Promise<Record<string, unknown>>;
  /** SIGTERM, then SIGKILL after 5 s; resolves on exit. */
  stop(): Promise<void>;
}

/**
 * Starts a child App with `env` (FAN_CHILD_TRANSPORTS, FAN_CHILD_CLUSTER, FAN_CHILD_SERVE, ...);
 * `file`: another script that prints JSON lines the same way (fixtures/notifier-child.ts).
 */
export function childApp(env: Record<string, string>, file = script): ChildApp {
  const child = spawn(tsx, [file], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const events: Array<Record<string, unknown>> = [];
  const waiting = new Set<() => void>();
  let stderr = "";
  let buf = "";
  let exited = false;
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdout?.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith("{")) events.push(JSON.parse(line) as Record<string, unknown>);
    }
    for (const w of [...waiting]) w();
  });
  const exit = new Promise<void>((resolve) =>
    child.on("exit", () => {
      exited = true;
      for (const w of [...waiting]) w();
      resolve();
    }),
  );
  return {
    process: child,
    events,
    next: (names, ms = 30_000) => {
      const wanted = typeof names === "string" ? [names] : names;
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = events.find((e) => wanted.includes(e.event as string));
          if (hit !== undefined) done(() => resolve(hit));
          else if (exited) done(() => reject(new Error(`child exited before ${wanted.join("/")}; stderr: ${stderr}`)));
        };
        const timer = setTimeout(
          () => done(() => reject(new Error(`no ${wanted.join("/")} from the child in ${ms} ms; stderr: ${stderr}`))),
          ms,
        );
        const done = (f: () => void): void => {
          clearTimeout(timer);
          waiting.delete(check);
          f();
        };
        waiting.add(check);
        check();
      });
    },
    stop: async () => {
      if (exited) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exit;
      clearTimeout(t);
    },
  };
}
