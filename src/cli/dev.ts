/**
 * `fanc dev <idl dir> --run <file>`: the edit loop. The IDL is compiled and watched as by
 * `fanc compile --watch` (watch.ts); the service process (dev-process.ts) is restarted,
 * gracefully, after a good IDL rebuild and after a change to its code (the folder of the
 * `--run` file and any `--watch` folder). An IDL with errors prints its diagnostics and keeps
 * the running process; with `--typecheck`, so do type errors (dev-typecheck.ts). One line per
 * rebuild or restart.
 */
import { dirname, join, relative, resolve, sep } from "node:path";
import { parseArgs } from "node:util";
import { onStopSignals } from "./child-guard.js";
import { type Io, processIo } from "./io.js";
import { UsageError } from "./ls.js";
import { nodeArgs, ServiceProcess } from "./dev-process.js";
import { TypeCheck } from "./dev-typecheck.js";
import { commonJsWarning } from "./module-type.js";
import { DirectoryWatcher } from "./watch-dirs.js";

const USAGE = `usage: fanc dev <idl dir> --run <file> [--typecheck] [options] [-- <args of the file>]

Compiles <idl dir> into --out and runs <file> (a .ts file through the project's tsx, or .js).
On a change to a .fan file it recompiles and, when the IDL compiles, restarts the process; on
a change to the code (the folder of <file>, and --watch folders) it restarts the process. A
restart sends SIGTERM and starts the new process once the old one has exited (an App with
handleSignals drains its calls in flight first). An IDL with errors prints the diagnostics
and leaves the running process alone. Ctrl-C, SIGTERM, SIGHUP (the terminal closed) and
SIGQUIT stop both; if fanc dies otherwise, the process gets SIGTERM within a second.

options:
  --run <file>       the service's entry point (required), e.g. src/main.ts
  --out <dir>        the generated code's folder (default: generated)
  --watch <dir>      another code folder to watch (repeatable; default: the folder of --run)
  --typecheck        run tsc --noEmit (the tsconfig.json nearest <file>) before each start and
                     restart; type errors are printed and keep the running process, as IDL errors do
  --grace <ms>       how long a process may take to exit after SIGTERM before SIGKILL (default 10000)
  --debounce <ms>    quiet time after the last change before acting (default 100)
  -h, --help         show this help`;

/** Files whose change restarts the process (editors' swap and backup files do not). */
function isCode(name: string): boolean {
  return /\.(m|c)?(t|j)sx?$|\.json$/.test(name) && !name.endsWith(".d.ts.map") && !name.startsWith(".");
}

/** A running dev session (tests stop it with `close`). */
export interface DevSession {
  close(): Promise<void>;
}

