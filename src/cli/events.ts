/**
 * `fanc publish <service>.<event> '<json>'` and `fanc subscribe <service>.<event>`: events of
 * a service from a shell. The IDL is compiled in-process as for `fanc call` (the payload is
 * checked before anything is sent: exit 2), and the event goes through an App's publisher or
 * client subscription, exactly as a service's would, on an event transport (`--via` redis,
 * amqp, nats or zmq; default the one the service's registered instances publish on, else the first
 * of those the service allows). `subscribe` prints each event
 * as one JSON line on stdout until SIGINT or SIGTERM; without `--via` it follows the service's
 * instances onto every transport they publish on, as an App's subscription does
 * (runtime/call/followed-events.ts), and warns about one fanc cannot reach.
 */
import { parseArgs } from "node:util";
import { type Logger, pino } from "pino";
import { createApp, type App } from "../runtime/app/app.js";
import { edgeTraceparent } from "../runtime/call/callctx.js";
import { type FollowHost, followedSubscription } from "../runtime/call/followed-events.js";
import { codec } from "../runtime/codec/index.js";
import type { EventDescriptor, ServiceDescriptor, TransportName } from "../runtime/descriptor.js";
import type { InstanceInfo } from "../runtime/discovery/types.js";
import { nextEnvelopeId } from "../runtime/ids.js";
import { traceIdOf } from "../runtime/telemetry/tracing.js";
import type { Envelope, Transport } from "../runtime/transports/transport.js";
import { transportsConfig } from "./health.js";
import { type Io, processIo } from "./io.js";
import { REGISTRY_OPTIONS, UsageError, cliCluster, cliDiscovery, report } from "./ls.js";
import { cliTls, etcdTls, TLS_USAGE, withTls } from "./tls.js";
import { findService, loadIdl } from "./call.js";

/** Transports that carry events, in the order `--via` defaults to (the gateway uses the same list). */
export const EVENT_TRANSPORTS: readonly TransportName[] = ["redis", "amqp", "nats", "zmq"];

const usage = (kind: "publish" | "subscribe"): string =>
  kind === "publish"
    ? `usage: fanc publish <service>.<event> ['<json payload>'] [options]

Publishes one event of <service> (full or unambiguous short name) to every subscriber. The
payload is one JSON object of the event's parameters in wire form (default {}).`
    : `usage: fanc subscribe <service>.<event> [options]

Prints each event of <service> as one JSON line on stdout until interrupted (Ctrl-C).`;

const OPTIONS_TEXT = `
options:
  --idl <dir>          the IDL folder (default: idl/)
  --via <transport>    redis, amqp, nats or zmq (default: the one the service's registered instances
                       publish on, else the first of those the service allows); it must be the
                       transport the publishing service's App uses for events. subscribe without
                       it also follows the instances onto any other transport they publish on,
                       including ones registered later (zmq only with $FAN_ZMQ_HUB)
  --discovery <spec>   etcd://host:port[,host:port...] (default: $FAN_DISCOVERY or etcd://127.0.0.1:2379)
  --cluster <name>     cluster name (default: $FAN_CLUSTER or "dev")
  --json               publish: print one JSON object; subscribe: {"event","at","value"} per line
${TLS_USAGE}
  -h, --help           show this help`;

/** Which transport to take a service's events from, and why not silently when that is unclear. */
export interface EventTransportChoice {
  /** The transport; undefined when the service allows none that carries events. */
  readonly via: TransportName | undefined;
  /**
   * Set when registered instances publish on different transports (a migration: v1 on redis,
   * v2 on nats), or on one the service does not allow in this IDL: names the transports and the
   * instances, and what `via` misses. `fanc` prints it as `fanc: warning: ...`; the gateway logs it.
   */
  readonly warning?: string;
}

/** How many instance ids a warning names per transport before "and N more". */
const NAMED = 5;

