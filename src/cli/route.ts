/**
 * `fanc route`: the live traffic rules of services, the rollback button. A rule is one key,
 * `/fan/{cluster}/routes/{service}`, that every App watches and applies to its next call:
 * pin the service to a version or range, split its traffic by weight between versions, clear.
 *
 * Apps look the rule up by the service's full name, so a name given here is resolved first,
 * as `fanc call` resolves one: the full name or a unique short name (`Payments` for
 * `pay.payments.Payments`) among the services of the IDL (`--idl`, default `idl/` when there
 * is one) and those registered in the cluster (`clear` and `show`: also those with a rule). An
 * unknown or ambiguous name is refused (exit 2): a rule under a name no App looks up is silently
 * ignored by all of them.
 */
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import semver from "semver";
import { checkSegment, servicePrefix, servicesRoot } from "../runtime/discovery/keys.js";
import type { Registry } from "../runtime/discovery/registry.js";
import { parseRule, routesRoot, type TrafficRule } from "../runtime/call/versions.js";
import { loadIdl } from "./call.js";
import { type Io, processIo } from "./io.js";
import { REGISTRY_OPTIONS, UsageError, cliCluster, openCliRegistry, report } from "./ls.js";
import { TLS_USAGE } from "./tls.js";

const USAGE = `usage: fanc route <command> [options]

Live traffic rules: every App follows them within a second, without restarts.

<service> is the full name (pay.payments.Payments) or a short one only one service ends with
(Payments), among the services of the IDL and those registered in the cluster.

commands:
  pin <service> <version|range>         send every call to instances satisfying it (blue/green, rollback)
  split <service> <version>=<weight>... share calls between versions by weight (canary)
  clear <service>                       back to the clients' own version ranges
  show [service]                        the rules in force

options:
  --idl <dir>          the IDL folder the service names are read from (default: idl/ when there is one)
  --discovery <spec>   etcd://host:port[,host:port...] (default: $FAN_DISCOVERY or etcd://127.0.0.1:2379)
  --cluster <name>     cluster name (default: $FAN_CLUSTER or "dev")
  --json               show: print JSON
${TLS_USAGE}
  -h, --help           show this help`;

/** `fanc route`: returns the exit code. */
export async function run(args: string[], io: Io = processIo): Promise<number> {
  let registry: Registry | undefined;
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...REGISTRY_OPTIONS, idl: { type: "string" } },
      allowPositionals: true,
    });
    const [command, service, ...rest] = positionals;
    if (values.help || command === undefined) {
      (values.help ? io.out : io.err)(USAGE);
      return values.help ? 0 : 2;
    }
    const cluster = cliCluster(values.cluster);
    const root = routesRoot(cluster);
    // The registry is opened only once the arguments are checked.
    const open = (): Registry => {
      registry ??= openCliRegistry(values.discovery, values, io);
      return registry;
    };
    /** The full name `s` designates (`ruled`: services with a rule count too) and its rule's key. */
    const resolve = async (s: string | undefined, ruled: boolean): Promise<{ name: string; key: string }> => {
      if (s === undefined) throw new UsageError(`${command}: expected a service name\n${USAGE}`);
      checkSegment("service", s);
      // A full name registered (or ruled) needs no IDL: a rollback pin works from any folder,
      // whatever state its idl/ is in.
      if ((await knownServices(open(), cluster, { names: [] }, ruled)).has(s)) return { name: s, key: root + s };
      const idl = await idlServices(values.idl, io);
      const name = pickService(s, await knownServices(open(), cluster, idl, ruled), idl.dir, cluster);
      return { name, key: root + name };
    };
    switch (command) {
      case "pin": {
        if (rest.length !== 1) throw new UsageError(`pin: expected one version or range, got ${rest.length}`);
        const rule = checked({ pin: rest[0] });
        const { name, key } = await resolve(service, false);
        await open().put(key, JSON.stringify(rule));
        io.out(`${name}: pinned to ${rest[0]}`);
        await warnUnregistered(open(), cluster, name, rule, io);
        return 0;
      }
      case "split": {
        if (service === undefined) throw new UsageError(`split: expected a service name\n${USAGE}`);
        if (rest.length === 0) throw new UsageError("split: expected <version>=<weight> pairs, e.g. 2.1.0=10 2.0.3=90");
        const split: Record<string, number> = {};
        for (const pair of rest) {
          const m = /^([^=]+)=(\d+(?:\.\d+)?)$/.exec(pair);
          if (m === null) throw new UsageError(`split: ${JSON.stringify(pair)} is not <version>=<weight>`);
          split[m[1] as string] = Number(m[2]);
        }
        const rule = checked({ split });
        const { name, key } = await resolve(service, false);
        await open().put(key, JSON.stringify(rule));
        io.out(`${name}: ${describe(rule)}`);
        await warnUnregistered(open(), cluster, name, rule, io);
        return 0;
      }
      case "clear": {
        const { name, key } = await resolve(service, true);
        await open().delete(key);
        io.out(`${name}: rule cleared; clients use their own version ranges`);
        return 0;
      }
      case "show": {
        const prefix = service === undefined ? root : (await resolve(service, true)).key;
        const { items } = await open().list(prefix);
        const rows = items
          .filter((kv) => service === undefined || kv.key === prefix)
          .map((kv) => ({ service: kv.key.slice(root.length), rule: JSON.parse(kv.value) as TrafficRule }));
        if (values.json === true) io.out(JSON.stringify(rows, null, 2));
        else if (rows.length === 0) io.out(`no traffic rules in cluster "${cluster}"`);
        else for (const r of rows) io.out(`${r.service}: ${describe(r.rule)}`);
        return 0;
      }
      default:
        throw new UsageError(`unknown route command ${JSON.stringify(command)}\n${USAGE}`);
    }
  } catch (e) {
    return report(io, "route", e);
  } finally {
    await registry?.close();
  }
}