export async function startDev(args: readonly string[], io: Io): Promise<DevSession | number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      run: { type: "string" },
      out: { type: "string" },
      watch: { type: "string", multiple: true },
      grace: { type: "string" },
      debounce: { type: "string" },
      typecheck: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  const [idl, ...extra] = positionals;
  if (idl === undefined) throw new UsageError(`missing the IDL folder\n${USAGE}`);
  if (values.run === undefined) throw new UsageError(`missing --run <file>\n${USAGE}`);
  const file = resolve(values.run);
  nodeArgs(file); // refuses a missing file or a .ts file without tsx before anything starts
  const graceMs = Number(values.grace ?? 10_000);
  const debounceMs = Number(values.debounce ?? 100);
  if (!(graceMs > 0) || !(debounceMs >= 0)) throw new UsageError("--grace and --debounce are numbers of ms");
  const out = resolve(values.out ?? "generated");
  const root = resolve(idl);
  const typecheck = values.typecheck === true ? new TypeCheck(dirname(file)) : undefined;
  const esm = commonJsWarning(out);
  if (esm !== undefined) io.err(esm);

  const proc = new ServiceProcess({ file, args: extra, graceMs }, io);
  const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? "" : "s"}`;
  let compiled = false; // the IDL has compiled: there is a build to run
  let started = false;
  let closed = false;
  let asked = 0;
  /** Starts the process, or restarts it for `why`; with --typecheck, only once tsc passes. */
  const go = async (why: string): Promise<void> => {
    const mine = ++asked;
    let tscMs: number | undefined;
    if (typecheck !== undefined) {
      const r = await typecheck.check();
      if (mine !== asked || closed) return; // a later change asked again: its check decides
      if (!r.ok) {
        if (r.output !== "") io.err(r.output);
        const running =
          proc.pid !== undefined
            ? `pid ${proc.pid} keeps running the last good build`
            : started
              ? "nothing runs"
              : `fix them to start ${values.run}`;
        io.err(`fanc dev: tsc --noEmit found ${plural(r.errors, "type error")} (above); ${running}`);
        return;
      }
      tscMs = Math.round(r.ms);
    }
    if (!started) {
      started = true;
      if (tscMs !== undefined) io.out(`fanc dev: tsc --noEmit passed (${tscMs} ms)`);
      proc.start();
      return;
    }
    const checked = tscMs === undefined ? "" : `, typechecked in ${tscMs} ms`;
    await proc.restart(`${why}${checked}`);
  };
  // The compile session's own lines are replaced by ours; its diagnostics pass through.
  const quiet: Io = {
    out: () => undefined,
    err: (t) => {
      if (!/^fanc: \d+ errors?; kept the last good output/.test(t)) io.err(t);
    },
  };
  const { startWatch } = await import("./watch.js");
  const watcher = await startWatch({ root, out, strict: false, watch: true }, quiet, {
    debounceMs,
    onRebuild: (o, first) => {
      const took = `${Math.round(o.ms)} ms`;
      if (!o.ok) {
        const running =
          proc.pid !== undefined ? `pid ${proc.pid} keeps running the last good build` : started ? "nothing runs" : "";
        if (first || running === "")
          io.err(`fanc dev: the IDL has ${plural(o.errors, "error")}; fix them to start ${values.run}`);
        else io.err(`fanc dev: the IDL has ${plural(o.errors, "error")} (above); ${running}`);
        return;
      }
      if (first)
        io.out(
          `fanc dev: compiled ${relative(process.cwd(), root) || "."} (${plural(o.sources, ".fan file")}, ${took})`,
        );
      else if (!compiled) io.out(`fanc dev: the IDL compiles again (${took})`);
      compiled = true;
      void go(`the IDL changed, recompiled in ${took}`);
    },
  });

  // Code folders: the --run file's and --watch's, minus the generated folder (the IDL path restarts for it).
  const inside = (dir: string, parent: string): boolean => dir === parent || dir.startsWith(parent + sep);
  const codeDirs = [...new Set([dirname(file), ...(values.watch ?? []).map((d) => resolve(d))])];
  let timer: NodeJS.Timeout | undefined;
  const changed = new Set<string>();
  const watchers = codeDirs.map((d) => {
    const w = new DirectoryWatcher(
      d,
      {
        change: (dir, name) => {
          if (name === null || !isCode(name) || inside(dir, out) || inside(dir, root)) return;
          changed.add(relative(process.cwd(), join(dir, name)));
          clearTimeout(timer);
          timer = setTimeout(() => {
            const names = [...changed];
            changed.clear();
            if (!compiled) return;
            const what = names.length === 1 ? names[0] : `${names[0]} and ${names.length - 1} more`;
            void go(`${what} changed`);
          }, debounceMs);
        },
        error: (e) => io.err(`fanc dev: cannot watch ${d} (${e instanceof Error ? e.message : String(e)})`),
      },
      (dir) => inside(dir, out) || dir.split(sep).includes("node_modules"),
    );
    w.sync();
    return w;
  });
  io.out(
    `fanc dev: watching ${[root, ...codeDirs].map((d) => relative(process.cwd(), d) || ".").join(", ")} (Ctrl-C to stop)`,
  );
  return {
    close: async () => {
      closed = true;
      clearTimeout(timer);
      for (const w of watchers) w.close();
      await watcher.close();
      await proc.stop();
    },
  };
}

/** `fanc dev ...`: runs until one of child-guard's STOP_SIGNALS (a second one exits at once); returns the exit code. */
export async function run(args: string[], io: Io = processIo): Promise<number> {
  // Listening before the first start: the process may be running before startDev returns.
  let stop = (): void => undefined;
  const stopped = new Promise<void>((resolveStop) => {
    stop = resolveStop;
  });
  let signalled = false;
  const off = onStopSignals(() => {
    // A second signal while the process drains: exit now (the exit hook SIGKILLs the process).
    if (signalled) process.exit(130);
    signalled = true;
    stop();
  });
  try {
    let session: DevSession | number;
    try {
      session = await startDev(args, io);
    } catch (e) {
      if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
        io.err(`fanc dev: ${(e as Error).message}`);
        return 2;
      }
      throw e;
    }
    if (typeof session === "number") return session;
    await stopped;
    await session.close();
    return 0;
  } finally {
    off();
  }
}
