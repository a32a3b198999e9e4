/** A worker process of `bench/peers` (worker.ts) and the JSON lines it answers with. */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { CaseContext } from "./case.js";

const worker = fileURLToPath(new URL("./worker.ts", import.meta.url));
const repo = fileURLToPath(new URL("../../", import.meta.url));

export type Reply = Record<string, unknown> & { readonly event: string };

export class Proc {
  readonly #child: ChildProcess;
  readonly #lines: Reply[] = [];
  #wake: (() => void) | undefined;
  #stderr = "";
  #exited = false;

  constructor(
    readonly label: string,
    role: "server" | "client",
    module: string,
    caseName: string,
    ctx: CaseContext,
    /** Another checkout to run the worker from (PEERS_BEFORE), for a before/after comparison in one run. */
    root?: string,
  ) {
    // PEERS_NODE_ARGS: extra node flags for the workers (`--cpu-prof --cpu-prof-dir=...`).
    const extra = (process.env.PEERS_NODE_ARGS ?? "").split(" ").filter((a) => a !== "");
    const dir = root ?? repo;
    const script = root === undefined ? worker : `${root.replace(/\/$/, "")}/bench/peers/worker.ts`;
    this.#child = spawn(
      process.execPath,
      ["--expose-gc", ...extra, "--import", "tsx", script, role, module, caseName],
      {
        cwd: dir,
        env: { ...process.env, PEERS_CTX: JSON.stringify(ctx) },
        stdio: ["pipe", "pipe", "pipe"],
      },
    );
    let buf = "";
    this.#child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith("{")) this.#lines.push(JSON.parse(line) as Reply);
      }
      this.#wake?.();
    });
    this.#child.stderr?.on("data", (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-4000);
    });
    this.#child.on("exit", () => {
      this.#exited = true;
      this.#wake?.();
    });
  }

  /** The worker's process id (for `/proc` counts and profilers). */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  send(cmd: Record<string, unknown>): void {
    this.#child.stdin?.write(`${JSON.stringify(cmd)}\n`);
  }

  /** The next line whose event is one of `events` (lines before it are dropped); fails on "failed"/"error", exit or timeout. */
  async next(events: readonly string[], ms: number): Promise<Reply> {
    const end = Date.now() + ms;
    for (;;) {
      while (this.#lines.length > 0) {
        const r = this.#lines.shift() as Reply;
        if (events.includes(r.event)) return r;
        if (r.event === "failed" || r.event === "error") throw new Error(`${this.label}: ${String(r.message)}`);
      }
      if (this.#exited) throw new Error(`${this.label} exited; stderr: ${this.#stderr}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`${this.label}: no ${events.join("/")} in ${ms} ms; stderr: ${this.#stderr}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          this.#wake = undefined;
          resolve();
        };
      });
    }
  }

  async ask(cmd: Record<string, unknown>, event: string, ms: number): Promise<Reply> {
    this.send(cmd);
    return this.next([event], ms);
  }

  /** Asks the worker to close; kills it if it has not exited in 5 s. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    this.send({ cmd: "close" });
    const t = setTimeout(() => this.#child.kill("SIGKILL"), 5000);
    await new Promise<void>((r) => (this.#exited ? r() : this.#child.on("exit", () => r())));
    clearTimeout(t);
  }
}
