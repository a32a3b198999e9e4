/**
 * `fanc gateway [idl/] --port 8080`: an HTTP server in front of every service of the IDL,
 * whatever transport its instances are served on (http, zmq, redis, amqp), found through
 * discovery like `fanc call` finds them (src/gateway/ does the serving). Re-reads the IDL on
 * SIGHUP, and with `--watch` when its files change (src/gateway/reload.ts). Runs until SIGINT
 * or SIGTERM, then stops accepting, ends event streams and closes its App.
 */
import { parseArgs } from "node:util";
import { destination, pino } from "pino";
import { createApp, type App } from "../runtime/app/app.js";
import type { ClientCaller, ServiceDescriptor, TransportName } from "../runtime/descriptor.js";
import { Catalog } from "../gateway/catalog.js";
import { Cors } from "../gateway/cors.js";
import { IdlReloader, unreachable } from "../gateway/reload.js";
import { GatewayServer } from "../gateway/server.js";
import { loadIdl } from "./call.js";
import { ORDER, transportsConfig } from "./health.js";
import { type Io, processIo } from "./io.js";
import { REGISTRY_OPTIONS, UsageError, cliCluster, cliDiscovery, report } from "./ls.js";
import { cliTls, etcdTls, TLS_USAGE, withTls } from "./tls.js";

const USAGE = `usage: fanc gateway [<idl dir>] [options]

Serves every service of the IDL over HTTP, whatever transport it runs on (see docs/gateway.md):
  POST /<package.Service>/<method>          rpc (200/204) or push (202); JSON arguments as body
  <verb> <@route path>                      the IDL's @route paths on their verbs, as the http transport serves them
  GET  /_fan/events/<service>/<event>       Server-Sent Events: one data line of JSON per event
  GET  /_fan/states/<service>/<state>       Server-Sent Events: the state's value, then every change
                                            (a @shard state: one shard, ?shard=<n> or ?key=<key>; all: ?shard=all)
  GET  /_fan/idl                            the compiled IDL as JSON;  GET /health
Request headers: Authorization (the credentials @auth methods check), fan-timeout (ms) or
fan-deadline (epoch ms), traceparent, fan-h-<name>.
SIGHUP re-reads the IDL (and so does a change to its files, with --watch): new requests get
the new one, calls in flight and open streams go on (a stream of what it removed ends with a
fan-error event); one that does not compile is logged and the previous one stays. Transports
are opened at start only.
A failure from inside the deployment reaches the client as its code and "... (trace <id>)";
the gateway's log has it in full under that trace id.

options:
  --idl <dir>            the IDL folder (default: idl/; or give it as the first argument)
  --port <n>             port to listen on (default 8080; 0 picks a free one)
  --host <addr>          interface to listen on (default 127.0.0.1)
  --cors <origins>       origins allowed to call from a browser: "*" or a comma-separated list
  --transports <list>    transports to open, at start (default: those the IDL's services allow of ${ORDER.join(", ")})
  --discovery <spec>     etcd://host:port[,host:port...] (default: $FAN_DISCOVERY or etcd://127.0.0.1:2379)
  --cluster <name>       cluster name (default: $FAN_CLUSTER or "dev")
  --log-level <level>    pino level of the gateway's log on stderr (default: info)
  --reveal-errors        pass every error to the client as it is, endpoints and all (development only)
  --watch                re-read the IDL when a file under its folder changes or a symbolic link
                         on its path is switched (as SIGHUP does)
${TLS_USAGE.replaceAll(/^( {2}--\S+(?: <file>)?)( +)/gm, "$1  $2")}
  -h, --help             show this help

Broker URLs come from $FAN_REDIS_URL and $FAN_AMQP_URL (default: the loopback brokers).`;

