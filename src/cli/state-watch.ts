/**
 * `fanc watch <service>.<state>`: a live replica of a service's state from a shell. The IDL
 * is compiled in-process as for `fanc call`; an App opens the event transport that carries
 * the state's updates (`--via` redis, amqp, nats or zmq; default the one its instances publish on,
 * and any other its owner comes to publish on, as an App's watch follows it: every broker is opened,
 * and connected to when an owner publishes there) and
 * the transports its instances may answer snapshot requests on, and watches the state exactly as
 * `client.states.x.watch()` does (docs/states.md): of one major version, the IDL's or the one
 * `--version` admits, named in the first line it prints. Prints the snapshot, then each update,
 * until SIGINT or SIGTERM; status changes (owner absent, resyncing) go to stderr.
 */
import { parseArgs } from "node:util";
import { pino } from "pino";
import semver from "semver";
import { createApp, type App } from "../runtime/app/app.js";
import { codec } from "../runtime/codec/index.js";
import type {
  ServiceDescriptor,
  ShardedStateHandle,
  StateChange,
  StateHandle,
  TransportName,
} from "../runtime/descriptor.js";
import type { InstanceInfo } from "../runtime/discovery/types.js";
import { majorRange } from "../runtime/call/versions.js";
import { majorsOf } from "../runtime/states/protocol.js";
import { findService, loadIdl } from "./call.js";
import {
  EVENT_TRANSPORTS,
  eventTransportChoice,
  fancLacks,
  firstFollowed,
  followedTransports,
  followLog,
  viaMismatch,
} from "./events.js";
import { ORDER, transportsConfig } from "./health.js";
import { type Io, processIo } from "./io.js";
import { cliCluster, cliDiscovery, REGISTRY_OPTIONS, report, UsageError } from "./ls.js";
import { cliTls, etcdTls, TLS_USAGE, withTls } from "./tls.js";

const USAGE = `usage: fanc watch <service>.<state> [options]

Prints the state's value (a snapshot from its owner), then each update, until Ctrl-C. Text:
one line per change, "<cause> #<seq>: <json>" (a @delta state's update shows its merge patch).

options:
  --idl <dir>          the IDL folder (default: idl/)
  --via <transport>    the transport carrying the updates: redis, amqp, nats or zmq (default: the one the
                       service's registered instances publish on, else the first of those the service
                       allows, and any other its owner comes to publish on: an owner that registers
                       later or moves); it must be the one the owner's App uses for events
  --discovery <spec>   etcd://host:port[,host:port...] (default: $FAN_DISCOVERY or etcd://127.0.0.1:2379)
  --cluster <name>     cluster name (default: $FAN_CLUSTER or "dev")
  --version <range>    the major version whose state to watch, as a semver range within one major (2.x, ^2.1);
                       default: the IDL's major (and, for an IDL at a prerelease, it). Each major's state is
                       its own (an owner and a stream per major); a range that admits two majors is refused
  --shard <n>|all      the shard to watch, for a sharded state (@shard): required there, refused elsewhere;
                       all watches every shard (each line names its shard)
  --json               one JSON object per change: {"state","cause","epoch","seq","value","patch"}
${TLS_USAGE}
  -h, --help           show this help`;