/**
 * The transport `service`'s events and state updates travel on when `--via` is not given: the
 * one its registered instances say their App publishes on (`InstanceInfo.events`); for a record
 * without it (an older version), the first event transport in its endpoints. When instances
 * disagree, the one most of them use (ties: EVENT_TRANSPORTS order), with a warning; with no
 * instance registered, the first of EVENT_TRANSPORTS the service allows.
 */
export function eventTransportChoice(
  service: ServiceDescriptor,
  instances: readonly InstanceInfo[],
): EventTransportChoice {
  const allowed = (t: string): t is TransportName => allowsEvents(service, t);
  const users = publishers(service, instances);
  const rank = (t: string): number => EVENT_TRANSPORTS.indexOf(t as TransportName);
  const usable = [...users].filter(([t]) => allowed(t));
  usable.sort(([a, x], [b, y]) => y.length - x.length || rank(a) - rank(b));
  const via = (usable[0]?.[0] as TransportName | undefined) ?? EVENT_TRANSPORTS.find(allowed);
  if (users.size === 0 || (users.size === 1 && usable.length === 1)) return { via };
  const named = (ids: readonly string[]): string =>
    ids.length <= NAMED ? ids.join(", ") : `${ids.slice(0, NAMED).join(", ")} and ${ids.length - NAMED} more`;
  const groups = [...users].map(([t, ids]) => `${t} (${named(ids)})`).join("; ");
  const refused = [...users.keys()].filter((t) => !allowed(t));
  const others = [...users.keys()].filter((t) => t !== via);
  const [first, second] = usable;
  const why =
    first === undefined
      ? `the first event transport ${service.name} allows`
      : second === undefined
        ? `the only one of theirs ${service.name} allows in this IDL`
        : second[1].length < first[1].length
          ? "the one most of them use"
          : `as many use it as any other; first in the order ${EVENT_TRANSPORTS.join(", ")}`;
  return {
    via,
    warning:
      `the instances of ${service.name} publish its events on different transports: ${groups}; ` +
      `using ${via ?? "none"} (${why}), so events published on ${others.join(", ")} are missed` +
      (refused.length === 0
        ? ""
        : ` (${refused.join(", ")}: not an event transport ${service.name} allows in this IDL, which allows ${service.transports.join(", ")})`),
  };
}

/** Whether `t` carries events and `service` allows it. */
function allowsEvents(service: ServiceDescriptor, t: string): t is TransportName {
  return EVENT_TRANSPORTS.includes(t as TransportName) && service.transports.includes(t as TransportName);
}

/**
 * The transports the registered instances publish `service`'s events on, each with the instances
 * (`id@version`): its recorded `events`, or for a record without it (an older version) the first
 * event transport in its endpoints.
 */
function publishers(service: ServiceDescriptor, instances: readonly InstanceInfo[]): Map<string, string[]> {
  const users = new Map<string, string[]>();
  for (const i of instances) {
    const t = i.events ?? Object.keys(i.endpoints).find((x) => allowsEvents(service, x));
    if (t !== undefined) users.set(t, [...(users.get(t) ?? []), `${i.instanceId}@${i.version}`]);
  }
  return users;
}

/** What `--via` is given for: a subscription, a publish (`fanc publish`) or a state watch (`fanc watch`). */
export type ViaUse = "subscribe" | "publish" | "watch";

/** How a mismatch's warning says what `--via` misses, per use: all publishers elsewhere, some, and what their transport does. */
const MISSES: Record<
  ViaUse,
  { readonly what: string; readonly all: string; readonly some: string; readonly fix: string }
> = {
  subscribe: {
    what: "events",
    all: "nothing they publish reaches this subscription",
    some: "their events are missed here",
    fix: "gets them",
  },
  watch: {
    what: "state updates",
    all: "no update they publish reaches this watch",
    some: "their updates are missed here",
    fix: "gets them",
  },
  publish: {
    what: "events",
    all: "its subscribers listen where they publish, so this event likely reaches none of them",
    some: "subscribers listening there miss this event",
    fix: "reaches them",
  },
};