/**
 * The services of the IDL folder (`--idl`, else `idl/` when it exists; none when it does not).
 * A default `idl/` that does not compile is skipped with a warning; an `--idl` given must compile.
 */
async function idlServices(
  dir: string | undefined,
  io: Pick<Io, "err">,
): Promise<{ dir: string | undefined; names: string[] }> {
  if (dir === undefined && !existsSync("idl")) return { dir: undefined, names: [] };
  try {
    const schemas = await loadIdl(dir ?? "idl");
    return { dir: dir ?? "idl", names: schemas.services().map((s) => s.fullName) };
  } catch (e) {
    if (dir !== undefined) throw e;
    // The first line, with the first diagnostic when it only announces them ("... has errors:").
    const [first = "", next] = (e as Error).message.split("\n");
    const why = first.endsWith(":") && next !== undefined ? `${first} ${next}` : first;
    io.err(`fanc route: idl/ skipped (${why}); names are looked up in discovery only`);
    return { dir: undefined, names: [] };
  }
}

/** The IDL's services, those registered in `cluster`, and (`ruled`) those with a rule. */
async function knownServices(
  registry: Registry,
  cluster: string,
  idl: { names: readonly string[] },
  ruled: boolean,
): Promise<Set<string>> {
  const names = new Set(idl.names);
  const services = servicesRoot(cluster);
  for (const kv of (await registry.list(services)).items) names.add(kv.key.slice(services.length).split("/")[0] ?? "");
  if (ruled) {
    const root = routesRoot(cluster);
    for (const kv of (await registry.list(root)).items) names.add(kv.key.slice(root.length));
  }
  names.delete("");
  return names;
}

/** `name` itself when known, else the one known service ending with `.<name>`; else a UsageError naming the candidates. */
function pickService(name: string, known: ReadonlySet<string>, idlDir: string | undefined, cluster: string): string {
  if (known.has(name)) return name;
  const matches = [...known].filter((s) => s.endsWith(`.${name}`)).sort();
  if (matches.length === 1) return matches[0] as string;
  if (matches.length > 1) throw new UsageError(`"${name}" is ambiguous: ${matches.join(", ")}; give the full name`);
  const where = `${idlDir === undefined ? "" : `in the IDL under ${idlDir.replace(/\/+$/, "")}/ or `}registered in cluster "${cluster}"`;
  throw new UsageError(
    `no service "${name}" ${where} (services: ${[...known].sort().join(", ") || "none"}); Apps look a rule up by the full name`,
  );
}

/**
 * Warns (stderr; the rule stands: a pin ahead of a deploy is legitimate) when the rule names a
 * version no registered instance of `service` has: a pin nothing satisfies makes every call fail
 * UNAVAILABLE until one registers, and a split's share of a missing version goes to the others.
 */
async function warnUnregistered(
  registry: Registry,
  cluster: string,
  service: string,
  rule: TrafficRule,
  io: Pick<Io, "err">,
): Promise<void> {
  const versions = new Set<string>();
  for (const kv of (await registry.list(servicePrefix(cluster, service))).items) {
    try {
      const v = (JSON.parse(kv.value) as { version?: unknown }).version;
      if (typeof v === "string" && semver.valid(v) !== null) versions.add(v);
    } catch {
      // Not an instance record: nothing to compare.
    }
  }
  const there = [...versions].sort(semver.compare);
  const registered = there.length === 0 ? "no instance is registered" : `versions registered: ${there.join(", ")}`;
  const until = "until one registers";
  if ("pin" in rule) {
    if (there.some((v) => semver.satisfies(v, rule.pin))) return;
    io.err(
      `fanc route: warning: no registered instance of ${service} satisfies ${rule.pin} in cluster "${cluster}" (${registered}): every call to it fails UNAVAILABLE ${until}`,
    );
    return;
  }
  const missing = Object.entries(rule.split)
    .filter(([v, w]) => w > 0 && !versions.has(v))
    .map(([v]) => v)
    .sort(semver.compare);
  if (missing.length === 0) return;
  const all = missing.length === Object.values(rule.split).filter((w) => w > 0).length;
  io.err(
    `fanc route: warning: no registered instance of ${service} runs ${missing.join(", ")} in cluster "${cluster}" (${registered}): ${all ? `every call to it fails UNAVAILABLE ${until}` : `${missing.length === 1 ? "its share goes" : "their shares go"} to the other versions ${until}`}`,
  );
}

function checked(rule: unknown): TrafficRule {
  try {
    return parseRule(rule);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function describe(rule: TrafficRule): string {
  if ("pin" in rule) return `pinned to ${rule.pin}`;
  const entries = Object.entries(rule.split).sort(([a], [b]) => semver.rcompare(a, b));
  const total = entries.reduce((n, [, w]) => n + w, 0);
  return `split ${entries.map(([v, w]) => `${v}=${w} (${Math.round((w / total) * 1000) / 10}%)`).join(" ")}`;
}
