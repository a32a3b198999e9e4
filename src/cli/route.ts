/**
 * `fanc route`: the live traffic rules of services, the rollback button. A rule is one key,
 * `/fan/{cluster}/routes/{service}`, that every App watches and applies to its next call:
 * pin the service to a version or range, split its traffic by weight between versions, clear.
 */
import { parseArgs } from "node:util";
import semver from "semver";
import { checkSegment } from "../runtime/discovery/keys.js";
import type { Registry } from "../runtime/discovery/registry.js";
import { parseRule, routesRoot, type TrafficRule } from "../runtime/call/versions.js";
import { type Io, processIo } from "./io.js";
import { REGISTRY_OPTIONS, UsageError, cliCluster, openCliRegistry, report } from "./ls.js";
import { TLS_USAGE } from "./tls.js";

const USAGE = `usage: fanc route <command> [options]

Live traffic rules: every App follows them within a second, without restarts.

commands:
  pin <service> <version|range>         send every call to instances satisfying it (blue/green, rollback)
  split <service> <version>=<weight>... share calls between versions by weight (canary)
  clear <service>                       back to the clients' own version ranges
  show [service]                        the rules in force

options:
  --discovery <spec>   etcd://host:port[,host:port...] (default: $FAN_DISCOVERY or etcd://127.0.0.1:2379)
  --cluster <name>     cluster name (default: $FAN_CLUSTER or "dev")
  --json               show: print JSON
${TLS_USAGE}
  -h, --help           show this help`;

/** `fanc route`: returns the exit code. */
export async function run(args: string[], io: Io = processIo): Promise<number> {
  let registry: Registry | undefined;
  try {
    const { values, positionals } = parseArgs({ args, options: REGISTRY_OPTIONS, allowPositionals: true });
    const [command, service, ...rest] = positionals;
    if (values.help || command === undefined) {
      (values.help ? io.out : io.err)(USAGE);
      return values.help ? 0 : 2;
    }
    const cluster = cliCluster(values.cluster);
    const root = routesRoot(cluster);
    const key = (s: string | undefined): string => {
      if (s === undefined) throw new UsageError(`${command}: expected a service name\n${USAGE}`);
      return root + checkSegment("service", s);
    };
    switch (command) {
      case "pin": {
        const k = key(service);
        if (rest.length !== 1) throw new UsageError(`pin: expected one version or range, got ${rest.length}`);
        const rule = checked({ pin: rest[0] });
        registry = openCliRegistry(values.discovery, values, io);
        await registry.put(k, JSON.stringify(rule));
        io.out(`${service}: pinned to ${rest[0]}`);
        return 0;
      }
      case "split": {
        const k = key(service);
        if (rest.length === 0) throw new UsageError("split: expected <version>=<weight> pairs, e.g. 2.1.0=10 2.0.3=90");
        const split: Record<string, number> = {};
        for (const pair of rest) {
          const m = /^([^=]+)=(\d+(?:\.\d+)?)$/.exec(pair);
          if (m === null) throw new UsageError(`split: ${JSON.stringify(pair)} is not <version>=<weight>`);
          split[m[1] as string] = Number(m[2]);
        }
        const rule = checked({ split });
        registry = openCliRegistry(values.discovery, values, io);
        await registry.put(k, JSON.stringify(rule));
        io.out(`${service}: ${describe(rule)}`);
        return 0;
      }
      case "clear": {
        const k = key(service);
        registry = openCliRegistry(values.discovery, values, io);
        await registry.delete(k);
        io.out(`${service}: rule cleared; clients use their own version ranges`);
        return 0;
      }
      case "show": {
        registry = openCliRegistry(values.discovery, values, io);
        const prefix = service === undefined ? root : key(service);
        const { items } = await registry.list(prefix);
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
