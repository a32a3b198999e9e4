/**
 * What `createApp()` takes from the environment when its options leave it out, so one build
 * runs in every deployment: `FAN_CLUSTER`, `FAN_DISCOVERY`, `FAN_TRANSPORTS`, and the
 * addresses of the transports the App uses (`FAN_<TRANSPORT>_<SETTING>`). Options always win;
 * the environment never adds a transport the App did not name (in options or `FAN_TRANSPORTS`).
 * `createTestApp()` does not read it: tests keep their embedded defaults.
 */
import { parseEtcdSpec } from "../discovery/etcd.js";
import { Code, FanError } from "../errors.js";
import { dropLimitProblems } from "../telemetry/drops.js";
import type { DiscoveryInput, TransportsConfig } from "./infra.js";

/** The variables read, each with what it sets; docs/runtime.md lists the same. */
export const ENV_VARS = {
  FAN_CLUSTER: "cluster",
  FAN_DISCOVERY: 'discovery: "memory" or etcd://host:port[,host:port...]',
  FAN_TRANSPORTS: "transports to use when `transports` is not given: a comma list (amqp,http)",
  FAN_AMQP_URL: "transports.amqp.url (a comma list for several brokers)",
  FAN_REDIS_URL: "transports.redis.url",
  FAN_NATS_URL: "transports.nats.url (a comma list for the servers of a NATS cluster)",
  FAN_HTTP_HOST: "transports.http.host",
  FAN_HTTP_PORT: "transports.http.port",
  FAN_HTTP_ADVERTISE_HOST: "transports.http.advertiseHost",
  FAN_ZMQ_HOST: "transports.zmq.host",
  FAN_ZMQ_PORT: "transports.zmq.port",
  FAN_ZMQ_ADVERTISE_HOST: "transports.zmq.advertiseHost",
  FAN_ZMQ_EVENTS_PUBLISH: "transports.zmq.events.publish (the event hub's XSUB)",
  FAN_ZMQ_EVENTS_SUBSCRIBE: "transports.zmq.events.subscribe (the event hub's XPUB)",
  FAN_TCP_HOST: "transports.tcp.host",
  FAN_TCP_PORT: "transports.tcp.port",
  FAN_TCP_ADVERTISE_HOST: "transports.tcp.advertiseHost",
  FAN_DROP_WARN_BURST: "dropped-message warnings written one a line before they are counted (telemetry/drops.ts)",
  FAN_DROP_WARN_INTERVAL_MS: "the interval of the dropped-message warnings' summary lines, in ms",
} as const;

type Env = Readonly<Record<string, string | undefined>>;

/** The settings `createApp` fills from the environment. */
export interface EnvFilled {
  readonly cluster?: string;
  readonly discovery?: DiscoveryInput;
  readonly transports?: TransportsConfig;
}

const NETWORK = ["amqp", "redis", "nats", "http", "zmq", "tcp"] as const;
type Network = (typeof NETWORK)[number];

/** A variable's value, or undefined when unset or blank. */
function read(env: Env, name: keyof typeof ENV_VARS): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === "" ? undefined : v;
}

/** `opts` with what it leaves out taken from `env`; throws naming the variable that is wrong. */
export function withEnvironment<O extends EnvFilled>(opts: O, env: Env = process.env): O & EnvFilled {
  const limits = dropLimitProblems(env);
  if (limits.length > 0) throw new FanError(Code.INVALID_ARGUMENT, limits.join("; "));
  const cluster = opts.cluster ?? read(env, "FAN_CLUSTER");
  const fromEnv = opts.discovery === undefined ? read(env, "FAN_DISCOVERY") : undefined;
  if (fromEnv !== undefined) checkDiscovery(fromEnv, "FAN_DISCOVERY");
  const discovery = opts.discovery ?? fromEnv;
  const transports = withTransportEnv(opts.transports ?? namedTransports(env), env);
  return {
    ...opts,
    ...(cluster === undefined ? {} : { cluster }),
    ...(discovery === undefined ? {} : { discovery }),
    ...(transports === undefined ? {} : { transports }),
  };
}

