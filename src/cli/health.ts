/**
 * `fanc health <service>`: asks the built-in `fan.Health` service of every App that serves
 * `<service>` (found in discovery by app id) whether it is SERVING, over a transport that App
 * advertises, and prints one line per instance. Exit 0 when every instance serves, 1 otherwise
 * (or when none is registered). `--watch` follows one instance's status with `fan.Health.watch`.
 */
import { parseArgs } from "node:util";
import { pino } from "pino";
import { createApp, type App } from "../runtime/app/app.js";
import type { TransportsConfig } from "../runtime/app/infra.js";
import { codec } from "../runtime/codec/index.js";
import type { TransportName } from "../runtime/descriptor.js";
import type { InstanceInfo } from "../runtime/discovery/types.js";
import { Code, errorFromWire, FanError } from "../runtime/errors.js";
import { nextEnvelopeId } from "../runtime/ids.js";
import { HEALTH_SERVICE, HealthDescriptor } from "../runtime/telemetry/health.js";
import type { Envelope } from "../runtime/transports/transport.js";
import { type Io, processIo } from "./io.js";
import { REGISTRY_OPTIONS, UsageError, cliCluster, fullName, openCliRegistry, report, table } from "./ls.js";
import { cliTls, etcdTls, TLS_USAGE, withTls } from "./tls.js";

const USAGE = `usage: fanc health <service> [options]

Asks fan.Health of every App serving <service> whether it is SERVING.

options:
  --discovery <spec>   etcd://host:port[,host:port...] (default: $FAN_DISCOVERY or etcd://127.0.0.1:2379)
  --cluster <name>     cluster name (default: $FAN_CLUSTER or "dev")
  --transport <name>   ask over this transport only (http, zmq, tcp, redis, amqp, nats)
  --timeout <ms>       per check (default 3000)
  --watch              print every status change of the first instance until interrupted
  --json               print JSON instead of a table
${TLS_USAGE}
  -h, --help           show this help

Each instance is asked through its own App's fan.Health, on any transport: http, zmq and tcp
reach that App's server, and on redis, amqp and nats the request goes to that App's own queue
(not fan.Health's shared one). Broker URLs come from
$FAN_REDIS_URL, $FAN_AMQP_URL and $FAN_NATS_URL (default: the loopback brokers).`;

/** Transports in the order fanc prefers them: direct ones first, no broker between (also `fanc call`). */
export const ORDER: readonly TransportName[] = ["http", "zmq", "tcp", "redis", "amqp", "nats"];