/**
 * Why `via` (given with `--via`) misses `service`'s events or state updates: the registered
 * instances that publish them on another transport, named per transport (as the gateway refuses
 * the same mismatch with a 503: gateway/sse.ts). A subscription or a watch there waits for
 * nothing; an event published there misses the subscribers, who listen where the service
 * publishes. Undefined when every one publishes on `via`, or none is registered (the publisher
 * may start later).
 */
export function viaMismatch(
  service: ServiceDescriptor,
  instances: readonly InstanceInfo[],
  via: TransportName,
  use: ViaUse,
): string | undefined {
  const users = publishers(service, instances);
  const others = [...users].filter(([t]) => t !== via);
  if (others.length === 0) return undefined;
  const named = (ids: readonly string[]): string =>
    ids.length <= NAMED ? ids.join(", ") : `${ids.slice(0, NAMED).join(", ")} and ${ids.length - NAMED} more`;
  const groups = others.map(([t, ids]) => `${t} (${named(ids)})`).join("; ");
  const theirs = others.map(([t]) => t);
  const m = MISSES[use];
  return users.has(via)
    ? `some instances of ${service.name} publish its ${m.what} on another transport than ${via}: ${groups}; ${m.some} (--via ${theirs[0]} ${m.fix})`
    : `the instances of ${service.name} publish its ${m.what} on ${groups}, not on ${via}: ${m.all}; --via ${theirs.join(" or --via ")} ${m.fix}`;
}

/**
 * The event transports fanc opens to follow a service's publishers when `--via` is not given
 * (`fanc subscribe`, `fanc watch`), `first` first: every broker, each connected to only when
 * subscribed on (where publishers are), and zmq when $FAN_ZMQ_HUB names its event hub.
 */
export function followedTransports(first: TransportName): TransportName[] {
  return [...new Set([first, ...reachable()])];
}

/** The event transports fanc can subscribe on: the brokers, and zmq when $FAN_ZMQ_HUB names its event hub. */
function reachable(): TransportName[] {
  const hub = (process.env.FAN_ZMQ_HUB ?? "") !== "";
  return EVENT_TRANSPORTS.filter((t) => t !== "zmq" || hub);
}

/** The transport fanc subscribes on first without `--via`: `theirs` (from `eventTransportChoice`) when it can, else the first of `service`'s it can. */
export function firstFollowed(service: ServiceDescriptor, theirs: TransportName): TransportName {
  const can = reachable();
  if (can.includes(theirs)) return theirs;
  return can.find((t) => service.transports.includes(t)) ?? theirs;
}

/** What fanc's warning says of a transport a service's instances publish on that it cannot subscribe on, and the fix. */
export function fancLacks(t: TransportName): string {
  return t === "zmq"
    ? "fanc receives zmq events only through the event hub: set FAN_ZMQ_HUB=<publish endpoint>,<subscribe endpoint> as the services have it"
    : `fanc cannot subscribe on ${t}`;
}

/**
 * The logger of a subscription fanc follows (runtime/call/followed-events.ts): its info lines
 * (subscribed on another transport, where instances publish) as `fanc <command>: ...`, its
 * warnings and errors (a transport it cannot reach) as `fanc: warning: ...`, on stderr.
 */
export function followLog(io: Io, command: string): Logger {
  return pino(
    { level: "info" },
    {
      write: (line: string) => {
        let o: { level?: number; msg?: string };
        try {
          o = JSON.parse(line) as { level?: number; msg?: string };
        } catch {
          io.err(`fanc: warning: ${line.trim()}`);
          return;
        }
        io.err((o.level ?? 30) >= 40 ? `fanc: warning: ${o.msg}` : `fanc ${command}: ${o.msg}`);
      },
    },
  );
}

/** The App's transport `name` (App has no accessor; `reach` hands it out for an endpoint on it). */
export function eventTransport(app: App, name: TransportName): Transport {
  const reach = app.reach({ endpoints: { [name]: "-" } } as InstanceInfo, name);
  if (reach === undefined) throw new Error(`fanc: the ${name} transport did not open`);
  return reach.transport;
}

