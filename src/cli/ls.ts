/**
 * `fanc ls [service]`: services and their instances (versions, endpoints, shards, zone, load,
 * age, and the callers whose circuit breaker of each is not closed) as a live registry holds
 * them. Reads only; one list per call, no watch.
 */
import { parseArgs } from "node:util";
import { EtcdRegistry } from "../runtime/discovery/etcd.js";
import { servicePrefix, servicesRoot } from "../runtime/discovery/keys.js";
import { parseInstance } from "../runtime/discovery/instance-set.js";
import type { KeyValue, Registry } from "../runtime/discovery/registry.js";
import type { InstanceInfo } from "../runtime/discovery/types.js";
import { pino } from "pino";
import semver from "semver";
import { assignShards, ownedBy } from "../runtime/call/shards.js";
import { publishedBreakers } from "../runtime/policy/breaker-board.js";
import { type Io, processIo } from "./io.js";
import { cliTls, etcdTls, TLS_USAGE, type TlsFlags } from "./tls.js";

const USAGE = `usage: fanc ls [service] [options]

Lists the services registered in a cluster, or the instances of one service, by its full
name (retail.wines.PublicWines) or a short name that only one service ends with (PublicWines).

options:
  --discovery <spec>   etcd://host:port[,host:port...] (default: $FAN_DISCOVERY or etcd://127.0.0.1:2379)
  --cluster <name>     cluster name (default: $FAN_CLUSTER or "dev")
  --json               print JSON instead of a table
${TLS_USAGE}
  -h, --help           show this help`;

