/**
 * `fanc ls [service]`: services and their instances (versions, endpoints, shards, zone, load,
 * age) as a live registry holds them. Reads only; one list per call, no watch.
 */
import { parseArgs } from "node:util";
import { EtcdRegistry } from "../runtime/discovery/etcd.js";
import { servicePrefix, servicesRoot } from "../runtime/discovery/keys.js";
import { parseInstance } from "../runtime/discovery/instance-set.js";
import type { KeyValue, Registry } from "../runtime/discovery/registry.js";
import type { InstanceInfo } from "../runtime/discovery/types.js";
import { pino } from "pino";
import { type Io, processIo } from "./io.js";

const USAGE = `usage: fanc ls [service] [options]

Lists the services registered in a cluster, or the instances of one service.

options:
  --discovery <spec>   etcd://host:port[,host:port...] (default: $FAN_DISCOVERY or etcd://127.0.0.1:2379)
  --cluster <name>     cluster name (default: $FAN_CLUSTER or "dev")
  --json               print JSON instead of a table
  -h, --help           show this help`;

/** Options both `ls` and `config` take. */
export const REGISTRY_OPTIONS = {
  discovery: { type: "string" },
  cluster: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** Opens the registry named by `--discovery` (etcd only: a memory registry lives inside one process). */
export function openCliRegistry(spec: string | undefined): Registry {
  const s = spec ?? process.env.FAN_DISCOVERY ?? "etcd://127.0.0.1:2379";
  if (s === "memory")
    throw new UsageError("--discovery memory lives inside one process; point fanc at etcd://host:port");
  if (!s.startsWith("etcd://"))
    throw new UsageError(`--discovery must be etcd://host:port[,host:port...], got ${JSON.stringify(s)}`);
  return new EtcdRegistry(s, { callTimeoutMs: 3000, dialTimeoutMs: 3000 });
}

/** The cluster from `--cluster`, `$FAN_CLUSTER` or "dev". */
export function cliCluster(c: string | undefined): string {
  return c ?? process.env.FAN_CLUSTER ?? "dev";
}

/** A mistake in how the command was called (exit code 2). */
export class UsageError extends Error {}

/** Prints a failure the way every fanc subcommand does and returns its exit code. */
export function report(io: Io, command: string, e: unknown): number {
  if (
    e instanceof UsageError ||
    (e as { code?: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ||
    e instanceof TypeError
  ) {
    io.err(`fanc ${command}: ${(e as Error).message}`);
    return 2;
  }
  const msg = e instanceof Error ? e.message : String(e);
  io.err(
    `fanc ${command}: ${/UNAVAILABLE|ECONNREFUSED|deadline|No connection/i.test(msg) ? `cannot reach the registry (${msg})` : msg}`,
  );
  return 1;
}

/** `fanc ls`: returns the exit code. */
export async function run(args: string[], io: Io = processIo): Promise<number> {
  let registry: Registry | undefined;
  try {
    const { values, positionals } = parseArgs({ args, options: REGISTRY_OPTIONS, allowPositionals: true });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    if (positionals.length > 1)
      throw new UsageError(`expected at most one service name, got ${positionals.length}\n${USAGE}`);
    const cluster = cliCluster(values.cluster);
    servicesRoot(cluster);
    registry = openCliRegistry(values.discovery);
    const service = positionals[0];
    if (service === undefined) return await listServices(io, registry, cluster, values.json === true);
    return await listInstances(io, registry, cluster, service, values.json === true);
  } catch (e) {
    return report(io, "ls", e);
  } finally {
    await registry?.close();
  }
}

const quiet = pino({ level: "silent" });

function instancesOf(items: readonly KeyValue[], root: string): Map<string, InstanceInfo[]> {
  const by = new Map<string, InstanceInfo[]>();
  for (const kv of items) {
    const rest = kv.key.slice(root.length);
    const slash = rest.indexOf("/");
    if (slash <= 0) continue;
    const service = rest.slice(0, slash);
    const info = parseInstance(service, kv, quiet);
    if (info === undefined) continue;
    by.set(service, [...(by.get(service) ?? []), info]);
  }
  return by;
}

async function listServices(io: Io, registry: Registry, cluster: string, json: boolean): Promise<number> {
  const root = servicesRoot(cluster);
  const by = instancesOf((await registry.list(root)).items, root);
  const rows = [...by.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([service, list]) => ({
      service,
      instances: list.length,
      versions: [...new Set(list.map((i) => i.version))].sort(),
      transports: [...new Set(list.flatMap((i) => Object.keys(i.endpoints)))].sort(),
    }));
  if (json) io.out(JSON.stringify(rows, null, 2));
  else if (rows.length === 0) io.out(`no services registered in cluster "${cluster}"`);
  else
    io.out(
      table(
        ["SERVICE", "INSTANCES", "VERSIONS", "TRANSPORTS"],
        rows.map((r) => [r.service, String(r.instances), r.versions.join(","), r.transports.join(",")]),
      ),
    );
  return 0;
}

async function listInstances(
  io: Io,
  registry: Registry,
  cluster: string,
  service: string,
  json: boolean,
): Promise<number> {
  const prefix = servicePrefix(cluster, service);
  const list = instancesOf((await registry.list(prefix)).items, servicesRoot(cluster)).get(service) ?? [];
  if (json) {
    io.out(JSON.stringify(list, null, 2));
    return 0;
  }
  if (list.length === 0) {
    io.err(`no instances of ${service} in cluster "${cluster}"`);
    return 1;
  }
  const now = Date.now();
  const rows = list.map((i) => [
    i.instanceId,
    i.version,
    Object.entries(i.endpoints)
      .map(([t, e]) => `${t}=${e}`)
      .join(" "),
    i.shards.length === 0 ? "all" : compactRanges(i.shards),
    i.zone ?? "-",
    String(i.load),
    age(now - i.startedAt),
  ]);
  io.out(table(["INSTANCE", "VERSION", "ENDPOINTS", "SHARDS", "ZONE", "LOAD", "AGE"], rows));
  return 0;
}

/** `[0,1,2,5]` → `0-2,5` */
export function compactRanges(ns: readonly number[]): string {
  const s = [...new Set(ns)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < s.length; ) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j]! + 1) j++;
    parts.push(i === j ? `${s[i]}` : `${s[i]}-${s[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}

export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (r: readonly string[]): string =>
    r
      .map((v, c) => v.padEnd(widths[c]!))
      .join("  ")
      .trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}