export function transportsConfig(names: ReadonlySet<TransportName>): TransportsConfig {
  const out: Record<string, object> = {};
  for (const n of names) {
    if (n === "redis") out.redis = { url: process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379" };
    else if (n === "amqp") out.amqp = { url: process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672" };
    else if (n === "nats") out.nats = { url: (process.env.FAN_NATS_URL ?? "nats://127.0.0.1:4222").split(",") };
    else if (n === "zmq") out.zmq = zmqConfig();
    else if (n !== "local") out[n] = {};
  }
  return out as TransportsConfig;
}

/** zmq's options: the event hub from $FAN_ZMQ_HUB ("tcp://host:5571,tcp://host:5572": publish, subscribe). */
function zmqConfig(): object {
  const hub = process.env.FAN_ZMQ_HUB;
  if (hub === undefined || hub === "") return {};
  const [publish, subscribe] = hub.split(",").map((s) => s.trim());
  if (publish === undefined || subscribe === undefined || publish === "" || subscribe === "")
    throw new UsageError(`$FAN_ZMQ_HUB must be "<publish endpoint>,<subscribe endpoint>", got ${JSON.stringify(hub)}`);
  return { events: { publish, subscribe } };
}

/** One check of the fan.Health instance `health` about `service`, over `transport`. */
async function ask(
  app: App,
  health: InstanceInfo,
  transport: TransportName,
  method: "check" | "watch",
  payload: Record<string, string>,
  timeoutMs: number,
): Promise<string> {
  const reach = app.reach(health, transport);
  if (reach === undefined) throw new FanError(Code.UNAVAILABLE, `cannot reach ${health.instanceId} over ${transport}`);
  const m = HealthDescriptor.methods[method] as (typeof HealthDescriptor.methods)[string];
  const deadline = Date.now() + timeoutMs;
  const env: Envelope = {
    v: 1,
    id: nextEnvelopeId(),
    kind: "call",
    service: HEALTH_SERVICE,
    method,
    version: HealthDescriptor.version,
    headers: { deadline },
    payload: codec(m.input).encode(payload, ""),
    form: "wire",
  };
  // `instance`: on a broker, the App's own queue, not fan.Health's shared one (which every App
  // of the cluster takes from, so any of them would answer about a service it may not serve).
  const reply = await reach.transport.call(reach.endpoint, env, {
    signal: AbortSignal.timeout(timeoutMs),
    deadline,
    instance: true,
  });
  if (reply.kind === "error") {
    throw errorFromWire(reply.payload, "fan.Health failed");
  }
  return (codec(m.output).decode(reply.payload, "reply") as { status: string }).status;
}

/** `fanc health`: returns the exit code. */
export async function run(args: string[], io: Io = processIo): Promise<number> {
  let app: App | undefined;
  try {
    const { values, positionals } = parseArgs({
      args,
      options: {
        ...REGISTRY_OPTIONS,
        transport: { type: "string" },
        timeout: { type: "string" },
        watch: { type: "boolean" },
      },
      allowPositionals: true,
    });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    const asked = positionals[0];
    if (asked === undefined || positionals.length > 1) throw new UsageError(`expected one service name\n${USAGE}`);
    const pinned = values.transport as TransportName | undefined;
    if (pinned !== undefined && !ORDER.includes(pinned))
      throw new UsageError(`--transport must be one of ${ORDER.join(", ")}, got ${JSON.stringify(pinned)}`);
    const timeoutMs = values.timeout === undefined ? 3000 : Number(values.timeout);
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
      throw new UsageError(`--timeout must be a positive number of ms`);
    const discovery = (values.discovery ?? process.env.FAN_DISCOVERY ?? "etcd://127.0.0.1:2379") as `etcd://${string}`;
    if (!discovery.startsWith("etcd://"))
      throw new UsageError(`--discovery must be etcd://host:port[,host:port...], got ${JSON.stringify(discovery)}`);
    const cluster = cliCluster(values.cluster);
    // A short name (PublicWines, wines.PublicWines) as `fanc ls` and `fanc call` take it.
    const registry = openCliRegistry(discovery, values, io);
    const service = await fullName(registry, cluster, asked).finally(() => registry.close());
    const log = pino({ level: "silent" });
    // A first App, without transports, only to read discovery.
    const tls = cliTls(values);
    const etcd = etcdTls(discovery, tls, io);
    const probe = createApp({ cluster, discovery, etcd, logger: log, telemetry: { healthService: false } });
    app = probe;
    await probe.ready();
    const instances = (await probe.watch(service)).instances();
    const healths = (await probe.watch(HEALTH_SERVICE)).instances();
    await probe.stop();
    app = undefined;
    if (instances.length === 0) {
      io.err(`fanc health: no instance of ${service} is registered in cluster "${cluster}"`);
      return 1;
    }
    const plan = instances.map((i) => {
      const h = healths.find((x) => x.appId === i.appId);
      const via =
        h === undefined
          ? undefined
          : ORDER.find((t) => (pinned === undefined || t === pinned) && h.endpoints[t] !== undefined);
      return { instance: i, health: h, via };
    });
    const needed = new Set(plan.flatMap((p) => (p.via === undefined ? [] : [p.via])));
    app = createApp({
      cluster,
      discovery,
      etcd,
      logger: log,
      transports: withTls(transportsConfig(needed), tls),
      telemetry: { healthService: false },
    });
    await app.ready();
    const rows: { instance: string; transport: string; status: string }[] = [];
    for (const p of plan) {
      let status: string;
      if (p.health === undefined) status = "UNKNOWN (its App serves no fan.Health)";
      else if (p.via === undefined) status = `UNKNOWN (fan.Health not on ${pinned ?? "a transport fanc speaks"})`;
      else {
        try {
          status = await ask(app, p.health, p.via, "check", { service }, timeoutMs);
        } catch (e) {
          status = `UNREACHABLE (${FanError.from(e).code}: ${(e as Error).message})`;
        }
      }
      rows.push({ instance: p.instance.instanceId, transport: p.via ?? "-", status });
    }
    if (values.json) io.out(JSON.stringify(rows, null, 2));
    else
      io.out(
        table(
          ["INSTANCE", "TRANSPORT", "STATUS"],
          rows.map((r) => [r.instance, r.transport, r.status]),
        ),
      );
    const first = plan[0];
    if (values.watch && first?.health !== undefined && first.via !== undefined) {
      let last = rows[0]?.status ?? "";
      for (;;) {
        const next = await ask(app, first.health, first.via, "watch", { service, last }, 60_000).catch(
          (e: unknown) => `UNREACHABLE (${(e as Error).message})`,
        );
        if (next !== last) io.out(`${new Date().toISOString()} ${first.instance.instanceId} ${next}`);
        if (next.startsWith("UNREACHABLE")) break;
        last = next;
      }
    }
    return rows.every((r) => r.status === "SERVING") ? 0 : 1;
  } catch (e) {
    return report(io, "health", e);
  } finally {
    await app?.stop().catch(() => undefined);
  }
}
