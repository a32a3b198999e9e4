/**
 * `fanc call <service>.<method> '<json>'` and `fanc push ...`: one rpc (or push) to a running
 * service on any transport. The IDL (`--idl`, default `idl/`) is compiled in-process and the
 * service descriptor built from the checked model (model-descriptor.ts); the arguments are
 * decoded with the method's input schema before anything is sent (bad JSON or an invalid
 * argument: exit 2, naming the field). An instance and a transport are picked in discovery,
 * the call is sent as an envelope over that transport, and the reply is checked against the
 * IDL. The service's traffic rule (`fanc route`) narrows the pick as it does a generated client's,
 * unless `--instance` or `--version` names the target (the output then says the rule was
 * bypassed). stdout gets the value, stderr the metadata (instance, transport, time, trace id);
 * `--json` prints one object with all of it. Exit 0 on success, 1 on a call error.
 */
import { parseArgs } from "node:util";
import { pino } from "pino";
import semver from "semver";
import { checkSources, formatDiagnostics, readSources } from "../compiler/index.js";
import type { ServiceModel } from "../compiler/model.js";
import { createApp, type App } from "../runtime/app/app.js";
import { edgeTraceparent } from "../runtime/call/callctx.js";
import { maybeDelivered } from "../runtime/call/outcome.js";
import { queueInfo } from "../runtime/call/parked.js";
import {
  assignShards,
  ownerUnavailable,
  type Redirect,
  redirectOf,
  shardDomain,
  shardOf,
  shardUnavailable,
} from "../runtime/call/shards.js";
import { codec } from "../runtime/codec/index.js";
import type { ClientCaller, MethodDescriptor, ServiceDescriptor, TransportName } from "../runtime/descriptor.js";
import type { InstanceInfo } from "../runtime/discovery/types.js";
import { Code, FanError } from "../runtime/errors.js";
import { admits, majorRange, sinceFits, splitPick, tooOld, type TrafficRule } from "../runtime/call/versions.js";
import { nextEnvelopeId } from "../runtime/ids.js";
import { traceIdOf } from "../runtime/telemetry/tracing.js";
import { pushToOwner } from "../runtime/transports/owner-push.js";
import type { Envelope, EnvelopeHeaders, SendOptions } from "../runtime/transports/transport.js";
import { ORDER, transportsConfig } from "./health.js";
import { type Io, processIo } from "./io.js";
import { REGISTRY_OPTIONS, UsageError, cliCluster, cliDiscovery, report } from "./ls.js";
import { type CliTls, cliTls, etcdTls, TLS_USAGE, withTls } from "./tls.js";
import { ModelSchemas } from "./model-descriptor.js";

const usage = (kind: "call" | "push"): string => `usage: fanc ${kind} <service>.<method> ['<json arguments>'] [options]

${kind === "call" ? "Calls an rpc and prints its reply" : "Sends a push and waits for its acknowledgement"}. <service> is the full name
(retail.wines.PublicWines) or a short one only one service of the IDL ends with (PublicWines).
The arguments are one JSON object of the method's parameters (default {}), in wire form.

options:
  --idl <dir>          the IDL folder (default: idl/)
  --via <transport>    use this transport (http, zmq, tcp, redis, amqp, nats; default: the first the instance has)
  --version <range>    only instances whose version satisfies this semver range (default: the IDL's major, 2.x,
                       and for an IDL at a prerelease also it and its later ones, 2.x || >=2.0.0-beta.1 <2.0.0;
                       narrowed by the service's traffic rule, fanc route; --version bypasses the rule)
  --instance <id>      only this instance (on redis, amqp and nats through its own queue; bypasses the traffic rule)
  --timeout <ms>       deadline (default: the method's @timeout, else 10000)
  --auth <value>       credentials for @auth methods: the envelope header "authorization", whole
                       (--auth 'Bearer <token>'; default: $FAN_AUTH), as a verifier reads it
  --header <name>=<value>
                       a custom envelope header the handler sees in ctx.headers (repeatable)
  --discovery <spec>   etcd://host:port[,host:port...] (default: $FAN_DISCOVERY or etcd://127.0.0.1:2379)
  --cluster <name>     cluster name (default: $FAN_CLUSTER or "dev")
  --json               print one JSON object (value or error, instance, transport, ms, trace id)
${TLS_USAGE}
  -h, --help           show this help

Exit status: 0 on success, 1 when the call failed, 2 when it was refused before sending.${
  kind === "push"
    ? "\nWith --via redis, amqp or nats and no instance registered, the push waits in the queue of the\nservice's major for the first instance that starts, as an App's client leaves it."
    : ""
}
Broker URLs come from $FAN_REDIS_URL, $FAN_AMQP_URL and $FAN_NATS_URL (default: the loopback brokers).`;