interface Target {
  service: ServiceDescriptor;
  event: EventDescriptor;
  /** `--via`; undefined: the one the service's instances publish on (`eventTransportChoice`). */
  via: TransportName | undefined;
}

async function resolveTarget(target: string, idl: string | undefined, via: string | undefined): Promise<Target> {
  const dot = target.lastIndexOf(".");
  if (dot <= 0 || dot === target.length - 1)
    throw new UsageError(`expected <service>.<event>, got ${JSON.stringify(target)}`);
  const schemas = await loadIdl(idl ?? "idl");
  const service = schemas.descriptor(findService(schemas.services(), target.slice(0, dot)));
  const name = target.slice(dot + 1);
  const event = service.events[name];
  if (event === undefined)
    throw new UsageError(
      `${service.name} has no event "${name}" (events: ${Object.keys(service.events).join(", ") || "none"})`,
    );
  if (via !== undefined && !EVENT_TRANSPORTS.includes(via as TransportName))
    throw new UsageError(`--via must be one of ${EVENT_TRANSPORTS.join(", ")} for events, got ${JSON.stringify(via)}`);
  const chosen = (via as TransportName | undefined) ?? EVENT_TRANSPORTS.find((t) => service.transports.includes(t));
  if (chosen === undefined || !service.transports.includes(chosen))
    throw new UsageError(
      `${service.name} allows no event transport${via === undefined ? "" : ` ${via}`} (it allows ${service.transports.join(", ")})`,
    );
  return { service, event, via: via as TransportName | undefined };
}

