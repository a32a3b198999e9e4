/**
 * Shell completion: `fanc completion bash|zsh` prints a script for the shell's rc file; the
 * script asks `fanc __complete <index> <words...>` for the candidates of the word being typed:
 * commands, options, transports after `--via`, and `<service>.<member>` names read from the
 * IDL (`--idl` on the line, else `idl/`): rpcs for call and bench, pushes for push, events for
 * publish and subscribe, states for watch, service names for ls and health.
 */
import { type Io, processIo } from "./io.js";

const SCRIPT_BASH = `# fanc completion for bash: add to ~/.bashrc
#   source <(fanc completion bash)
_fanc_complete() {
  local IFS=$'\\n'
  COMPREPLY=( $(fanc __complete "$COMP_CWORD" "\${COMP_WORDS[@]:1}" 2>/dev/null) )
}
complete -o default -o nosort -F _fanc_complete fanc 2>/dev/null || complete -o default -F _fanc_complete fanc
`;

const SCRIPT_ZSH = `# fanc completion for zsh: add to ~/.zshrc
#   source <(fanc completion zsh)
autoload -U +X bashcompinit && bashcompinit
${SCRIPT_BASH}`;

/** The `--tls-*` flags of every command that connects (tls.ts). */
const TLS_OPTS = ["--tls-ca", "--tls-cert", "--tls-key", "--tls-insecure"];
const CALL_OPTS = [
  "--idl",
  "--via",
  "--version",
  "--instance",
  "--timeout",
  "--discovery",
  "--cluster",
  "--json",
  "--help",
  ...TLS_OPTS,
];
const OPTIONS: Record<string, readonly string[]> = {
  call: CALL_OPTS,
  push: CALL_OPTS,
  bench: [...CALL_OPTS, "--concurrency", "--duration", "--rate"],
  publish: ["--idl", "--via", "--discovery", "--cluster", "--json", "--help", ...TLS_OPTS],
  subscribe: ["--idl", "--via", "--discovery", "--cluster", "--json", "--help", ...TLS_OPTS],
  watch: ["--idl", "--via", "--discovery", "--cluster", "--json", "--help", ...TLS_OPTS],
  ls: ["--discovery", "--cluster", "--json", "--help", ...TLS_OPTS],
  health: ["--idl", "--transport", "--watch", "--discovery", "--cluster", "--json", "--help", ...TLS_OPTS],
  compile: ["--out", "--watch", "--strict", "--help"],
  dev: ["--run", "--typecheck", "--out", "--watch", "--grace", "--debounce", "--help"],
  new: ["--package", "--transport", "--dir", "--fan", "--help"],
  init: ["--package", "--transport", "--dir", "--fan", "--help"],
};

/** Options that take no value. */
const FLAGS: ReadonlySet<string> = new Set([
  "--json",
  "--help",
  "--strict",
  "--watch",
  "--tls-insecure",
  "--typecheck",
]);

/** Which members a command's first argument names. */
const MEMBERS: Record<string, "rpc" | "push" | "rpc|push" | "event" | "state" | "service"> = {
  call: "rpc",
  push: "push",
  bench: "rpc|push",
  publish: "event",
  subscribe: "event",
  watch: "state",
  ls: "service",
  health: "service",
};

/** `<service>.<member>` names of the IDL under `dir` (short service names where unambiguous). */
async function names(dir: string, kind: (typeof MEMBERS)[string]): Promise<string[]> {
  const { loadIdl } = await import("./call.js");
  const schemas = await loadIdl(dir);
  const services = schemas.services().map((s) => schemas.descriptor(s));
  const short = (full: string): string => {
    const tail = full.slice(full.lastIndexOf(".") + 1);
    return services.filter((s) => s.name.endsWith(`.${tail}`) || s.name === tail).length === 1 ? tail : full;
  };
  const out: string[] = [];
  for (const s of services) {
    const n = short(s.name);
    if (kind === "service") out.push(n);
    else if (kind === "event") out.push(...Object.keys(s.events).map((e) => `${n}.${e}`));
    else if (kind === "state") out.push(...Object.keys(s.states).map((e) => `${n}.${e}`));
    else
      out.push(
        ...Object.values(s.methods)
          .filter((m) => kind.split("|").includes(m.kind))
          .map((m) => `${n}.${m.name}`),
      );
  }
  return out.sort();
}

/** The candidates for word `index` of `words` (the words after `fanc`). */
export async function candidates(index: number, words: readonly string[]): Promise<string[]> {
  const cur = words[index] ?? "";
  const prefixed = (list: readonly string[]): string[] => list.filter((w) => w.startsWith(cur));
  if (index === 0) {
    const { COMMANDS } = await import("./main.js");
    return prefixed(COMMANDS);
  }
  const command = words[0] ?? "";
  const prev = words[index - 1] ?? "";
  if (prev === "--via" || prev === "--transport") return prefixed(["http", "zmq", "tcp", "redis", "amqp", "nats"]);
  if (command === "completion") return index === 1 ? prefixed(["bash", "zsh"]) : [];
  if (command === "new" && index === 1) return prefixed(["service"]);
  if (cur.startsWith("-")) return prefixed(OPTIONS[command] ?? ["--help"]);
  const kind = MEMBERS[command];
  // The first positional: no earlier word after the command is a positional.
  const takesValue = (w = ""): boolean => w.startsWith("--") && !FLAGS.has(w);
  const positionalBefore = words.slice(1, index).some((w, i) => !w.startsWith("-") && !takesValue(words[i]));
  if (kind === undefined || positionalBefore) return [];
  const at = words.indexOf("--idl");
  const dir = at >= 0 && words[at + 1] !== undefined ? (words[at + 1] as string) : "idl";
  try {
    return prefixed(await names(dir, kind));
  } catch {
    return []; // no IDL here, or it has errors: nothing to offer
  }
}

/** `fanc completion bash|zsh` and `fanc __complete <index> <words...>`: returns the exit code. */
export async function run(
  args: string[],
  io: Io = processIo,
  kind: "completion" | "__complete" = "completion",
): Promise<number> {
  if (kind === "__complete") {
    const [index, ...words] = args;
    for (const c of await candidates(Number(index) - 1, words)) io.out(c);
    return 0;
  }
  const shell = args[0];
  if (shell === "bash") io.out(SCRIPT_BASH);
  else if (shell === "zsh") io.out(SCRIPT_ZSH);
  else {
    io.err(`usage: fanc completion bash|zsh   (then: source <(fanc completion bash) in your shell's rc file)`);
    return shell === "-h" || shell === "--help" ? 0 : 2;
  }
  return 0;
}