/** Broker transports: the call goes to the version's shared queue, any instance may take it (unless `--instance`: its own). */
const BROKERS: ReadonlySet<TransportName> = new Set(["redis", "amqp", "nats"]);

/** What `--json` prints (and the text output is made of). */
interface Outcome {
  ok: boolean;
  service: string;
  method: string;
  transport: TransportName;
  /** The instance the call was sent to; a broker's shared queue reaches any instance of its version. */
  instance: string;
  /** A `@shard` method's shard: the call went to its owner (on a broker, to the owner's own queue). */
  shard?: number;
  /** A broker's shared queue took the call: `instance` is the one discovery offered, any of the version's may answer. */
  sharedQueue?: true;
  /** No instance was registered: the push waits in its major's queue (`endpoint`; `instance` names it) for the first that starts. */
  parked?: true;
  /** The instance that redirected the call to `instance` (it did not own the shard in its view). */
  redirectedFrom?: string;
  /** The service's traffic rule (`fanc route`) when it narrowed the pick, or when it was bypassed. */
  rule?: TrafficRule;
  /** The flag that bypassed `rule`. */
  ruleBypassed?: RuleBypass;
  endpoint: string;
  ms: number;
  traceId: string | undefined;
  value?: unknown;
  error?: { code: string; message: string; name?: string; fields?: unknown };
}

/** The service of the IDL `name` designates: its full name or a unique suffix after a dot. */
export function findService(services: readonly ServiceModel[], name: string): ServiceModel {
  const exact = services.find((s) => s.fullName === name);
  if (exact !== undefined) return exact;
  const matches = services.filter((s) => s.fullName.endsWith(`.${name}`));
  if (matches.length === 1) return matches[0] as ServiceModel;
  if (matches.length > 1) throw new UsageError(`"${name}" is ambiguous: ${matches.map((s) => s.fullName).join(", ")}`);
  throw new UsageError(
    `no service "${name}" in the IDL (services: ${services.map((s) => s.fullName).join(", ") || "none"})`,
  );
}

/** Compiles the IDL folder; a program with errors is a usage error printing its diagnostics. */
export async function loadIdl(dir: string): Promise<ModelSchemas> {
  let sources: Awaited<ReturnType<typeof readSources>>;
  try {
    sources = await readSources(dir);
  } catch (e) {
    throw new UsageError(`cannot read the IDL folder ${dir}: ${(e as Error).message} (use --idl <dir>)`);
  }
  if (sources.length === 0) throw new UsageError(`no .fan files under ${dir} (use --idl <dir>)`);
  const checked = checkSources(sources);
  if (checked.model === undefined)
    throw new UsageError(`the IDL under ${dir} has errors:\n${formatDiagnostics(checked.diagnostics, sources)}`);
  return new ModelSchemas(checked.model);
}

/**
 * The arguments decoded against the method's parameters (`input`: the typed value a shard key is
 * read from) and encoded back (`payload`: wire form, defaults filled in).
 */
function checkArguments(m: MethodDescriptor, text: string): { input: unknown; payload: unknown } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`the arguments are not valid JSON: ${(e as Error).message}`);
  }
  const c = codec<unknown>(m.input);
  try {
    const input = c.decode(json, "");
    return { input, payload: c.encode(input, "") };
  } catch (e) {
    const err = FanError.from(e);
    // The codec's message starts with the field's path: `n: expected an int ...`.
    throw new UsageError(`invalid argument ${err.message} (nothing was sent)`);
  }
}

/** Picks an instance and a transport: `--via` if given, else the first of ORDER the instance has. */
function choose(
  instances: readonly InstanceInfo[],
  via: TransportName | undefined,
): { instance: InstanceInfo; transport: TransportName } | string {
  const usable = (i: InstanceInfo): TransportName[] =>
    ORDER.filter((t) => i.endpoints[t] !== undefined && (via === undefined || t === via));
  // Spread calls over instances: a random one among those that can take it.
  const ok = instances.filter((i) => usable(i).length > 0);
  const instance = ok[Math.floor(Math.random() * ok.length)];
  if (instance === undefined) {
    const offered = [...new Set(instances.flatMap((i) => ORDER.filter((t) => i.endpoints[t] !== undefined)))];
    const want = via ?? "a transport fanc speaks";
    return `no instance is reachable over ${want}; they offer ${offered.join(", ") || "none"}`;
  }
  return { instance, transport: usable(instance)[0] as TransportName };
}