/** Throws INVALID_ARGUMENT unless `spec` is "memory" or a well-formed etcd://host:port list. */
export function checkDiscovery(spec: string, where: string): void {
  const expected = 'expected "memory" or "etcd://host:port[,host:port...]"';
  if (spec === "memory") return;
  if (!spec.startsWith("etcd://"))
    throw new FanError(Code.INVALID_ARGUMENT, `${where} ${JSON.stringify(spec)} is not a discovery: ${expected}`);
  try {
    parseEtcdSpec(spec);
  } catch (e) {
    throw new FanError(Code.INVALID_ARGUMENT, `${where}: ${(e as Error).message}`);
  }
}

/** `FAN_TRANSPORTS=amqp,http` as `{ amqp: {}, http: {} }`; undefined when unset. */
function namedTransports(env: Env): TransportsConfig | undefined {
  const list = read(env, "FAN_TRANSPORTS");
  if (list === undefined) return undefined;
  const out: Record<string, object> = {};
  for (const raw of list.split(",")) {
    const name = raw.trim();
    if (name === "" || name === "local") continue;
    if (!(NETWORK as readonly string[]).includes(name))
      throw new FanError(
        Code.INVALID_ARGUMENT,
        `FAN_TRANSPORTS names ${JSON.stringify(name)}; expected a comma list of ${NETWORK.join(", ")}`,
      );
    out[name] = {};
  }
  return out;
}

/** Each named network transport given as options gets the settings it leaves out from `env`. */
function withTransportEnv(t: TransportsConfig | undefined, env: Env): TransportsConfig | undefined {
  if (t === undefined) return undefined;
  const out: Record<string, unknown> = { ...t };
  for (const name of NETWORK) {
    const given = t[name];
    if (given === undefined || typeof given === "function") continue; // absent, or a ready factory
    out[name] = { ...settings(name, env), ...given };
  }
  return out as TransportsConfig;
}

function settings(name: Network, env: Env): Record<string, unknown> {
  const s: Record<string, unknown> = {};
  const set = (key: string, v: unknown): void => {
    if (v !== undefined) s[key] = v;
  };
  switch (name) {
    case "amqp": {
      const url = read(env, "FAN_AMQP_URL");
      set("url", url?.includes(",") ? url.split(",").map((u) => u.trim()) : url);
      break;
    }
    case "redis":
      set("url", read(env, "FAN_REDIS_URL"));
      break;
    case "nats": {
      const url = read(env, "FAN_NATS_URL");
      set("url", url?.includes(",") ? url.split(",").map((u) => u.trim()) : url);
      break;
    }
    case "http":
      set("host", read(env, "FAN_HTTP_HOST"));
      set("port", port(env, "FAN_HTTP_PORT"));
      set("advertiseHost", read(env, "FAN_HTTP_ADVERTISE_HOST"));
      break;
    case "zmq": {
      set("host", read(env, "FAN_ZMQ_HOST"));
      set("port", port(env, "FAN_ZMQ_PORT"));
      set("advertiseHost", read(env, "FAN_ZMQ_ADVERTISE_HOST"));
      const publish = read(env, "FAN_ZMQ_EVENTS_PUBLISH");
      const subscribe = read(env, "FAN_ZMQ_EVENTS_SUBSCRIBE");
      if ((publish === undefined) !== (subscribe === undefined))
        throw new FanError(
          Code.INVALID_ARGUMENT,
          "FAN_ZMQ_EVENTS_PUBLISH and FAN_ZMQ_EVENTS_SUBSCRIBE go together: set both or neither",
        );
      if (publish !== undefined) set("events", { publish, subscribe });
      break;
    }
    case "tcp":
      set("host", read(env, "FAN_TCP_HOST"));
      set("port", port(env, "FAN_TCP_PORT"));
      set("advertiseHost", read(env, "FAN_TCP_ADVERTISE_HOST"));
      break;
  }
  return s;
}

function port(env: Env, name: "FAN_HTTP_PORT" | "FAN_ZMQ_PORT" | "FAN_TCP_PORT"): number | undefined {
  const v = read(env, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new FanError(Code.INVALID_ARGUMENT, `${name}=${JSON.stringify(v)} is not a port (0-65535)`);
  return n;
}
