/**
 * Helpers of the tests that use fan as a user gets it: the environment of a user's shell, and
 * `npm pack` of this checkout, made once per content of what goes into the package and
 * shared by every test file (and run) that asks for the same content: the tarball is cached
 * under the OS temp folder, keyed by a hash of src/, bin/, scripts/, package.json and the
 * tsconfigs, and a lock folder keeps two test files from packing at the same time.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const repo = fileURLToPath(new URL("../../", import.meta.url));
/** The longest one npm step may take. */
export const STEP_MS = 5 * 60_000;

/** The environment of a user's shell: this Node first on PATH, nothing of the repo or of vitest. */
export function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(VITEST|npm_|NODE_OPTIONS|NODE_PATH|TSX|INIT_CWD|FAN_|FORCE_COLOR)/i.test(k) || k === "NODE_ENV") continue;
    env[k] = v;
  }
  const path = (process.env.PATH ?? "").split(delimiter).filter((p) => !p.startsWith(repo) && !p.includes("node-gyp-bin"));
  env.PATH = [dirname(process.execPath), ...path].join(delimiter);
  // The same commands, without the audit and funding round trips, from npm's cache when it can.
  env.npm_config_audit = "false";
  env.npm_config_fund = "false";
  env.npm_config_prefer_offline = "true";
  env.npm_config_update_notifier = "false";
  env.NO_COLOR = "1";
  return { ...env, ...extra };
}

/** A hash of everything `npm pack` reads. */
function contentKey(): string {
  const h = createHash("sha256");
  const add = (rel: string): void => {
    const abs = join(repo, rel);
    if (!existsSync(abs)) return;
    if (statSync(abs).isDirectory()) {
      for (const e of readdirSync(abs).sort()) add(join(rel, e));
      return;
    }
    h.update(`${rel}\u0000`).update(readFileSync(abs)).update("\u0000");
  };
  for (const rel of ["src", "bin", "scripts", "package.json", "tsconfig.json", "tsconfig.build.json"]) add(rel);
  return h.digest("hex").slice(0, 16);
}

/** `npm pack` of this checkout into `dir` (runs `prepare`, so a clean build of src/ must succeed); the tarball's name. */
function packInto(dir: string): string {
  const pack = spawnSync("npm", ["pack", "--pack-destination", dir, "--silent"], {
    cwd: repo,
    env: userEnv(),
    encoding: "utf8",
    timeout: STEP_MS,
  });
  if (pack.status !== 0) throw new Error(`npm pack failed:\n${pack.stdout}\n${pack.stderr}`);
  return pack.stdout.trim().split("\n").at(-1) ?? "";
}

/** The path of a tarball of this checkout's current content, packed once and reused. */
export async function packFan(): Promise<string> {
  const dir = join(tmpdir(), "fan-pack-cache", contentKey());
  const done = join(dir, "tarball");
  const lock = join(dir, "lock");
  mkdirSync(dir, { recursive: true });
  const end = Date.now() + STEP_MS;
  for (;;) {
    if (existsSync(done)) {
      const name = readdirSync(done).find((f) => f.endsWith(".tgz"));
      if (name !== undefined) return join(done, name);
    }
    try {
      mkdirSync(lock);
    } catch {
      // Someone else packs this content: wait for it (or for its lock to go stale).
      if (Date.now() > end) throw new Error(`timed out waiting for another npm pack (${lock}); remove it if no test runs`);
      const since = statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
      if (Date.now() - since > STEP_MS) rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    try {
      const staging = join(dir, `staging-${process.pid}`);
      mkdirSync(staging, { recursive: true });
      packInto(staging);
      renameSync(staging, done);
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}