/** Turns an error reply's payload into the printed error (exported for bench), checking IDL error fields against the IDL. */
export function errorOf(payload: unknown, service: ServiceDescriptor): NonNullable<Outcome["error"]> {
  const w = (typeof payload === "object" && payload !== null ? payload : {}) as Record<string, unknown>;
  const code = typeof w.code === "string" ? w.code : Code.UNKNOWN;
  const message = typeof w.message === "string" ? w.message : code;
  if (typeof w.error !== "string")
    return w.details === undefined ? { code, message } : { code, message, fields: w.details };
  const desc = service.errors[w.error];
  if (desc !== undefined) {
    try {
      codec(desc.fields).decode(w.details, "error");
    } catch (e) {
      return {
        code,
        message: `${message} (its fields do not match the IDL: ${(e as Error).message})`,
        name: w.error,
        fields: w.details,
      };
    }
  }
  return { code, message, name: w.error, fields: w.details ?? {} };
}

/** The flag that made `fanc call` ignore the service's traffic rule. */
type RuleBypass = "--instance" | "--version";

/** Prints an outcome as text: the value on stdout, the rest on stderr (`named`: the instance came from `--instance`). */
function print(io: Io, o: Outcome, kind: "call" | "push", named: boolean): void {
  const where =
    o.shard !== undefined
      ? `${o.instance} (${named ? `named by --instance; shard ${o.shard}` : `shard ${o.shard}'s owner`}${o.redirectedFrom === undefined ? "" : `, redirected there by ${o.redirectedFrom}`}) over ${o.transport}`
      : o.parked === true
        ? `${o.instance} over ${o.transport} (no instance is registered${o.error === undefined ? ": the push waits there for the first that starts" : ""})`
        : o.sharedQueue === true
          ? `${o.instance} over ${o.transport} (the version's shared queue: any of its instances may answer)`
          : named && BROKERS.has(o.transport)
            ? `${o.instance} over ${o.transport} (its own queue, named by --instance)`
            : `${o.instance} over ${o.transport}`;
  const rule =
    o.rule === undefined
      ? ""
      : o.ruleBypassed === undefined
        ? ` · traffic rule ${JSON.stringify(o.rule)}`
        : ` · traffic rule ${JSON.stringify(o.rule)} bypassed by ${o.ruleBypassed}`;
  const meta = `${o.ms.toFixed(1)} ms · ${where}${rule} · trace ${o.traceId ?? "-"}`;
  if (o.error === undefined) {
    if (kind === "push") io.err(`acknowledged · ${meta}`);
    else {
      if (o.value !== undefined) io.out(JSON.stringify(o.value, null, 2));
      io.err(`ok · ${meta}`);
    }
    return;
  }
  const e = o.error;
  io.err(`error ${e.code}${e.name !== undefined ? ` ${e.name}` : ""}: ${e.message}`);
  if (e.fields !== undefined) io.err(`  fields: ${JSON.stringify(e.fields)}`);
  io.err(`  ${meta}`);
}

/** The options `fanc call`, `push` and `bench` share. */
export const CALL_OPTIONS = {
  ...REGISTRY_OPTIONS,
  idl: { type: "string" },
  via: { type: "string" },
  version: { type: "string" },
  instance: { type: "string" },
  timeout: { type: "string" },
  auth: { type: "string" },
  header: { type: "string", multiple: true },
} as const;

/** What `CALL_OPTIONS` parse into. */
export interface CallFlags {
  readonly idl?: string | undefined;
  readonly via?: string | undefined;
  readonly version?: string | undefined;
  readonly instance?: string | undefined;
  readonly timeout?: string | undefined;
  readonly auth?: string | undefined;
  readonly header?: readonly string[] | undefined;
  readonly discovery?: string | undefined;
  readonly cluster?: string | undefined;
  readonly "tls-ca"?: string | undefined;
  readonly "tls-cert"?: string | undefined;
  readonly "tls-key"?: string | undefined;
  readonly "tls-insecure"?: boolean | undefined;
}

/** A checked call, ready to send: everything that can be refused was refused. */
export interface PreparedCall {
  readonly service: ServiceDescriptor;
  readonly method: MethodDescriptor;
  /** The arguments in wire form, defaults filled in. */
  readonly payload: unknown;
  /** A `@shard` method's shard, from its key in the arguments: the call goes to that shard's owner. */
  readonly shard: number | undefined;
  readonly timeoutMs: number;
  readonly via: TransportName | undefined;
  /** `--version`, else the IDL's major (`2.x`; at a prerelease, it too), as a client generated from it accepts (`majorRange`). */
  readonly range: string;
  /** Whether `range` came from `--version`. */
  readonly rangeGiven: boolean;
  readonly discovery: `etcd://${string}`;
  readonly cluster: string;
  /** The `--tls-*` files, read (undefined: none given). */
  readonly tls: CliTls | undefined;
  /** Custom envelope headers: `--header name=value`, and `authorization` from `--auth` or `$FAN_AUTH`. */
  readonly headers: Readonly<Record<string, string>>;
}

