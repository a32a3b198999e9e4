/**
 * `fanc config get|set|watch|push`: a service's raw config on etcd (`/fan/{cluster}/config/
 * {service}/{key}`) or in a YAML file (`--file settings.yml`). Services are looked up in the
 * IDL (`--idl`, default `idl/`): `set` and `push` check values against the service's
 * `config {}` before writing anything, `get` and `watch` mask `@secret` fields.
 */
import { access, readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { isScalar, parse, parseDocument, stringify } from "yaml";
import { badValues, missingKeys, unknownKeys } from "../runtime/app/config.js";
import { RegistryConfigSource } from "../runtime/discovery/config.js";
import { checkSegment } from "../runtime/discovery/keys.js";
import type { Registry } from "../runtime/discovery/registry.js";
import type { ConfigSource } from "../runtime/discovery/types.js";
import { YamlConfigSource, parseConfigText } from "../runtime/discovery/yaml-config.js";
import {
  ConfigValueError,
  checkPatch,
  checkWhole,
  decimalsAsWritten,
  IdlConfig,
  IdlError,
  masked,
} from "./idl-config.js";
import { type Io, processIo } from "./io.js";
import { REGISTRY_OPTIONS, UsageError, cliCluster, cliDiscovery, openCliRegistry, report } from "./ls.js";
import { TLS_USAGE } from "./tls.js";

const USAGE = `usage: fanc config <get|set|watch|push> ... [options]

  get <service> [key]               print a service's config (YAML; --json for JSON); @secret
                                    values show as [secret] unless --show-secrets
  set <service> key=value...        set top-level keys; values are YAML/JSON (50, true, [a, b],
                                    {x: 1}, "text"), anything else is a string; key=null deletes;
                                    a decimal field takes a number as written (price=12.50);
                                    checked against the service's IDL config {} before writing
  watch <service> [--max <n>]       print the config now and after every change (--max: stop after n changes)
  push <settings.yml>               make each service's config exactly what the file says
                                    (top level: service name -> config object)

A service is named in full (retail.wines.PublicWines) or by a short name only one service of
the IDL ends with (PublicWines).

options:
  --idl <dir>          the IDL folder the services and their config {} come from (default: idl)
  --show-secrets       print @secret values as they are
  --discovery <spec>   etcd://host:port[,host:port...] (default: $FAN_DISCOVERY or etcd://127.0.0.1:2379)
  --cluster <name>     cluster name (default: $FAN_CLUSTER or "dev")
  --file <path>        use a YAML config file instead of etcd (get, set, watch)
  --json               print JSON instead of YAML
${TLS_USAGE}
  -h, --help           show this help`;

const OPTIONS = {
  ...REGISTRY_OPTIONS,
  file: { type: "string" },
  max: { type: "string" },
  idl: { type: "string" },
  "show-secrets": { type: "boolean" },
} as const;

interface Ctx {
  readonly io: Io;
  readonly json: boolean;
  readonly source: ConfigSource;
  readonly max: number;
  readonly idl: IdlConfig;
  readonly showSecrets: boolean;
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
    if (!["get", "set", "watch", "push"].includes(verb))
      throw new UsageError(`unknown subcommand "${verb}"; expected get, set, watch or push\n${USAGE}`);
    const idl = await IdlConfig.load(resolve(values.idl ?? "idl"));
    if (values.file !== undefined) {
      if (verb !== "set") await mustExist(values.file);
      source = new YamlConfigSource(values.file);
    } else {
      registry = openCliRegistry(values.discovery, values, io);
      source = new RegistryConfigSource(registry, cliCluster(values.cluster));
    }
    const ctx: Ctx = { io, json: values.json === true, source, max, idl, showSecrets: values["show-secrets"] === true };
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
    if (e instanceof IdlError || e instanceof ConfigValueError) {
      io.err(`fanc config: ${e.message}`);
      return 1;
    }
    return report(io, "config", e, discovery);
  } finally {
    await source?.close();
    await registry?.close();
  }
}

/** A config file that `get` or `watch` reads must exist (a typo'd path is not an empty config). */
async function mustExist(file: string): Promise<void> {
  try {
    await access(file);
  } catch {
    throw new IdlError(`no config file at ${file}`);
  }
}

function print(ctx: Ctx, value: unknown): void {
  ctx.io.out(ctx.json ? JSON.stringify(value, null, 2) : stringify(value).trimEnd());
}

/** A service's config as printed: `@secret` values masked unless --show-secrets. */
function shown(ctx: Ctx, svc: string, raw: Record<string, unknown>): Record<string, unknown> {
  return ctx.showSecrets ? raw : masked(ctx.idl.configSchema(ctx.idl.service(svc)), raw);
}

