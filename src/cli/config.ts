/**
 * `fanc config get|set|watch|push`: a service's raw config on etcd (`/fan/{cluster}/config/
 * {service}/{key}`) or in a YAML file (`--file settings.yml`). Checks YAML/JSON syntax only;
 * the typed check against the IDL's config schema happens in the App, which rejects a bad
 * update and keeps its old value.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { parse, stringify } from "yaml";
import { RegistryConfigSource } from "../runtime/discovery/config.js";
import { checkSegment } from "../runtime/discovery/keys.js";
import type { Registry } from "../runtime/discovery/registry.js";
import type { ConfigSource } from "../runtime/discovery/types.js";
import { YamlConfigSource, parseConfigText } from "../runtime/discovery/yaml-config.js";
import { type Io, processIo } from "./io.js";
import { REGISTRY_OPTIONS, UsageError, cliCluster, cliDiscovery, openCliRegistry, report } from "./ls.js";

const USAGE = `usage: fanc config <get|set|watch|push> ... [options]

  get <service> [key]               print a service's config (YAML; --json for JSON)
  set <service> key=value...        set top-level keys; values are YAML/JSON (50, true, [a, b],
                                    {x: 1}, "text"), anything else is a string; key=null deletes
  watch <service> [--max <n>]       print the config now and after every change (--max: stop after n changes)
  push <settings.yml>               make each service's config exactly what the file says
                                    (top level: service name -> config object)

options:
  --discovery <spec>   etcd://host:port[,host:port...] (default: $FAN_DISCOVERY or etcd://127.0.0.1:2379)
  --cluster <name>     cluster name (default: $FAN_CLUSTER or "dev")
  --file <path>        use a YAML config file instead of etcd (get, set, watch)
  --json               print JSON instead of YAML
  -h, --help           show this help`;

const OPTIONS = { ...REGISTRY_OPTIONS, file: { type: "string" }, max: { type: "string" } } as const;

interface Ctx {
  readonly io: Io;
  readonly json: boolean;
  readonly source: ConfigSource;
  readonly max: number;
}

/** `fanc config`: returns the exit code. */
export async function run(args: string[], io: Io = processIo): Promise<number> {
  let registry: Registry | undefined;
  let source: ConfigSource | undefined;
  let discovery: string | undefined;
  try {
    const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true });
    discovery = values.file === undefined ? cliDiscovery(values.discovery) : undefined;
    const [verb, ...rest] = positionals;
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    if (verb === undefined) {
      io.err(USAGE);
      return 2;
    }
    const max = values.max === undefined ? Infinity : Number(values.max);
    if (!(max > 0)) throw new UsageError(`--max must be a positive number, got ${values.max}`);
    if (values.file !== undefined) source = new YamlConfigSource(values.file);
    else {
      registry = openCliRegistry(values.discovery);
      source = new RegistryConfigSource(registry, cliCluster(values.cluster));
    }
    const ctx: Ctx = { io, json: values.json === true, source, max };
    switch (verb) {
      case "get":
        return await get(ctx, rest);
      case "set":
        return await set(ctx, rest);
      case "watch":
        return await watch(ctx, rest);
      case "push":
        if (values.file !== undefined) throw new UsageError("push writes to etcd; --file is not used with it");
        return await push(ctx, rest);
      default:
        throw new UsageError(`unknown subcommand "${verb}"; expected get, set, watch or push\n${USAGE}`);
    }
  } catch (e) {
    return report(io, "config", e, discovery);
  } finally {
    await source?.close();
    await registry?.close();
  }
}

function print(ctx: Ctx, value: unknown): void {
  ctx.io.out(ctx.json ? JSON.stringify(value, null, 2) : stringify(value).trimEnd());
}

function service(args: readonly string[], usage: string): string {
  const s = args[0];
  if (s === undefined) throw new UsageError(`missing service name: ${usage}`);
  return checkSegment("service", s);
}

async function get(ctx: Ctx, args: readonly string[]): Promise<number> {
  const svc = service(args, "fanc config get <service> [key]");
  const raw = await ctx.source.get(svc);
  const key = args[1];
  if (key === undefined) {
    print(ctx, raw);
    return 0;
  }
  if (!(key in raw)) {
    ctx.io.err(`fanc config: ${svc} has no key "${key}"`);
    return 1;
  }
  print(ctx, raw[key]);
  return 0;
}

/** `key=value` → [key, parsed value]; the value is YAML (a superset of JSON), else a string. */
export function parseAssignment(a: string): [string, unknown] {
  const eq = a.indexOf("=");
  if (eq <= 0) throw new UsageError(`expected key=value, got ${JSON.stringify(a)}`);
  const key = checkSegment("config key", a.slice(0, eq));
  const text = a.slice(eq + 1);
  try {
    const v: unknown = parse(text);
    return [key, v === undefined ? "" : v];
  } catch {
    return [key, text];
  }
}

async function set(ctx: Ctx, args: readonly string[]): Promise<number> {
  const svc = service(args, "fanc config set <service> key=value...");
  if (args.length < 2) throw new UsageError("nothing to set: give at least one key=value");
  const patch = Object.fromEntries(args.slice(1).map(parseAssignment));
  await ctx.source.update(svc, patch);
  print(ctx, await ctx.source.get(svc));
  return 0;
}

async function watch(ctx: Ctx, args: readonly string[]): Promise<number> {
  const svc = service(args, "fanc config watch <service>");
  let changes = 0;
  let stop: (() => Promise<void>) | undefined;
  let onSignal = (): void => undefined;
  const done = new Promise<void>((resolve) => {
    onSignal = () => resolve();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    void ctx.source
      .watch(svc, (raw) => {
        ctx.io.out("---");
        print(ctx, raw);
        if (++changes >= ctx.max) resolve();
      })
      .then((s) => {
        stop = s;
        return ctx.source.get(svc);
      })
      .then((raw) => print(ctx, raw), resolve);
  });
  await done;
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  await stop?.();
  return 0;
}

async function push(ctx: Ctx, args: readonly string[]): Promise<number> {
  const file = args[0];
  if (file === undefined) throw new UsageError("missing file: fanc config push <settings.yml>");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  const objs = parseConfigText(text, file);
  const source = ctx.source as RegistryConfigSource;
  for (const [svc, raw] of Object.entries(objs)) {
    checkSegment("service", svc);
    await source.replace(svc, raw);
    ctx.io.out(`pushed ${Object.keys(raw).length} key(s) to ${svc}`);
  }
  return 0;
}