/** Checks the flags, the target and the arguments against the IDL (`kind` undefined: rpc or push); throws UsageError (exit 2). */
export async function prepareCall(
  flags: CallFlags,
  target: string,
  argText: string,
  kind: "rpc" | "push" | undefined,
): Promise<PreparedCall> {
  const dot = target.lastIndexOf(".");
  if (dot <= 0 || dot === target.length - 1)
    throw new UsageError(`expected <service>.<method>, got ${JSON.stringify(target)}`);
  const via = flags.via as TransportName | undefined;
  if (via !== undefined && !ORDER.includes(via))
    throw new UsageError(`--via must be one of ${ORDER.join(", ")}, got ${JSON.stringify(via)}`);
  const range = flags.version;
  if (range !== undefined && semver.validRange(range) === null)
    throw new UsageError(`--version must be a semver range, got ${JSON.stringify(range)}`);
  const discovery = cliDiscovery(flags.discovery);
  if (!discovery.startsWith("etcd://"))
    throw new UsageError(`--discovery must be etcd://host:port[,host:port...], got ${JSON.stringify(discovery)}`);
  const cluster = cliCluster(flags.cluster);
  const tls = cliTls(flags);
  const schemas = await loadIdl(flags.idl ?? "idl");
  const svc = findService(schemas.services(), target.slice(0, dot));
  const service = schemas.descriptor(svc);
  const methodName = target.slice(dot + 1);
  const m = service.methods[methodName];
  if (m === undefined) {
    const names = Object.values(service.methods).map((x) => `${x.name} (${x.kind})`);
    throw new UsageError(`${service.name} has no method "${methodName}" (methods: ${names.join(", ") || "none"})`);
  }
  if (kind !== undefined && m.kind !== kind)
    throw new UsageError(
      `${service.name}.${m.name} is ${m.kind === "rpc" ? "an rpc" : "a push"}: use "fanc ${m.kind === "rpc" ? "call" : "push"}"`,
    );
  const { input, payload } = checkArguments(m, argText);
  let shard: number | undefined;
  if (m.shard !== undefined) {
    shard = shardOf(input, m.shard, service.shards);
    if (shard === undefined)
      throw new UsageError(
        `${service.name}.${m.name} is @shard(${m.shard.map((path) => path.join(".")).join(", ")}): its arguments lack a key part, so no shard owns the call (nothing was sent)`,
      );
  }
  const timeoutMs = flags.timeout === undefined ? m.timeoutMs : Number(flags.timeout);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError(`--timeout must be a positive number of ms`);
  const headers = customHeaders(flags);
  return {
    service,
    method: m,
    payload,
    shard,
    timeoutMs,
    via,
    range: range ?? majorRange(service.version),
    rangeGiven: range !== undefined,
    discovery: discovery as `etcd://${string}`,
    cluster,
    tls,
    headers,
  };
}

/** Envelope headers the runtime sets itself: `--header` cannot name them. */
const RUNTIME_HEADERS: ReadonlySet<string> = new Set([
  "traceparent",
  "tracestate",
  "deadline",
  "ttl",
  "replyTo",
  "shard",
  "shardFallback",
  "attempt",
]);

/** `--header name=value` (repeatable) and `--auth` (else `$FAN_AUTH`) as custom envelope headers. */
function customHeaders(flags: CallFlags): Record<string, string> {
  const out: Record<string, string> = {};
  for (const text of flags.header ?? []) {
    const eq = text.indexOf("=");
    const name = eq < 0 ? "" : text.slice(0, eq).trim();
    if (name === "" || /[\s:]/.test(name))
      throw new UsageError(`--header takes <name>=<value>, got ${JSON.stringify(text)}`);
    if (RUNTIME_HEADERS.has(name) || name === "__proto__" || name === "constructor" || name === "prototype")
      throw new UsageError(`--header ${name}: the runtime sets that header itself (use --timeout for the deadline)`);
    out[name] = text.slice(eq + 1);
  }
  if (flags.auth !== undefined) {
    if (out.authorization !== undefined)
      throw new UsageError("give the credentials once: --auth or --header authorization=..., not both");
    out.authorization = flags.auth;
  } else if (out.authorization === undefined && (process.env.FAN_AUTH ?? "") !== "") {
    out.authorization = process.env.FAN_AUTH as string;
  }
  return out;
}

/** An App connected to one instance of the prepared call's service over one transport. */
export interface Connected {
  readonly app: App;
  readonly instance: InstanceInfo;
  readonly transport: TransportName;
  readonly reach: NonNullable<ReturnType<App["reach"]>>;
  /** Named with `--instance`: on a broker, sent to that instance's own queue (`transmit`), not the version's shared one. */
  readonly own: boolean;
  /** The service's traffic rule, when it narrowed the pick or was bypassed (`ruleBypassed`). */
  readonly rule?: TrafficRule;
  readonly ruleBypassed?: RuleBypass;
}

