/**
 * Child processes that never outlive the process that started them (`fanc dev`'s service,
 * the example launcher's services). They run in a process group and session of their own
 * (`detached`), so Ctrl-C reaches the parent only, which stops each one with a single SIGTERM
 * and lets it drain; no terminal hangup reaches them either. So the parent stops them itself
 * on every stop signal (STOP_SIGNALS, SIGHUP included), SIGKILLs them from its `exit` hook,
 * and a watch preloaded into each child sends it SIGTERM once its parent is gone, for a parent
 * that is SIGKILLed or dies of a signal it does not handle. docs/decisions.md, `fanc dev`.
 */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";

/** The signals that stop a parent and its children: a closed terminal or dropped SSH is SIGHUP. */
export const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const;

/**
 * Calls `stop` on each of STOP_SIGNALS until the returned function is called. After SIGHUP the
 * terminal may be gone: writes to it are made harmless first, so a stop that logs does not crash
 * the parent before its children are stopped.
 */
export function onStopSignals(stop: (signal: NodeJS.Signals) => void): () => void {
  const onSignal = (sig: NodeJS.Signals): void => {
    if (sig === "SIGHUP") for (const s of [process.stdout, process.stderr]) s.on("error", () => undefined);
    stop(sig);
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  return () => {
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
  };
}

/** Names the parent's pid to the watch in the child; the watch deletes it, so the child's own children never see it. */
const PARENT_ENV = "FANC_DEV_PARENT_PID";

/**
 * Preloaded into the child: every 500 ms, compares its parent with the pid it was given and,
 * once they differ (the parent died; the child was reparented to init or a subreaper), sends
 * itself one SIGTERM: an App with `handleSignals` deregisters and drains, any other process
 * ends. Unref'd: it never keeps the child alive. A data: URL, so there is no file to ship.
 */
const WATCH_PARENT = `data:text/javascript,${encodeURIComponent(
  `const p = Number(process.env.${PARENT_ENV}); delete process.env.${PARENT_ENV};
if (p > 0) { const t = setInterval(() => { if (process.ppid !== p) { clearInterval(t); process.kill(process.pid, "SIGTERM"); } }, 500); t.unref(); }`,
)}`;

/**
 * `node <args>` (this Node, the parent watch preloaded first), detached, SIGKILLed when this
 * process exits while it still runs. `options.env` defaults to this process's environment.
 */
export function spawnGuarded(args: readonly string[], options: SpawnOptions): ChildProcess {
  const child = spawn(process.execPath, ["--import", WATCH_PARENT, ...args], {
    ...options,
    detached: true,
    env: { ...(options.env ?? process.env), [PARENT_ENV]: String(process.pid) },
  });
  const orphan = (): void => void child.kill("SIGKILL");
  process.once("exit", orphan);
  child.once("exit", () => process.off("exit", orphan));
  return child;
}
