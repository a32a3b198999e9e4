/** Helpers of the CLI tests: captured output, temp folders of .fan files, polling. */
import { type ChildProcessWithoutNullStreams, execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Io } from "../../src/cli/io.js";

/** An Io that keeps everything printed. */
export interface CapturedIo extends Io {
  readonly stdout: string[];
  readonly stderr: string[];
  /** Everything printed to stderr, joined. */
  errText(): string;
  outText(): string;
}

/** A fresh captured Io. */
export function captureIo(): CapturedIo {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (t) => void stdout.push(t),
    err: (t) => void stderr.push(t),
    errText: () => stderr.join("\n"),
    outText: () => stdout.join("\n"),
  };
}

/** A temp folder that `cleanup()` removes. */
export class TempDir {
  readonly path = mkdtempSync(join(tmpdir(), "fan-cli-"));

  /** Writes `text` to `rel`, creating folders. */
  write(rel: string, text: string): void {
    mkdirSync(dirname(join(this.path, rel)), { recursive: true });
    writeFileSync(join(this.path, rel), text);
  }

  /** The text of `rel`, or undefined when it does not exist. */
  read(rel: string): string | undefined {
    try {
      return readFileSync(join(this.path, rel), "utf8");
    } catch {
      return undefined;
    }
  }

  /** Every file under `rel`, relative to it, sorted. */
  files(rel: string): string[] {
    try {
      return readdirSync(join(this.path, rel), { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name).slice(join(this.path, rel).length + 1))
        .sort();
    } catch {
      return [];
    }
  }

  cleanup(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

/** Polls `check` until it returns true or `timeoutMs` passes; the failure names `what`. */
export async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
}

/** True while the process `pid` exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A small valid package. */
export const SHOP = `package shop

/// A line of an order.
struct Line { sku: string, qty: int = 1 }

service Orders {
  rpc place(lines: list<Line>): string
}
`;

/** A child process whose output is kept as it arrives. */
export interface CapturedChild {
  readonly child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
}

/** Spawns `command args` with `env` added to this process's environment, capturing its output. */
export function spawnCaptured(
  command: string,
  args: readonly string[],
  env: Record<string, string> = {},
): CapturedChild {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: "pipe" });
  child.stdin.end();
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** What a finished `fanc` child process printed. */
export interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `bin/fanc.mjs ...args` in the repository with `env` added; resolves with its exit code and output. */
export function runFanc(args: readonly string[], env: Record<string, string> = {}): Promise<Ran> {
  const repo = join(dirname(new URL(import.meta.url).pathname), "../..");
  return new Promise((resolveRun) => {
    execFile(
      process.execPath,
      [join(repo, "bin/fanc.mjs"), ...args],
      { cwd: repo, timeout: 120_000, env: { ...process.env, ...env } },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        resolveRun({ code, stdout, stderr });
      },
    );
  });
}