/** Why `connect` found nowhere to send the call (exit 1). */
export interface NotConnected {
  readonly why: string;
  /** No registered instance matches the version range at all: a push may wait in its broker queue (`parkPush`). */
  readonly unregistered: boolean;
}

/** A refusal of `connect`'s (exit 1). */
function notConnected(why: string, unregistered = false): NotConnected {
  return { why, unregistered };
}

/** Picks an instance in discovery and opens its transport, or says why none could be (exit 1). Warnings go to `io`. */
export async function connect(
  p: PreparedCall,
  instanceId: string | undefined,
  io: Pick<Io, "err"> = processIo,
  redirectedTo?: string,
): Promise<Connected | NotConnected> {
  const log = pino({ level: "silent" });
  const etcd = etcdTls(p.discovery, p.tls, io);
  const probe = createApp({
    cluster: p.cluster,
    discovery: p.discovery,
    etcd,
    logger: log,
    telemetry: { healthService: false },
  });
  let all: readonly InstanceInfo[];
  let rule: TrafficRule | undefined;
  try {
    await probe.ready();
    all = (await probe.watch(p.service.name)).instances();
    rule = (await probe.traffic(p.service.name)).current();
  } finally {
    await probe.stop().catch(() => undefined);
  }
  const range = p.range;
  // A redirect names the owner in the refusing instance's view, which may hold instances
  // `--version` leaves out: the owner is looked up among all of them.
  const owned = redirectedTo === undefined ? undefined : all.find((i) => i.instanceId === redirectedTo);
  if (redirectedTo !== undefined && owned === undefined)
    return notConnected(`redirected to ${redirectedTo}, which is not registered in cluster "${p.cluster}"`);
  const inRange = all.filter((i) => semver.satisfies(i.version, range));
  const bypass: RuleBypass | undefined =
    rule === undefined || redirectedTo !== undefined
      ? undefined
      : instanceId !== undefined
        ? "--instance"
        : p.rangeGiven
          ? "--version"
          : undefined;
  const ruled = rule !== undefined && bypass === undefined && redirectedTo === undefined;
  if (inRange.length === 0) {
    const versions = [...new Set(all.map((i) => i.version))].sort(semver.compare);
    const which = p.rangeGiven
      ? `version ${range}`
      : `version ${range}, the IDL's major: it is at ${p.service.version}`;
    const running =
      versions.length === 0
        ? ""
        : `; versions running: ${versions.join(", ")}${p.rangeGiven ? "" : " (--version picks one)"}`;
    return notConnected(
      `no instance of ${p.service.name} (${which}) is registered in cluster "${p.cluster}"${running}`,
      true,
    );
  }
  // The rule narrows what a generated client of the IDL's major may call (call/route.ts).
  let instances = ruled
    ? inRange.filter((i) => admits(rule, i))
    : inRange.filter((i) => instanceId === undefined || i.instanceId === instanceId);
  if (ruled && instances.length === 0) {
    const versions = [...new Set(all.map((i) => i.version))].sort(semver.compare).join(", ");
    return notConnected(
      `no instance of ${p.service.name} ${range} under the traffic rule ${JSON.stringify(rule)} (fanc route show) (versions available: ${versions}); --version or --instance bypasses it`,
    );
  }
  const narrowed = ruled && (instances.length < inRange.length || "split" in (rule as TrafficRule));
  const shown: Pick<Connected, "rule" | "ruleBypassed"> =
    rule !== undefined && bypass !== undefined
      ? { rule, ruleBypassed: bypass }
      : narrowed
        ? { rule: rule as TrafficRule }
        : {};
  if (instances.length === 0)
    return notConnected(
      `no instance of ${p.service.name} (id ${instanceId}) is registered in cluster "${p.cluster}" (version ${range}: ${inRange.map((i) => i.instanceId).join(", ")})`,
    );
  // A `@since` member is never sent to an older instance, as the generated client refuses it
  // (call/route.ts): UNIMPLEMENTED when none is new enough. A sharded call's owner is worked out
  // among all of them (older instances own shards too), then checked.
  const since = p.method.since;
  if (since !== undefined && owned === undefined) {
    const fit = instances.filter((i) => sinceFits(since, i));
    if (fit.length === 0) return notConnected(tooOldMessage(p, since, instances));
    if (p.shard === undefined) instances = fit;
  }
  // A sharded call goes to its shard's owner, as the generated client sends it (on a broker to
  // the owner's own queue: the envelope carries the shard). `--instance` names another on purpose.
  let candidates: readonly InstanceInfo[] = instances;
  let owner: string | undefined;
  if (owned !== undefined) {
    owner = owned.instanceId;
    candidates = [owned];
  } else if (p.shard !== undefined && instanceId === undefined) {
    owner = assignShards(shardDomain(instances), p.service.shards)[p.shard];
    const info = instances.find((i) => i.instanceId === owner);
    if (info === undefined)
      return notConnected(shardUnavailable(p.service.name, p.shard, "no instance owns it").message);
    if (since !== undefined && !sinceFits(since, info)) return notConnected(tooOldMessage(p, since, [info]));
    candidates = [info];
  } else if (ruled && rule !== undefined && "split" in rule) {
    // A split picks a version by weight among those up, then an instance of it.
    const groups = new Map<string, InstanceInfo[]>();
    for (const i of instances) groups.set(i.version, [...(groups.get(i.version) ?? []), i]);
    candidates = splitPick(rule, groups) ?? instances;
  }
  const picked = choose(candidates, p.via);
  if (typeof picked === "string")
    return notConnected(owner === undefined ? picked : `shard ${p.shard} is owned by ${owner}: ${picked}`);
  const app = createApp({
    cluster: p.cluster,
    discovery: p.discovery,
    etcd,
    logger: log,
    transports: withTls(transportsConfig(new Set([picked.transport])), p.tls),
    telemetry: { healthService: false },
  });
  try {
    await app.ready();
    const reach = app.reach(picked.instance, picked.transport);
    if (reach === undefined)
      throw new FanError(Code.UNAVAILABLE, `cannot reach ${picked.instance.instanceId} over ${picked.transport}`);
    const own = instanceId !== undefined;
    return { app, instance: picked.instance, transport: picked.transport, reach, own, ...shown };
  } catch (e) {
    await app.stop().catch(() => undefined);
    throw e;
  }
}

