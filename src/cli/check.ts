/**
 * `fanc check <dir> --against <dir | git ref>`: the breaking changes between the IDL in `<dir>`
 * and an earlier version of it (another directory, or the same directory at a git ref), per
 * service; exits 1 when a service has a breaking change without a major version bump.
 */
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  type Change,
  type CompatReport,
  compareModels,
  type Locate,
  locator,
  type SourceLocation,
} from "../compiler/compat.js";
import {
  checkSources,
  formatDiagnostics,
  ParseCache,
  type ProgramModel,
  readSources,
  type SourceInput,
} from "../compiler/index.js";
import { type Io, processIo } from "./io.js";

const USAGE = `usage: fanc check <dir> --against <dir | git ref> [--json] [--strict]

Lists the breaking changes between the .fan files in <dir> and an earlier version of them:
removed or renamed members, changed types, fields made required, constraints tightened, enum
values removed, shard keys or @shards changed, timeouts shortened, @idempotent or @unique
changed, new hard dependencies, pushes made rpcs... each with its code and where it is in both
versions (docs/fanc-check.md). Exit code 1 when a service has a breaking change without a major
version bump, 2 on bad usage or an IDL with errors.

options:
  --against <x>   a directory, or a git ref (HEAD~1, v2.0.3, origin/main) of <dir>'s repository
  --json          print the report as JSON
  --strict        warnings (a method throws a new error, a default changed, a method
                  added without @since) fail too
  -h, --help      show this help`;

class UsageError extends Error {}

/** `fanc check`: returns the exit code. */
export async function run(args: string[], io: Io = processIo): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: {
        against: { type: "string" },
        json: { type: "boolean" },
        strict: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
    });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    const dir = positionals[0];
    if (dir === undefined || positionals.length > 1 || values.against === undefined)
      throw new UsageError(`expected one directory and --against\n${USAGE}`);
    if (!isDir(dir)) throw new UsageError(`${dir} is not a directory`);
    const after = await load(await readSources(dir), dir, (f) => join(dir, f), io);
    const against = values.against;
    const before = isDir(against)
      ? await load(await readSources(against), against, (f) => join(against, f), io)
      : await load(atRef(dir, against), `${dir} at ${against}`, (f) => `${against}:${join(dir, f)}`, io);
    if (after === undefined || before === undefined) return 2;
    const report = compareModels(before.model, after.model, {
      locate: { before: before.locate, after: after.locate },
      strict: values.strict === true,
    });
    io.out(values.json === true ? JSON.stringify(report, null, 2) : text(report, values.against));
    return report.failed ? 1 : 0;
  } catch (e) {
    io.err(`fanc check: ${(e as Error).message}`);
    return 2;
  }
}

function isDir(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

/** The checked model of one version, and where its declarations are (`display` names a file as printed). */
async function load(
  sources: readonly SourceInput[],
  where: string,
  display: (file: string) => string,
  io: Io,
): Promise<{ model: ProgramModel; locate: Locate } | undefined> {
  if (sources.length === 0) throw new UsageError(`no .fan files in ${where}`);
  const cache = new ParseCache();
  const result = checkSources(sources, { cache });
  if (result.model === undefined) {
    io.err(`fanc check: ${where} has errors:\n${formatDiagnostics(result.diagnostics, sources)}`);
    return undefined;
  }
  const files = sources.map((s) => cache.parse(s.path, s.text).ast);
  return { model: result.model, locate: locator(files, display) };
}

/** The .fan files of `dir` as they were at `ref` in its git repository. */
function atRef(dir: string, ref: string): SourceInput[] {
  const git = (cwd: string, ...a: string[]): string => {
    try {
      return execFileSync("git", ["-C", cwd, ...a], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      const err = (e as { stderr?: string }).stderr?.trim();
      throw new UsageError(`--against ${ref}: not a directory, and git says: ${err || (e as Error).message}`);
    }
  };
  const root = git(dir, "rev-parse", "--show-toplevel").trim();
  const prefix = git(dir, "rev-parse", "--show-prefix").trim();
  try {
    git(root, "rev-parse", "--verify", "--quiet", `${ref}^{commit}`);
  } catch {
    // --quiet: git says nothing of a ref it does not know, and exits 1.
    throw new UsageError(
      `--against ${ref}: unknown revision ${ref} (no such directory, nor a commit in the git repository at ${root})`,
    );
  }
  const files = git(root, "ls-tree", "-r", "--name-only", ref, "--", prefix === "" ? "." : prefix)
    .split("\n")
    .filter((p) => p.endsWith(".fan"))
    .sort();
  return files.map((p) => ({ path: p.slice(prefix.length), text: git(root, "show", `${ref}:${p}`) }));
}

function text(r: CompatReport, against: string): string {
  const lines: string[] = [];
  for (const s of r.services) {
    if (s.breaking.length === 0) continue;
    const verdict = s.failed ? "FAIL: breaking changes without a major version bump" : "ok: major version bumped";
    lines.push(`${s.service} ${s.before} → ${s.after}: ${verdict}`);
    for (const c of s.breaking) lines.push(...describe(c));
  }
  for (const s of r.services) {
    if (s.warnings.length === 0) continue;
    lines.push(
      `${s.service} ${s.before} → ${s.after}: warnings${s.failed && s.breaking.length === 0 ? " (FAIL with --strict)" : ""}`,
    );
    for (const c of s.warnings) lines.push(...describe(c));
  }
  const other = r.changes.filter((c) => c.severity === "compatible");
  const unused = r.changes.filter((c) => c.breaking && !r.services.some((s) => s.breaking.includes(c)));
  for (const c of unused) lines.push(`(no service uses it) ${c.code} ${c.kind}: ${c.message}`);
  if (lines.length === 0) lines.push(`no breaking changes against ${against}`);
  if (other.length > 0)
    lines.push(`${other.length} compatible change${other.length === 1 ? "" : "s"} (--json lists them)`);
  return lines.join("\n");
}

/** `  FAN1010 timeout-shortened      message` and the locations in both versions. */
function describe(c: Change): string[] {
  const at = (l: SourceLocation | undefined): string => (l === undefined ? "-" : `${l.file}:${l.line}:${l.column}`);
  return [`  ${c.code} ${c.kind.padEnd(24)} ${c.message}`, `          was ${at(c.before)}, now ${at(c.after)}`];
}
