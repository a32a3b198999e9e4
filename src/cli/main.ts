/**
 * The `fanc` command: dispatches to each subcommand's module (loaded on use). Returns the exit code and
 * never lets a stack trace reach the user (set `FANC_DEBUG=1` to see one for a real bug).
 */
import { readFileSync } from "node:fs";
import { type Io, processIo } from "./io.js";

/** The top-level usage text. */
export const USAGE = `usage: fanc <command> [options]

commands:
  compile <dir> [--out <dir>] [--watch] [--strict]   check .fan files and generate TypeScript
  ls ...                                             list services and instances in discovery
  config ...                                         read and update service config
  health <service> ...                               ask fan.Health whether each instance serves
  route pin|split|clear|show ...                     live traffic rules: pin a version, split, roll back
  check <dir> --against <dir|git ref> [--json]       breaking changes between two versions of the IDL
  fmt [--check] <dir|file>...                        rewrite .fan files in the canonical layout
  lsp                                                the language server for editors (stdio)
  call <service>.<method> '<json>' ...               call an rpc on any transport, print the reply
  push <service>.<method> '<json>' ...               send a push, wait for its acknowledgement
  publish <service>.<event> '<json>' ...             publish an event to every subscriber
  subscribe <service>.<event> ...                    print each event until Ctrl-C
  gateway [<idl dir>] --port 8080 ...                serve every service over HTTP (any transport), SSE for events
  watch <service>.<state> ...                        print a state's value, then each update, until Ctrl-C
  bench <service>.<method> '<json>' ...              load a method: throughput and latency percentiles
  new service <Name> [--package x.y] [--transport t] add a service to fill in: .fan, handler, main.ts, test
  init [<Name>]                                      the same in an empty folder, with package.json
  dev <idl dir> --run <file>                         recompile on IDL change, restart the service gracefully
  completion bash|zsh                                a completion script: commands, options, service and member names

Run "fanc <command> --help" for a command's options.
  -h, --help      show this help
  -v, --version   print the version`;

/** Every command's name (the unknown-command message and shell completion list them). */
export const COMMANDS: readonly string[] = [
  "compile",
  "ls",
  "config",
  "health",
  "route",
  "check",
  "fmt",
  "lsp",
  "call",
  "push",
  "publish",
  "subscribe",
  "gateway",
  "watch",
  "bench",
  "new",
  "init",
  "dev",
  "completion",
];

/** A subcommand module: `run(args, io?)` returns the exit code. */
interface Command {
  run(args: string[], io?: Io): Promise<number>;
}

/** Loads a subcommand another module implements (`ls`, `config`); undefined when it is not there. */
async function load(name: "ls" | "config"): Promise<Command | undefined> {
  try {
    return (name === "ls" ? await import("./ls.js") : await import("./config.js")) as Command;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { url?: string };
    if (err.code === "ERR_MODULE_NOT_FOUND" && String(err.url ?? err.message).includes(`/cli/${name}.`)) return undefined;
    throw e;
  }
}

async function runLoaded(name: "ls" | "config", args: string[], io: Io): Promise<number> {
  const command = await load(name);
  if (command === undefined) {
    io.err(`fanc ${name}: not available in this build`);
    return 2;
  }
  return command.run(args, io);
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
  return pkg.version ?? "0.0.0";
}

async function dispatch(argv: readonly string[], io: Io): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case undefined:
      io.err(USAGE);
      return 2;
    case "-h":
    case "--help":
    case "help":
      io.out(USAGE);
      return 0;
    case "-v":
    case "--version":
      io.out(version());
      return 0;
    case "compile":
      return (await import("./compile-entry.js")).run(args, io);
    case "ls":
    case "config":
      return runLoaded(command, args, io);
    case "health":
      return (await import("./health.js")).run(args, io);
    case "route":
      return (await import("./route.js")).run(args, io);
    case "check":
      return (await import("./check.js")).run(args, io);
    case "fmt":
      return (await import("./fmt.js")).run(args, io);
    case "lsp":
      return (await import("../lsp/main.js")).run(args, io);
    case "call":
    case "push":
      return (await import("./call.js")).run(args, io, command);
    case "publish":
    case "subscribe":
      return (await import("./events.js")).run(args, io, command);
    case "gateway":
      return (await import("./gateway.js")).run(args, io);
    case "watch":
      return (await import("./state-watch.js")).run(args, io);
    case "bench":
      return (await import("./bench.js")).run(args, io);
    case "new":
    case "init":
      return (await import("./new.js")).run(args, io, command);
    case "dev":
      return (await import("./dev.js")).run(args, io);
    case "completion":
    case "__complete":
      return (await import("./completion.js")).run(args, io, command);
    default:
      io.err(`fanc: unknown command "${command}". Commands: ${COMMANDS.join(", ")}. Run "fanc --help" for usage.`);
      return 2;
  }
}

/** Runs `fanc` with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    io.err(`fanc: internal error: ${message}`);
    if (process.env.FANC_DEBUG && e instanceof Error && e.stack) io.err(e.stack);
    else io.err("(set FANC_DEBUG=1 to print the stack trace, and please report it)");
    return 70;
  }
}