/** The generated client's refusal of a `@since` member no instance it may call is new enough for (exit 1). */
function tooOldMessage(p: PreparedCall, since: string, there: readonly InstanceInfo[]): string {
  const err = tooOld(
    p.service.name,
    p.method.name,
    since,
    there.map((i) => i.version),
  );
  return `${err.code}: ${err.message} (${p.rangeGiven ? `--version ${p.range}; ` : ""}nothing was sent)`;
}

/** One envelope of the prepared call, with a fresh id, deadline and trace. */
export function envelope(p: PreparedCall, kind: "call" | "push"): { env: Envelope; deadline: number } {
  const deadline = Date.now() + p.timeoutMs;
  const headers: EnvelopeHeaders = { ...p.headers, deadline, traceparent: edgeTraceparent() };
  if (p.shard !== undefined) headers.shard = p.shard;
  if (kind === "push" && p.method.ttlMs !== undefined) headers.ttl = Date.now() + p.method.ttlMs;
  const env: Envelope = {
    v: 1,
    id: nextEnvelopeId(),
    kind,
    service: p.service.name,
    method: p.method.name,
    version: p.service.version,
    headers,
    payload: p.payload,
    form: "wire",
  };
  return { env, deadline };
}

/** What one send of the call came back with: a value, or an error (with the redirect it carried). */
interface Sent {
  readonly value?: unknown;
  readonly error?: NonNullable<Outcome["error"]>;
  readonly redirect?: Redirect;
}

function withRedirect(error: NonNullable<Outcome["error"]>, redirect: Redirect | undefined): Sent {
  return redirect === undefined ? { error } : { error, redirect };
}

/**
 * Sends `env` to the connected instance: the reply of a call, undefined once a push is
 * acknowledged. One named with `--instance` gets it on its own queue on a broker (amqp queue,
 * redis list, nats subject: `SendOptions.instance`, as `fanc health` asks one App), not the
 * version's shared one that any instance takes from; a push so sent is acknowledged by that
 * instance once handled, as a `@shard` push to its owner is (owner-push.ts). Also `fanc bench`.
 */
export async function transmit(
  c: Connected,
  kind: "call" | "push",
  env: Envelope,
  opts: SendOptions,
): Promise<Envelope | undefined> {
  const { transport, endpoint } = c.reach;
  const own = c.own && BROKERS.has(c.transport);
  if (kind === "call") return transport.call(endpoint, env, own ? { ...opts, instance: true } : opts);
  if (own) await pushToOwner((e) => transport.call(endpoint, e, { ...opts, instance: true }), env, opts);
  else await transport.push(endpoint, env, opts);
  return undefined;
}