/** The full name of the service named by the first argument (the IDL must have it). */
function service(ctx: Ctx, args: readonly string[], usage: string): string {
  const s = args[0];
  if (s === undefined) throw new UsageError(`missing service name: ${usage}`);
  return ctx.idl.service(checkSegment("service", s)).fullName;
}

async function get(ctx: Ctx, args: readonly string[]): Promise<number> {
  const svc = service(ctx, args, "fanc config get <service> [key]");
  // A file keyed `Catalog:` holds nothing for shop.catalog.Catalog: say so, not `{}`. In the
  // registry a service without keys is common (on its defaults, nothing set yet): only config
  // under a name likely meant for it is an error there.
  const absent =
    ctx.source instanceof YamlConfigSource ? await ctx.source.absence(svc) : await ctx.source.misplaced?.(svc);
  if (absent !== undefined) {
    ctx.io.err(`fanc config: ${absent}`);
    return 1;
  }
  const stored = await ctx.source.get(svc);
  const raw = shown(ctx, svc, stored);
  const key = args[1];
  if (key === undefined) {
    print(ctx, raw);
    remark(ctx, svc, stored);
    return 0;
  }
  if (!(key in raw)) {
    ctx.io.err(`fanc config: ${svc} has no key "${key}"`);
    return 1;
  }
  print(ctx, raw[key]);
  remark(ctx, svc, stored, key);
  return 0;
}

/**
 * What `get` printed that the IDL's `config {}` does not take, on stderr (stdout stays the
 * config): each value that does not decode, saying what the IDL expects (a `@secret` one by its
 * path only), and for the whole config each required key it lacks: a running App keeps its last
 * good config when such a change arrives, and a new one does not start (docs/discovery.md). Keys
 * the block does not declare, which the App ignores, on a line of their own. The exit code
 * stays 0: the config was read.
 */
function remark(ctx: Ctx, svc: string, stored: Record<string, unknown>, key?: string): void {
  const schema = ctx.idl.configSchema(ctx.idl.service(svc));
  const mine = (path: string): boolean => key === undefined || path === key || path.startsWith(`${key}.`);
  const refused = [
    ...badValues(schema, stored)
      .filter((p) => mine(p.key))
      .map((p) => p.problem),
    ...(key === undefined ? missingKeys(schema, stored).map((k) => `${k}: required, not set`) : []),
  ];
  if (refused.length > 0)
    ctx.io.err(
      `fanc config: warning: the IDL's config block of ${svc} refuses this (a running instance keeps its last good config, a new one does not start): ${refused.join("; ")}`,
    );
  const undeclared = unknownKeys(schema, stored).filter(mine);
  if (undeclared.length > 0)
    ctx.io.err(
      `fanc config: warning: not declared in the IDL's config block of ${svc} (the App ignores it): ${undeclared.join(", ")}`,
    );
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
  const svc = service(ctx, args, "fanc config set <service> key=value...");
  if (args.length < 2) throw new UsageError("nothing to set: give at least one key=value");
  const schema = ctx.idl.configSchema(ctx.idl.service(svc));
  const assignments = args.slice(1);
  // A decimal written as a number (`unitPrice=12.25`) is taken as written, not as YAML's float.
  const written = (key: string): string | undefined =>
    assignments.findLast((a) => a.startsWith(`${key}=`))?.slice(key.length + 1);
  const patch = decimalsAsWritten(schema, Object.fromEntries(assignments.map(parseAssignment)), written);
  checkPatch(svc, schema, patch);
  await ctx.source.update(svc, patch);
  print(ctx, shown(ctx, svc, await ctx.source.get(svc)));
  return 0;
}

async function watch(ctx: Ctx, args: readonly string[]): Promise<number> {
  const svc = service(ctx, args, "fanc config watch <service>");
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
        print(ctx, shown(ctx, svc, raw));
        if (++changes >= ctx.max) resolve();
      })
      .then((s) => {
        stop = s;
        return ctx.source.get(svc);
      })
      .then((raw) => print(ctx, shown(ctx, svc, raw)), resolve);
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
  const doc = parseDocument(text);
  const source = ctx.source as RegistryConfigSource;
  // Check every service first: a file with one bad entry writes nothing.
  const checked = Object.entries(objs).map(([name, parsed]) => {
    const svc = ctx.idl.service(checkSegment("service", name));
    const schema = ctx.idl.configSchema(svc);
    // `unitPrice: 3.10` is a float to YAML (3.1): a decimal field takes the text as written.
    const raw = decimalsAsWritten(schema, parsed, (key) => {
      const node = doc.getIn([name, key], true);
      return isScalar(node) ? node.source : undefined;
    });
    checkWhole(svc.fullName, schema, raw);
    return [svc.fullName, raw] as const;
  });
  for (const [svc, raw] of checked) {
    await source.replace(svc, raw);
    ctx.io.out(`pushed ${Object.keys(raw).length} key(s) to ${svc}`);
  }
  return 0;
}