/** `fanc watch`: returns the exit code. `stop` ends it (tests); SIGINT and SIGTERM do otherwise. */
export async function run(args: string[], io: Io = processIo, stop?: AbortSignal): Promise<number> {
  let app: App | undefined;
  let discovery: string | undefined;
  try {
    const { values, positionals } = parseArgs({
      args,
      options: {
        ...REGISTRY_OPTIONS,
        idl: { type: "string" },
        via: { type: "string" },
        shard: { type: "string" },
        version: { type: "string" },
      },
      allowPositionals: true,
    });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    const [target, ...rest] = positionals;
    if (target === undefined || rest.length > 0) throw new UsageError(`expected <service>.<state>\n${USAGE}`);
    const dot = target.lastIndexOf(".");
    if (dot <= 0 || dot === target.length - 1)
      throw new UsageError(`expected <service>.<state>, got ${JSON.stringify(target)}`);
    discovery = cliDiscovery(values.discovery);
    if (!discovery.startsWith("etcd://"))
      throw new UsageError(`--discovery must be etcd://host:port[,host:port...], got ${JSON.stringify(discovery)}`);
    const schemas = await loadIdl(values.idl ?? "idl");
    const service = schemas.descriptor(findService(schemas.services(), target.slice(0, dot)));
    const name = target.slice(dot + 1);
    const state = service.states[name];
    if (state === undefined)
      throw new UsageError(
        `${service.name} has no state "${name}" (states: ${Object.keys(service.states).join(", ") || "none"})`,
      );
    let shard: number | "all" | undefined;
    if (state.sharded === true) {
      if (values.shard === undefined)
        throw new UsageError(
          `${service.name}.${name} is sharded (@shard): give --shard <0..${service.shards - 1}> or --shard all`,
        );
      shard = values.shard === "all" ? "all" : Number(values.shard);
      if (shard !== "all" && (!Number.isInteger(shard) || shard < 0 || shard >= service.shards))
        throw new UsageError(
          `--shard must be an integer 0..${service.shards - 1} or all, got ${JSON.stringify(values.shard)}`,
        );
    } else if (values.shard !== undefined)
      throw new UsageError(`${service.name}.${name} is not sharded: --shard does not apply`);
    const range = values.version;
    const chosen = majorOf(service, range);
    const via = values.via as TransportName | undefined;
    if (via !== undefined && !EVENT_TRANSPORTS.includes(via))
      throw new UsageError(
        `--via must be one of ${EVENT_TRANSPORTS.join(", ")} for state updates, got ${JSON.stringify(via)}`,
      );
    const allowed = via ?? EVENT_TRANSPORTS.find((t) => service.transports.includes(t));
    if (allowed === undefined || !service.transports.includes(allowed))
      throw new UsageError(
        `${service.name} allows no transport that carries state updates${via === undefined ? "" : ` (${via})`}; it allows ${service.transports.join(", ")}`,
      );
    const cluster = cliCluster(values.cluster);
    const spec = discovery as `etcd://${string}`;
    const log = pino({ level: "silent" });

    // Snapshots are an rpc: open, after the event transport, the first transport an instance offers.
    const tls = cliTls(values);
    const etcd = etcdTls(spec, tls, io);
    const probe = createApp({ cluster, discovery: spec, etcd, logger: log, telemetry: { healthService: false } });
    let all: readonly InstanceInfo[];
    try {
      await probe.ready();
      all = (await probe.watch(service.name)).instances();
    } finally {
      await probe.stop().catch(() => undefined);
    }
    const major = checkMajor(service, chosen, range, all, cluster);
    if (major.warning !== undefined) io.err(`fanc: warning: ${major.warning}`);
    // The major's instances own its state; when none is registered, the others' transports are the best guess.
    const mine = all.filter((i) => semver.major(i.version) === major.major);
    const instances = mine.length > 0 ? mine : all;
    const offered = ORDER.filter((t) => instances.some((i) => i.endpoints[t] !== undefined));
    let events = allowed;
    // Without --via: the transport the owner's App publishes updates on, then any other it comes
    // to publish on (the watch follows the major's instances; a transport fanc cannot reach is a
    // warning). With it, said at once when they publish elsewhere: the watch would show the
    // snapshot, then wait silently.
    if (via === undefined) events = firstFollowed(service, eventTransportChoice(service, instances).via ?? allowed);
    else {
      // The major's own instances only: another major's do not own this state.
      const mismatch = viaMismatch(service, mine, via, "watch");
      if (mismatch !== undefined) io.err(`fanc: warning: --via ${via}: ${mismatch}`);
    }
    // Snapshots are asked on a transport the owner serves calls on: fanc opens the direct ones the
    // service allows (http, zmq, tcp) beside the brokers, so an owner that registers later, or
    // takes over, serving calls only there is asked too (it got no snapshot: fanc had opened only
    // what the instances registered at its start offered). The first line names what they offer.
    const snapshots = offered.includes(events) ? undefined : offered[0];
    const rpc = ORDER.filter((t) => DIRECT.has(t) && service.transports.includes(t));
    app = createApp({
      cluster,
      discovery: spec,
      etcd,
      logger: log,
      transports: withTls(
        transportsConfig(
          new Set([
            ...(via === undefined ? followedTransports(events) : [events]),
            ...rpc,
            ...(snapshots === undefined ? [] : [snapshots]),
          ]),
        ),
        tls,
      ),
      telemetry: { healthService: false },
    });
    await app.ready();
    const c = codec<unknown>(state.schema);
    const base = `${service.name}.${name}`;
    const full = shard === undefined ? base : `${base}[${shard}]`;
    const print = (ch: StateChange<unknown> & { readonly shard?: number }): void => {
      const which = ch.shard === undefined ? full : `${base}[${ch.shard}]`;
      const tag = ch.shard === undefined ? "" : `[${ch.shard}] `;
      let value: unknown = null; // an owner that has set no value yet
      try {
        if (ch.value !== undefined) value = c.encode(ch.value, name);
      } catch (e) {
        io.err(`fanc watch: a value that does not match the IDL: ${(e as Error).message}`);
        return;
      }
      if (values.json) {
        const o = {
          state: which,
          cause: ch.cause,
          epoch: ch.epoch,
          seq: ch.seq,
          value,
          ...(ch.patch === undefined ? {} : { patch: ch.patch }),
        };
        io.out(JSON.stringify(o));
      } else if (ch.cause === "patch") io.out(`${tag}patch #${ch.seq}: ${JSON.stringify(ch.patch)}`);
      else io.out(`${tag}${ch.cause} #${ch.seq}: ${JSON.stringify(value)}`);
    };
    // The range itself, not `${major}.x`: the owner it names may be a prerelease, which `2.x` does
    // not admit; without one, a generated client's default (an IDL at a beta admits that beta).
    const follow = {
      upfront: [events],
      lacking: fancLacks,
      subscriber: "fanc watch",
      log: followLog(io, "watch"),
    };
    const handle = app.state(service, name, {
      version: range ?? majorRange(service.version),
      ...(via === undefined ? { follow } : {}),
    });
    let shown: string | undefined;
    // One line per status, not one per retry of the same status.
    const said = (status: string, reason: string | undefined): void => {
      if (status === shown) return;
      shown = status;
      if (status !== "closed") io.err(`fanc watch: ${full} is ${status}${reason === undefined ? "" : ` (${reason})`}`);
    };
    let view: { close(): Promise<void> };
    if (shard === "all") {
      const set = (handle as ShardedStateHandle<unknown>).watchAll();
      set.subscribe(print);
      set.onStatus((status, reasons) =>
        said(status, reasons.size === 0 ? undefined : [...reasons].map(([s, r]) => `shard ${s}: ${r}`).join("; ")),
      );
      view = set;
    } else {
      const one =
        shard === undefined
          ? (handle as StateHandle<unknown>).watch()
          : (handle as ShardedStateHandle<unknown>).watch({ shard });
      one.subscribe(print);
      one.onStatus(said);
      view = one;
    }
    io.err(
      `watching ${full} over ${events}${snapshots === undefined ? "" : ` (snapshots over ${snapshots})`}, major ${major.major} (${major.why}) (Ctrl-C to stop)`,
    );
    await new Promise<void>((resolve) => {
      const done = (): void => resolve();
      stop?.addEventListener("abort", done, { once: true });
      if (stop?.aborted) done();
      process.once("SIGINT", done);
      process.once("SIGTERM", done);
    });
    await view.close();
    return 0;
  } catch (e) {
    return report(io, "watch", e, discovery);
  } finally {
    await app?.stop().catch(() => undefined);
  }
}