/** Sends the envelope to the connected instance and waits for its reply (a push: its acknowledgement). */
async function send(
  c: Connected,
  p: PreparedCall,
  kind: "call" | "push",
  env: Envelope,
  deadline: number,
): Promise<Sent> {
  const sendOpts = { signal: AbortSignal.timeout(Math.max(0, deadline - Date.now())), deadline };
  try {
    const reply = await transmit(c, kind, env, sendOpts);
    if (reply === undefined) return {};
    if (reply.kind === "error") {
      const error = errorOf(reply.payload, p.service);
      return withRedirect(
        error,
        redirectOf(new FanError(error.code as Code, error.message, { details: error.fields })),
      );
    }
    try {
      codec(p.method.output).decode(reply.payload, "reply");
    } catch (e) {
      throw new FanError(Code.INTERNAL, `the reply does not match the IDL: ${(e as Error).message}`);
    }
    return { value: reply.payload ?? undefined };
  } catch (e) {
    const err = sendError(c, p, kind, e, deadline);
    const error = { code: err.code, message: err.message };
    return withRedirect(err.details === undefined ? error : { ...error, fields: err.details }, redirectOf(err));
  }
}

/**
 * The error of a send that got no answer, worded as the generated client words it (its fields
 * printed): DEADLINE_EXCEEDED at the deadline; a `@shard` method's owner out of reach (gone,
 * its queue deleted), UNAVAILABLE naming the shard and the owner (call/shard-route.ts); a push's
 * error always says `maybeDelivered` (false: it never left, so sending it again is safe).
 */
function sendError(c: Connected, p: PreparedCall, kind: "call" | "push", e: unknown, deadline: number): FanError {
  const cause = FanError.from(e, Code.UNAVAILABLE);
  let err =
    Date.now() >= deadline
      ? new FanError(Code.DEADLINE_EXCEEDED, `no reply within ${p.timeoutMs} ms`, { cause })
      : cause;
  const d = err.details as { shard?: unknown; error?: unknown } | undefined;
  // Not when --instance named the instance, nor for an answer (a redirect, an IDL error, a relayed one).
  if (
    p.shard !== undefined &&
    !c.own &&
    err.code === Code.UNAVAILABLE &&
    d?.shard === undefined &&
    typeof d?.error !== "string" &&
    err.relayedFrom === undefined
  )
    err = ownerUnavailable(p.service.name, p.shard, c.instance.instanceId, err);
  if (kind === "call" || typeof (err.details as { maybeDelivered?: unknown } | undefined)?.maybeDelivered === "boolean")
    return err;
  const base = typeof err.details === "object" && err.details !== null ? err.details : {};
  return new FanError(err.code, err.message, {
    cause: err,
    details: { ...base, maybeDelivered: maybeDelivered(cause) },
  });
}

/**
 * A push no registered instance of its version range can take, sent by an App's client as a
 * generated client sends it, pinned to the `--via` broker: the runtime's route leaves it in the
 * queue of the service's major (call/parked.ts), where it waits for the first instance that
 * starts, and logs a warning naming the queue, which fanc prints. Undefined when the runtime
 * refuses to park it (an instance of the major is registered but out of reach; `--version` or
 * the traffic rule admit only part of the major; a `@shard` or `@since` push): fanc's own
 * refusal says why.
 */
async function parkPush(p: PreparedCall, via: TransportName, io: Io): Promise<Outcome | undefined> {
  let queue: { endpoint: string; version: string } | undefined;
  // The App's log, warnings only: the runtime's parked-push warning names the queue.
  const logger = pino(
    { level: "warn" },
    {
      write: (line: string): void => {
        let o: { msg?: string; queue?: string; endpoint?: string; major?: string };
        try {
          o = JSON.parse(line) as typeof o;
        } catch {
          return;
        }
        if (o.queue === undefined) return;
        queue = { endpoint: o.endpoint ?? o.queue, version: `${(o.major ?? "v0").slice(1)}.0.0` };
        io.err(`fanc: warning: ${o.msg} (${queue.endpoint})`);
      },
    },
  );
  const app = createApp({
    cluster: p.cluster,
    discovery: p.discovery,
    etcd: etcdTls(p.discovery, p.tls, io),
    logger,
    transports: withTls(transportsConfig(new Set([via])), p.tls),
    telemetry: { healthService: false },
  });
  let traceId: string | undefined;
  let error: Outcome["error"];
  let started = performance.now();
  let ms = 0;
  try {
    await app.ready();
    const def = { descriptor: p.service, createClient: (caller: ClientCaller) => caller };
    const client = app.client(def, { version: p.range, transport: via });
    started = performance.now();
    await client.push(p.method.name, codec(p.method.input).decode(p.payload, ""), {
      timeout: p.timeoutMs,
      headers: p.headers,
      onTrace: (t) => {
        traceId = t.traceId;
      },
    });
  } catch (e) {
    const err = FanError.from(e);
    error = { code: err.code, message: err.message };
  } finally {
    ms = Math.round((performance.now() - started) * 10) / 10;
    await app.stop().catch(() => undefined);
  }
  // Refused by the runtime: nothing was sent. Sent without its warning: an instance registered
  // after fanc looked, and the client's route sent the push there.
  if (queue === undefined && error !== undefined) return undefined;
  const at =
    queue === undefined
      ? { instance: "an instance that registered meanwhile", endpoint: "-" }
      : {
          instance: queueInfo(p.service.name, queue.version, via, queue.endpoint).instanceId,
          parked: true as const,
          endpoint: queue.endpoint,
        };
  return {
    ok: error === undefined,
    service: p.service.name,
    method: p.method.name,
    transport: via,
    ...at,
    ms,
    traceId,
    ...(error === undefined ? {} : { error }),
  };
}