/** `fanc publish` and `fanc subscribe`: returns the exit code. `stop` ends a subscription (tests); SIGINT/SIGTERM do otherwise. */
export async function run(
  args: string[],
  io: Io = processIo,
  kind: "publish" | "subscribe" = "publish",
  stop?: AbortSignal,
): Promise<number> {
  let app: App | undefined;
  let discovery: string | undefined;
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...REGISTRY_OPTIONS, idl: { type: "string" }, via: { type: "string" } },
      allowPositionals: true,
    });
    if (values.help) {
      io.out(usage(kind) + OPTIONS_TEXT);
      return 0;
    }
    const [target, payloadText = "{}", ...rest] = positionals;
    if (target === undefined || rest.length > 0 || (kind === "subscribe" && positionals.length > 1))
      throw new UsageError(`wrong arguments\n${usage(kind)}${OPTIONS_TEXT}`);
    discovery = cliDiscovery(values.discovery);
    if (!discovery.startsWith("etcd://"))
      throw new UsageError(`--discovery must be etcd://host:port[,host:port...], got ${JSON.stringify(discovery)}`);
    const t = await resolveTarget(target, values.idl, values.via);
    const c = codec<Record<string, unknown>>(t.event.payload);
    let payload: Record<string, unknown> | undefined;
    if (kind === "publish") {
      let json: unknown;
      try {
        json = JSON.parse(payloadText);
      } catch (e) {
        throw new UsageError(`the payload is not valid JSON: ${(e as Error).message}`);
      }
      try {
        payload = c.decode(json, "");
      } catch (e) {
        throw new UsageError(`invalid payload ${(e as Error).message} (nothing was sent)`);
      }
    }
    const tls = cliTls(values);
    const base = {
      cluster: cliCluster(values.cluster),
      discovery: discovery as `etcd://${string}`,
      etcd: etcdTls(discovery, tls, io),
      logger: pino({ level: "silent" }),
      telemetry: { healthService: false },
    };
    let via = t.via;
    // Without --via: the transport the service's Apps publish on, read from discovery. With it,
    // fanc says at once when they publish elsewhere: a subscription would wait silently, and an
    // event published there would miss the subscribers, who listen where the service publishes.
    const probe = createApp(base);
    try {
      await probe.ready();
      const instances = (await probe.watch(t.service.name)).instances();
      if (via === undefined) {
        const choice = eventTransportChoice(t.service, instances);
        via = choice.via as TransportName;
        // A subscription follows them all (below), and warns about those it cannot reach.
        if (kind === "subscribe") via = firstFollowed(t.service, via);
        else if (choice.warning !== undefined) io.err(`fanc: warning: ${choice.warning}; --via chooses another`);
      } else {
        const mismatch = viaMismatch(t.service, instances, via, kind);
        if (mismatch !== undefined) io.err(`fanc: warning: --via ${via}: ${mismatch}`);
      }
    } finally {
      await probe.stop().catch(() => undefined);
    }
    const follow = kind === "subscribe" && t.via === undefined;
    const opened = follow ? followedTransports(via) : [via];
    app = createApp({ ...base, transports: withTls(transportsConfig(new Set(opened)), tls) });
    await app.ready();
    const def = { descriptor: t.service, createClient: () => undefined };
    if (kind === "publish") {
      const traceparent = edgeTraceparent();
      const started = performance.now();
      await app.publisher(def).emit(t.event.name, payload as never, { traceparent });
      const ms = Math.round((performance.now() - started) * 10) / 10;
      const traceId = traceparent.split("-")[1];
      if (values.json)
        io.out(
          JSON.stringify(
            { ok: true, service: t.service.name, event: t.event.name, transport: via, ms, traceId },
            null,
            2,
          ),
        );
      else io.err(`published · ${ms.toFixed(1)} ms · over ${via} · trace ${traceId}`);
      return 0;
    }
    // A broadcast, ephemeral subscription of its own: a copy of every event, on a queue that is
    // deleted when fanc stops and expires if it dies. The group only names it: every fanc shares
    // it, but an ephemeral subscriber's dead-letter queue is its own (amqp/events.ts).
    const subscription = {
      source: t.service,
      event: t.event.name,
      group: "fanc.subscribe",
      instanceId: `fanc-${process.pid}-${nextEnvelopeId()}`,
      broadcast: true,
      ephemeral: true,
    };
    const deliver = async (env: Envelope): Promise<void> => {
      let value: Record<string, unknown>;
      try {
        value = c.decode(env.payload, t.event.name);
      } catch (e) {
        io.err(`dropped an event that does not match the IDL: ${(e as Error).message}`);
        return;
      }
      const wire = c.encode(value, t.event.name);
      io.out(
        values.json
          ? JSON.stringify({
              event: `${t.service.name}.${t.event.name}`,
              at: new Date().toISOString(),
              traceId: traceIdOf(env.headers),
              value: wire,
            })
          : JSON.stringify(wire),
      );
    };
    const opening = app;
    const stopping = new AbortController();
    // Without --via: on `via`, then wherever the service's instances publish, as they register and move.
    const host: FollowHost = {
      stopping: stopping.signal,
      eventTransport: () => eventTransport(opening, via),
      eventCarriers: () => opened,
      transport: (n) => eventTransport(opening, n),
      directory: () => ({ watch: (s) => opening.watch(s) }),
    };
    const sub = follow
      ? await followedSubscription(host, subscription, deliver, followLog(io, "subscribe"), "fanc subscribe", {
          upfront: [via],
          lacking: fancLacks,
        })
      : await eventTransport(app, via).subscribe(subscription, deliver);
    io.err(`subscribed to ${t.service.name}.${t.event.name} over ${via} (Ctrl-C to stop)`);
    await new Promise<void>((resolve) => {
      const done = (): void => resolve();
      stop?.addEventListener("abort", done, { once: true });
      if (stop?.aborted) done();
      process.once("SIGINT", done);
      process.once("SIGTERM", done);
    });
    stopping.abort();
    await sub.close();
    return 0;
  } catch (e) {
    return report(io, kind, e, discovery);
  } finally {
    await app?.stop().catch(() => undefined);
  }
}