/** `fanc gateway`: returns the exit code once stopped (`stop` ends it in tests; signals otherwise). */
export async function run(args: string[], io: Io = processIo, stop?: AbortSignal): Promise<number> {
  let app: App | undefined;
  let server: GatewayServer | undefined;
  let reloader: IdlReloader | undefined;
  let hup: (() => void) | undefined;
  let discovery: string | undefined;
  try {
    const { values, positionals } = parseArgs({
      args,
      options: {
        ...REGISTRY_OPTIONS,
        idl: { type: "string" },
        port: { type: "string" },
        host: { type: "string" },
        cors: { type: "string" },
        transports: { type: "string" },
        "log-level": { type: "string" },
        "reveal-errors": { type: "boolean" },
        watch: { type: "boolean" },
      },
      allowPositionals: true,
    });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    if (positionals.length > 1 || (positionals.length === 1 && values.idl !== undefined))
      throw new UsageError(`one IDL folder only\n${USAGE}`);
    const port = Number(values.port ?? 8080);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new UsageError(`--port must be 0-65535, got ${values.port}`);
    discovery = cliDiscovery(values.discovery);
    if (!discovery.startsWith("etcd://"))
      throw new UsageError(`--discovery must be etcd://host:port[,host:port...], got ${JSON.stringify(discovery)}`);
    const dir = positionals[0] ?? values.idl ?? "idl";
    const schemas = await loadIdl(dir);
    const descriptors = schemas.services().map((s) => schemas.descriptor(s));
    if (descriptors.length === 0) throw new UsageError("the IDL declares no service");
    const names = transportNames(values.transports, descriptors);
    const log = pino({ level: values["log-level"] ?? "info" }, destination(2));
    const tls = cliTls(values);
    app = createApp({
      cluster: cliCluster(values.cluster),
      discovery: discovery as `etcd://${string}`,
      etcd: etcdTls(discovery, tls, io),
      logger: log,
      transports: withTls(transportsConfig(names), tls),
      telemetry: { healthService: false },
    });
    await app.ready();
    const a = app;
    const client = (d: ServiceDescriptor): ClientCaller =>
      a.client({ descriptor: d, createClient: (c: ClientCaller) => c });
    const catalog = new Catalog(schemas.model, descriptors, client);
    for (const text of catalog.shadowed) log.warn(text);
    for (const text of unreachable(catalog, undefined, app.transportNames())) io.err(`fanc gateway: warning: ${text}`);
    server = new GatewayServer({
      app,
      catalog,
      cors: new Cors(values.cors),
      log,
      revealErrors: values["reveal-errors"] === true,
      release: (descriptor) => a.releaseClient({ descriptor }),
    });
    const url = await server.listen(port, values.host ?? "127.0.0.1");
    const r = new IdlReloader({ dir, app, server, client, io, log });
    reloader = r;
    hup = () => void r.reload("SIGHUP");
    process.on("SIGHUP", hup);
    if (values.watch === true) r.watch();
    if (values["reveal-errors"] === true)
      io.err(
        "fanc gateway: warning: --reveal-errors: clients read every error in full, endpoints and all (development only)",
      );
    io.err(
      `fanc gateway: listening on ${url} · ${descriptors.length} service(s) · over ${[...names].join(", ")} · cluster "${cliCluster(values.cluster)}"${values.watch === true ? ` · watching ${dir}` : ""}`,
    );
    await new Promise<void>((resolve) => {
      const done = (): void => resolve();
      stop?.addEventListener("abort", done, { once: true });
      if (stop?.aborted) done();
      process.once("SIGINT", done);
      process.once("SIGTERM", done);
    });
    io.err("fanc gateway: stopping");
    return 0;
  } catch (e) {
    return report(io, "gateway", e, discovery);
  } finally {
    if (hup !== undefined) process.off("SIGHUP", hup);
    await reloader?.close();
    await server?.close().catch(() => undefined);
    await app?.stop().catch(() => undefined);
  }
}

/** `--transports a,b` checked, or every transport some service of the IDL allows (zmq last without an event hub). */
function transportNames(spec: string | undefined, descriptors: readonly ServiceDescriptor[]): Set<TransportName> {
  if (spec !== undefined) {
    const asked = spec
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean) as TransportName[];
    const bad = asked.filter((t) => !ORDER.includes(t));
    if (bad.length > 0 || asked.length === 0)
      throw new UsageError(`--transports takes ${ORDER.join(", ")}; got ${JSON.stringify(spec)}`);
    return new Set(asked);
  }
  const names = ORDER.filter((t) => descriptors.some((d) => d.transports.includes(t)));
  // Without an event hub zmq carries no events: keep it after the brokers so that it is not the
  // App's default event transport. (Event and state streams pick each service's transport from
  // discovery, src/gateway/sse.ts; with none registered, redis, amqp, nats, zmq in that order.)
  const hub =
    (process.env.FAN_ZMQ_HUB ?? "") !== "" ||
    ((process.env.FAN_ZMQ_EVENTS_PUBLISH ?? "") !== "" && (process.env.FAN_ZMQ_EVENTS_SUBSCRIBE ?? "") !== "");
  return new Set(hub ? names : [...names.filter((t) => t !== "zmq"), ...names.filter((t) => t === "zmq")]);
}