/** Options both `ls` and `config` take. */
export const REGISTRY_OPTIONS = {
  discovery: { type: "string" },
  "tls-ca": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-insecure": { type: "boolean" },
  cluster: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** The discovery spec of `--discovery`, `$FAN_DISCOVERY` or the local etcd. */
export function cliDiscovery(spec: string | undefined): string {
  return spec ?? process.env.FAN_DISCOVERY ?? "etcd://127.0.0.1:2379";
}

/** Opens the registry named by `--discovery` (etcd only: a memory registry lives inside one process); warnings go to `io`. */
export function openCliRegistry(
  spec: string | undefined,
  tls: TlsFlags = {},
  io: Pick<Io, "err"> = processIo,
): Registry {
  const s = cliDiscovery(spec);
  if (s === "memory")
    throw new UsageError("--discovery memory lives inside one process; point fanc at etcd://host:port");
  if (!s.startsWith("etcd://"))
    throw new UsageError(`--discovery must be etcd://host:port[,host:port...], got ${JSON.stringify(s)}`);
  return new EtcdRegistry(s, { callTimeoutMs: 3000, dialTimeoutMs: 3000, ...etcdTls(s, cliTls(tls), io) });
}

/** The cluster from `--cluster`, `$FAN_CLUSTER` or "dev". */
export function cliCluster(c: string | undefined): string {
  return c ?? process.env.FAN_CLUSTER ?? "dev";
}

/** A mistake in how the command was called (exit code 2). */
export class UsageError extends Error {}

/** Why a registry could not be reached, in a few words; undefined when `msg` is not about that. */
function unreachable(msg: string): string | undefined {
  // gRPC's "Last error" of a refused TLS handshake (wrong CA, no client certificate): the reason, shortened.
  const tls =
    /self[- ]signed certificate[a-z ]*|unable to (?:verify|get)[a-z ]*|alert [a-z ]*certificate[a-z ]*|alert unknown ca|certificate has expired|hostname\/ip does not match[^.]*/i.exec(
      msg,
    );
  if (tls !== null) return `TLS handshake failed: ${tls[0].trim()}`;
  if (/ECONNREFUSED/.test(msg)) return "connection refused";
  if (/ENOTFOUND|EAI_AGAIN/.test(msg)) return "host not found";
  if (/EHOSTUNREACH|ENETUNREACH/.test(msg)) return "host unreachable";
  if (/deadline|timed? ?out/i.test(msg)) return "no answer in time";
  if (/UNAVAILABLE|No connection/i.test(msg)) return "unavailable";
  return undefined;
}

/**
 * Prints a failure the way every fanc subcommand does and returns its exit code. An
 * unreachable registry is one line naming `discovery`, never the gRPC client's text.
 */
export function report(io: Io, command: string, e: unknown, discovery?: string): number {
  if (
    e instanceof UsageError ||
    (e as { code?: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ||
    e instanceof TypeError
  ) {
    io.err(`fanc ${command}: ${(e as Error).message}`);
    return 2;
  }
  const msg = e instanceof Error ? e.message : String(e);
  const why = unreachable(msg);
  if (why === undefined) io.err(`fanc ${command}: ${msg}`);
  else io.err(`fanc ${command}: cannot reach the registry at ${discovery ?? "the registry"} (${why})`);
  return 1;
}

/** `fanc ls`: returns the exit code. */
export async function run(args: string[], io: Io = processIo): Promise<number> {
  let registry: Registry | undefined;
  let discovery: string | undefined;
  try {
    const { values, positionals } = parseArgs({ args, options: REGISTRY_OPTIONS, allowPositionals: true });
    discovery = cliDiscovery(values.discovery);
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    if (positionals.length > 1)
      throw new UsageError(`expected at most one service name, got ${positionals.length}\n${USAGE}`);
    const cluster = cliCluster(values.cluster);
    servicesRoot(cluster);
    registry = openCliRegistry(values.discovery, values, io);
    const service = positionals[0];
    if (service === undefined) return await listServices(io, registry, cluster, values.json === true);
    return await listInstances(io, registry, cluster, await fullName(registry, cluster, service), values.json === true);
  } catch (e) {
    return report(io, "ls", e, discovery);
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
  const breakers = await publishedBreakers(registry, cluster, service);
  if (json) {
    const owned = shardOwnership(list);
    const out = list.map((i) => ({
      ...i,
      ...(owned.has(i.instanceId) ? { ownedShards: owned.get(i.instanceId) } : {}),
      breakers: breakers.get(i.instanceId) ?? [],
    }));
    io.out(JSON.stringify(out, null, 2));
    return 0;
  }
  if (list.length === 0) {
    io.err(`no instances of ${service} in cluster "${cluster}"`);
    return 1;
  }
  const now = Date.now();
  const owned = shardOwnership(list);
  const rows = list.map((i) => [
    i.instanceId,
    i.version,
    Object.entries(i.endpoints)
      .map(([t, e]) => `${t}=${e}`)
      .join(" "),
    shardsColumn(i, owned.get(i.instanceId)),
    i.zone ?? "-",
    String(i.load),
    age(now - i.startedAt),
    breakersColumn(breakers.get(i.instanceId)),
  ]);
  io.out(table(["INSTANCE", "VERSION", "ENDPOINTS", "SHARDS", "ZONE", "LOAD", "AGE", "BREAKERS"], rows));
  return 0;
}

/**
 * The full name of `service`: itself when it has instances, else the one registered service
 * whose short name it is (`Wines` for `retail.Wines`). Throws when several services share it.
 */
/** `service` as registered: itself, or the one registered name that ends with `.<service>` (ambiguity is a usage error). */
export async function fullName(registry: Registry, cluster: string, service: string): Promise<string> {
  if ((await registry.list(servicePrefix(cluster, service))).items.length > 0) return service;
  const root = servicesRoot(cluster);
  const names = new Set((await registry.list(root)).items.map((kv) => kv.key.slice(root.length).split("/")[0] ?? ""));
  const matches = [...names].filter((n) => n.endsWith(`.${service}`)).sort();
  if (matches.length > 1)
    throw new UsageError(
      `"${service}" is ambiguous in cluster "${cluster}": ${matches.join(", ")}; give the full name`,
    );
  return matches[0] ?? service;
}

/**
 * The shards each instance owns, computed as every client and server does (`assignShards` per
 * major version) for services whose instances advertise `shardCount`.
 */
export function shardOwnership(list: readonly InstanceInfo[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const byMajor = new Map<string, InstanceInfo[]>();
  for (const i of list) {
    if (i.shardCount === undefined) continue;
    // A stopping instance owns nothing (the runtime assigns its shards among the others): it only releases.
    if (i.stopping === true) {
      out.set(i.instanceId, []);
      continue;
    }
    const key = `${semver.major(i.version)}/${i.shardCount}`;
    byMajor.set(key, [...(byMajor.get(key) ?? []), i]);
  }
  for (const [key, group] of byMajor) {
    const owners = assignShards(group, Number(key.split("/")[1]));
    for (const i of group) out.set(i.instanceId, ownedBy(owners, i.instanceId));
  }
  return out;
}

function shardsColumn(i: InstanceInfo, owned: readonly number[] | undefined): string {
  if (i.stopping === true)
    return i.serving === undefined || i.serving.length === 0
      ? "stopping"
      : `stopping, releasing ${compactRanges(i.serving)}${i.shardCount === undefined ? "" : `/${i.shardCount}`}`;
  if (owned === undefined) return i.shards.length === 0 ? "all" : compactRanges(i.shards);
  const list = owned.length === 0 ? "none" : compactRanges(owned);
  return `${list}/${i.shardCount}${i.shards.length > 0 ? " pinned" : ""}`;
}

/** Callers whose breaker of an instance is not closed: `open by app1, half-open by app2`, or `-`. */
function breakersColumn(list: readonly { appId: string; state: string }[] | undefined): string {
  if (list === undefined || list.length === 0) return "-";
  return list.map((b) => `${b.state} by ${b.appId}`).join(", ");
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