/** Prints `o` (`json`: as one object) and returns the exit code. */
function shown(io: Io, o: Outcome, kind: "call" | "push", json: boolean, named: boolean): number {
  if (json) io.out(JSON.stringify(o, null, 2));
  else print(io, o, kind, named);
  return o.ok ? 0 : 1;
}

/** `fanc call` (kind "call") and `fanc push` (kind "push"): returns the exit code. */
export async function run(args: string[], io: Io = processIo, kind: "call" | "push" = "call"): Promise<number> {
  let app: App | undefined;
  let discovery: string | undefined;
  try {
    const { values, positionals } = parseArgs({ args, options: CALL_OPTIONS, allowPositionals: true });
    if (values.help) {
      io.out(usage(kind));
      return 0;
    }
    const [target, argText = "{}", ...rest] = positionals;
    if (target === undefined || rest.length > 0)
      throw new UsageError(`expected <service>.<method> and at most one JSON argument\n${usage(kind)}`);
    discovery = cliDiscovery(values.discovery);
    // Everything that can be refused is refused before any connection is opened.
    const p = await prepareCall(values, target, argText, kind === "call" ? "rpc" : "push");
    const { service, method: m } = p;
    let c = await connect(p, values.instance, io);
    if ("why" in c) {
      // No instance of the range is registered: a push over a broker waits in its queue, as an
      // App's client leaves it (the runtime decides whether it may).
      const via = p.via;
      const parked =
        c.unregistered && kind === "push" && values.instance === undefined && via !== undefined && BROKERS.has(via)
          ? await parkPush(p, via, io)
          : undefined;
      if (parked === undefined) {
        io.err(`fanc ${kind}: ${c.why}`);
        return 1;
      }
      return shown(io, parked, kind, values.json === true, false);
    }
    app = c.app;
    // The rule as the first pick saw it (a redirect goes to the owner named, rule or not).
    const ruled = {
      ...(c.rule === undefined ? {} : { rule: c.rule }),
      ...(c.ruleBypassed === undefined ? {} : { ruleBypassed: c.ruleBypassed }),
    };
    const started = performance.now();
    const { env, deadline } = envelope(p, kind);
    let sent = await send(c, p, kind, env, deadline);
    // An instance that does not own the shard in its view redirects, naming the owner it sees
    // (fanc's view lagged, or `--version` left instances out): the call is sent once more,
    // there, as the generated client does. `--instance` asks for that instance, so it is not.
    const redirect = values.instance === undefined ? sent.redirect : undefined;
    let redirectedFrom: string | undefined;
    if (redirect?.owner !== undefined && redirect.owner !== c.instance.instanceId) {
      redirectedFrom = c.instance.instanceId;
      await app.stop().catch(() => undefined);
      app = undefined;
      c = await connect(p, undefined, io, redirect.owner);
      if ("why" in c) {
        io.err(`fanc ${kind}: ${redirectedFrom} redirected the call: ${c.why}`);
        return 1;
      }
      app = c.app;
      sent = await send(c, p, kind, env, deadline);
    }
    const outcome: Outcome = {
      ok: sent.error === undefined,
      service: service.name,
      method: m.name,
      transport: c.transport,
      instance: c.instance.instanceId,
      endpoint: c.reach.endpoint,
      ms: 0,
      traceId: traceIdOf(env.headers),
      ...(p.shard === undefined ? {} : { shard: p.shard }),
      ...(p.shard === undefined && !c.own && BROKERS.has(c.transport) ? { sharedQueue: true as const } : {}),
      ...(redirectedFrom === undefined ? {} : { redirectedFrom }),
      ...ruled,
      ...(sent.error === undefined ? { value: sent.value } : { error: sent.error }),
    };
    outcome.ms = Math.round((performance.now() - started) * 10) / 10;
    return shown(io, outcome, kind, values.json === true, values.instance !== undefined);
  } catch (e) {
    return report(io, kind, e, discovery);
  } finally {
    await app?.stop().catch(() => undefined);
  }
}