/** Transports a call goes straight to the owner's App on, no broker between. */
const DIRECT: ReadonlySet<TransportName> = new Set(["http", "zmq", "tcp"]);

/** The major `fanc watch` follows, why (for its first line), and a warning when no instance of it is registered. */
interface Major {
  readonly major: number;
  readonly why: string;
  readonly warning?: string;
}

/**
 * The major of `--version`, else the IDL's, as a client generated from the IDL with that range
 * watches (`app.client(X, { version })`, docs/states.md). A range that is not one, admits no
 * version or admits two majors is refused before fanc connects.
 */
function majorOf(service: ServiceDescriptor, range: string | undefined): number {
  if (range === undefined) return semver.major(service.version);
  if (semver.validRange(range) === null)
    throw new UsageError(`--version must be a semver range, got ${JSON.stringify(range)}`);
  const majors = majorsOf(range);
  const [major, second] = majors;
  if (major === undefined) throw new UsageError(`--version ${JSON.stringify(range)} admits no version`);
  if (second !== undefined)
    throw new UsageError(
      `--version ${JSON.stringify(range)} admits majors ${majors.length > 2 ? `${major}, ${second} and more` : `${major} and ${second}`}, ` +
        `and each major's state is its own (an owner and a stream per major): give a range within one major: --version ${major}.x or --version ${second}.x${majors.length > 2 ? ", ..." : ""}`,
    );
  return major;
}

/**
 * Says what fanc watches, and warns when no registered instance matches: the state is watched
 * all the same (its owner may start later; the view says `owner-absent` until then).
 */
function checkMajor(
  service: ServiceDescriptor,
  major: number,
  range: string | undefined,
  all: readonly InstanceInfo[],
  cluster: string,
): Major {
  const versions = [...new Set(all.map((i) => i.version))].sort(semver.compare);
  const running = versions.length === 0 ? "none is registered" : `versions running: ${versions.join(", ")}`;
  if (range === undefined) {
    const why = `the IDL's: it is at ${service.version}`;
    if (all.some((i) => semver.major(i.version) === major)) return { major, why };
    return {
      major,
      why,
      warning:
        `no instance of ${service.name} ${major}.x (the IDL's major) is registered in cluster "${cluster}" (${running}` +
        `${versions.length === 0 ? "" : "; --version picks another major"}); watching major ${major}'s state until its owner registers`,
    };
  }
  const why = `--version ${range}`;
  if (all.some((i) => semver.satisfies(i.version, range))) return { major, why };
  return {
    major,
    why,
    warning: versions.some((v) => semver.major(v) === major)
      ? `no instance of ${service.name} matches version ${range} (${running}); the state is major ${major}'s, whichever of its versions owns it: watching it`
      : `no instance of ${service.name} matches version ${range} in cluster "${cluster}" (${running}); watching major ${major}'s state until its owner registers`,
  };
}
