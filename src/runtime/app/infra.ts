/**
 * What an App owns besides its services: discovery and config, the transports (network ones
 * imported only when configured, so an app that uses only `local` never loads amqplib or
 * zeromq), and the choice of transport for a call or an event.
 */
import type { Logger } from "pino";
import type { ServiceDescriptor, TransportName } from "../descriptor.js";
import {
  createDiscovery,
  memoryRegistry,
  type Discovery,
  type DiscoveryOptions,
  type DiscoverySpec,
} from "../discovery/index.js";
import type { ConfigObjects } from "../discovery/config.js";
import { MemoryRegistry } from "../discovery/memory.js";
import type { Registry } from "../discovery/registry.js";
import type { ConfigSource, InstanceInfo } from "../discovery/types.js";
import { Code, FanError } from "../errors.js";
import type { Target } from "../call/route.js";
import type { Transport, TransportContext, TransportFactory } from "../transports/transport.js";
import { DEFAULT_MAX_BYTES } from "../codec/wire.js";
import { checkDiscovery } from "./env.js";
import { LocalTransport, localHub, type LocalOptions } from "../transports/local/index.js";

/** Network transport names, in the order events prefer them. */
const NETWORK: readonly TransportName[] = ["amqp", "redis", "nats", "zmq", "tcp", "http"];
/** Transports that carry events (http and tcp relay through another). */
const EVENT_CAPABLE: ReadonlySet<TransportName> = new Set(["amqp", "redis", "nats", "zmq"]);

/** `createApp({ transports })`: options per transport name, or a ready factory. */
export type TransportsConfig = {
  readonly local?: LocalOptions | TransportFactory;
} & { readonly [K in Exclude<TransportName, "local">]?: object | TransportFactory };

/** Where discovery lives: a spec for `createDiscovery`, or a Discovery already built. */
export type DiscoveryInput = DiscoverySpec | Discovery;

/** Settings the infra needs from the App options. */
export interface InfraOptions {
  readonly cluster: string;
  readonly appId: string;
  readonly log: Logger;
  readonly discovery?: DiscoveryInput;
  readonly config?: string | ConfigObjects | ConfigSource;
  readonly transports?: TransportsConfig;
  readonly leaseTtlMs?: number;
  readonly maxPayloadBytes?: number;
  /** How long a stop waits for in-flight work: the local transport's subscriptions drain that long. */
  readonly stopGraceMs?: number;
  /** The App's admin endpoints, for the http transport. */
  readonly admin?: import("../telemetry/index.js").AdminHook;
  /** Counts a dead-lettered push or event of `service.method` on `transport`. */
  readonly deadLetter?: (service: string, method: string, transport: string) => void;
  readonly etcd?: DiscoveryOptions["etcd"];
}

function isDiscovery(d: DiscoveryInput): d is Discovery {
  return typeof d === "object" && d !== null && "directory" in d && "registry" in d;
}

/**
 * Each network transport's module, imported only when an App is configured to use it, so a
 * local-only app never loads amqplib, ioredis, nats, zeromq or undici. Literal paths (not a template)
 * so bundlers and vitest can see them.
 */
const LOADERS: Readonly<Record<Exclude<TransportName, "local">, () => Promise<Record<string, unknown>>>> = {
  http: () => import("../transports/http/index.js"),
  amqp: () => import("../transports/amqp/index.js"),
  redis: () => import("../transports/redis/index.js"),
  nats: () => import("../transports/nats/index.js"),
  zmq: () => import("../transports/zmq/index.js"),
  tcp: () => import("../transports/tcp/index.js"),
};

/** Loads a network transport's module and returns its factory (`httpTransport(opts)`...). */
async function loadTransport(name: TransportName, opts: object): Promise<TransportFactory> {
  if (name === "local") throw new FanError(Code.INTERNAL, "the local transport is built in, not loaded");
  const mod = await LOADERS[name]();
  const make = mod[`${name}Transport`];
  if (typeof make !== "function")
    throw new FanError(Code.INTERNAL, `transports/${name} does not export ${name}Transport`);
  return (make as (o: object) => TransportFactory)(opts);
}

function noEventTransport(source: ServiceDescriptor, network: readonly TransportName[], hubless: boolean): FanError {
  const has = network.length === 0 ? "only the local transport" : network.join(", ");
  const zmq = hubless
    ? " (zmq only with an event hub: its `events` or `hub` option, or FAN_ZMQ_EVENTS_PUBLISH and FAN_ZMQ_EVENTS_SUBSCRIBE)"
    : "";
  return new FanError(
    Code.FAILED_PRECONDITION,
    `no configured transport can carry events of ${source.name} between processes: events travel on ` +
      `${[...EVENT_CAPABLE].join(", ")}${zmq}; this app has ${has}, and ${source.name} allows ` +
      `${source.transports.join(", ")}. Add one both allow to createApp({ transports }) or FAN_TRANSPORTS`,
  );
}

/**
 * True when zmq is configured with options that name no event hub (neither `events` nor `hub`):
 * such a zmq transport cannot carry events, so events and state updates do not pick it. A ready
 * factory is taken at its word.
 */
function hublessZmq(config: TransportsConfig | undefined): boolean {
  const z = config?.zmq;
  if (z === undefined || typeof z === "function") return false;
  const o = z as { events?: unknown; hub?: unknown };
  return o.events === undefined && o.hub === undefined;
}

/** Discovery, config and transports of one App. */
export class Infra {
  readonly local: LocalTransport;
  readonly #opts: InfraOptions;
  readonly #spec: DiscoverySpec | Discovery;
  readonly #transports = new Map<TransportName, Transport>();
  /** Network transports configured, in configuration order. */
  readonly network: readonly TransportName[];
  /** Those of `network` that carry events (zmq only with an event hub), in the same order. */
  readonly #carriers: readonly TransportName[];
  #discovery: Discovery | undefined;
  #opening: Promise<void> | undefined;
  #ownsDiscovery: boolean;
  /** The private memory registry made when no discovery was given (closed with the App). */
  readonly #privateRegistry: Registry | undefined;

  constructor(opts: InfraOptions) {
    if (typeof opts.discovery === "string") checkDiscovery(opts.discovery, "createApp({ discovery })");
    this.#opts = opts;
    this.#privateRegistry = opts.discovery === undefined ? memoryRegistry() : undefined;
    this.#spec = opts.discovery ?? (this.#privateRegistry as Registry);
    this.#ownsDiscovery = !isDiscovery(this.#spec);
    const configured = Object.keys(opts.transports ?? {}) as TransportName[];
    for (const name of configured) {
      if (name !== "local" && !NETWORK.includes(name))
        throw new FanError(
          Code.INVALID_ARGUMENT,
          `unknown transport ${JSON.stringify(name)}; expected one of local, ${NETWORK.join(", ")}`,
        );
    }
    this.network = configured.filter((n) => n !== "local");
    const hubless = hublessZmq(opts.transports);
    this.#carriers = this.network.filter((n) => EVENT_CAPABLE.has(n) && !(n === "zmq" && hubless));
    const localCfg = opts.transports?.local;
    const hubKey: object | string = isDiscovery(this.#spec) ? this.#spec.registry : this.#spec;
    const ctx = this.#context("local");
    if (typeof localCfg === "function") {
      const t = localCfg(ctx);
      if (!(t instanceof LocalTransport))
        throw new FanError(
          Code.INVALID_ARGUMENT,
          "transports.local must be local transport options or localTransport(...)",
        );
      this.local = t;
    } else {
      const drain = opts.stopGraceMs === undefined ? {} : { drainMs: opts.stopGraceMs };
      this.local = new LocalTransport({ ...drain, ...localCfg, hub: localHub(hubKey, opts.cluster) }, ctx);
    }
    this.#transports.set("local", this.local);
  }

  /** True once `open` has finished. */
  get isOpen(): boolean {
    return this.#discovery !== undefined && this.#opening === undefined;
  }

  /**
   * Whether discovery can reach other processes (etcd, or any registry but an in-memory one):
   * then only a network transport carries events and state updates between the Apps.
   */
  get spansProcesses(): boolean {
    const spec = this.#spec;
    const registry = isDiscovery(spec) ? spec.registry : spec;
    return registry !== "memory" && !(registry instanceof MemoryRegistry);
  }

  /** Creates discovery and the network transports (once). */
  open(): Promise<void> {
    if (this.#discovery !== undefined && this.#opening === undefined) return Promise.resolve();
    this.#opening ??= this.#open().finally(() => (this.#opening = undefined));
    return this.#opening;
  }

  /** The discovery in use (after `open`). */
  get discovery(): Discovery {
    if (this.#discovery === undefined)
      throw new FanError(Code.FAILED_PRECONDITION, "the app's discovery is not open yet");
    return this.#discovery;
  }

  get registry(): Registry {
    return this.discovery.registry;
  }

  get config(): ConfigSource {
    return this.discovery.config;
  }

  /** The transport of `name`; throws naming the transports the App has. */
  transport(name: TransportName): Transport {
    const t = this.#transports.get(name);
    if (t === undefined)
      throw new FanError(
        Code.FAILED_PRECONDITION,
        `this app has no ${name} transport (it has ${this.names().join(", ")}); add it to createApp({ transports })`,
      );
    return t;
  }

  /** Names of the transports this App has. */
  names(): readonly TransportName[] {
    return ["local", ...this.network];
  }

  /**
   * The transport events of `source` travel on: the first event-capable transport both sides
   * allow (zmq only with an event hub configured), else local. Local reaches only this process,
   * so when discovery spans processes (any registry but the in-memory one) and none of them can,
   * it throws rather than let events vanish: `start` (subscriptions), `subscribe` and `emit`
   * fail naming what is missing.
   */
  eventTransport(source: ServiceDescriptor): Transport {
    return this.transport(this.eventTransportName(source));
  }

  /**
   * The transports that carry events: the network ones (zmq only with an event hub), in
   * configuration order, and local last when discovery does not span processes (its Apps then
   * share the local hub, and one that has none of them publishes there).
   */
  eventCarriers(): readonly TransportName[] {
    return this.spansProcesses ? this.#carriers : [...this.#carriers, "local"];
  }

  /** The name of `eventTransport(source)` (known before the transports are open). */
  eventTransportName(source: ServiceDescriptor): TransportName {
    for (const name of this.#carriers) if (source.transports.includes(name)) return name;
    if (this.spansProcesses)
      throw noEventTransport(source, this.network, this.network.includes("zmq") && !this.#carriers.includes("zmq"));
    return "local";
  }

  /** How to reach an instance: in-process when its local endpoint is in this hub, else a shared network transport. */
  reach(info: InstanceInfo, pinned: TransportName | undefined): Omit<Target, "info"> | undefined {
    const lep = info.endpoints.local;
    const localOk = lep !== undefined && this.local.reaches(lep);
    if (pinned === "local" || (pinned === undefined && localOk)) {
      return localOk ? { transport: this.local, endpoint: lep as string, values: this.local.acceptsValues } : undefined;
    }
    for (const name of pinned === undefined ? this.network : [pinned]) {
      const ep = info.endpoints[name];
      const t = this.#transports.get(name);
      if (ep !== undefined && t !== undefined) return { transport: t, endpoint: ep, values: false };
    }
    return undefined;
  }

  /**
   * The transport and queue for pushes to `service` while no instance of it is registered
   * (call/parked.ts): the one transport among `pinned` (or else this App's network transports),
   * allowed by `allowed` (empty: any), that keeps a queue per service major; undefined when there
   * is none or more than one. A push that goes there is a warning, once a minute per queue: it
   * waits until an instance starts, and the log says where.
   */
  parked(
    service: string,
    version: string,
    pinned: TransportName | undefined,
    allowed: readonly TransportName[],
  ): Omit<Target, "info"> | undefined {
    let found: Transport | undefined;
    for (const name of pinned === undefined ? this.network : [pinned]) {
      if (allowed.length > 0 && !allowed.includes(name)) continue;
      const t = this.#transports.get(name);
      if (t?.queueEndpoint === undefined) continue;
      if (found !== undefined) return undefined;
      found = t;
    }
    if (found?.queueEndpoint === undefined) return undefined;
    const endpoint = found.queueEndpoint(service, version);
    const now = Date.now();
    const major = `v${version.split(".")[0]}`;
    const key = `${endpoint} ${major}`;
    if (now - (this.#parkedWarned.get(key) ?? Number.NEGATIVE_INFINITY) >= 60_000) {
      this.#parkedWarned.set(key, now);
      const queue = found.pushQueueName?.(endpoint) ?? endpoint;
      this.#opts.log.warn(
        { service, major, transport: found.name, queue, endpoint },
        `no instance of ${service} ${major} is registered: its pushes go to its ${found.name} queue ${queue}, to wait until one starts`,
      );
    }
    return { transport: found, endpoint, values: false };
  }
  /** When a push to each queue was last logged as parked. */
  readonly #parkedWarned = new Map<string, number>();

  /** Closes the transports and (when the App made it) discovery. */
  async close(): Promise<void> {
    await this.#opening?.catch(() => undefined);
    const all = [...this.#transports.values()];
    // Close everything even when one part fails; name each failure, then report the first.
    const results = await Promise.allSettled([
      ...all.map((t) => t.close()),
      this.#discovery !== undefined && this.#ownsDiscovery ? this.#discovery.close() : undefined,
    ]);
    results.push(...(await Promise.allSettled([this.#privateRegistry?.close()])));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    for (const f of failed) this.#opts.log.error({ err: f.reason }, "closing a transport or discovery failed");
    if (failed.length > 0) throw failed[0]?.reason;
  }

  async #open(): Promise<void> {
    const o = this.#opts;
    if (this.#discovery === undefined) {
      const spec = this.#spec;
      this.#discovery = isDiscovery(spec)
        ? spec
        : createDiscovery(spec, {
            cluster: o.cluster,
            appId: o.appId,
            log: o.log.child({ component: "discovery" }),
            ...(o.leaseTtlMs === undefined ? {} : { leaseTtlMs: o.leaseTtlMs }),
            ...(o.config === undefined ? {} : { config: o.config }),
            ...(o.etcd === undefined ? {} : { etcd: o.etcd }),
          });
    }
    for (const name of this.network) {
      if (this.#transports.has(name)) continue;
      const cfg = o.transports?.[name as Exclude<TransportName, "local">] ?? {};
      const factory = typeof cfg === "function" ? (cfg as TransportFactory) : await loadTransport(name, cfg);
      this.#transports.set(name, factory(this.#context(name)));
    }
  }

  #context(name: TransportName): TransportContext {
    return {
      cluster: this.#opts.cluster,
      log: this.#opts.log.child({ component: `transport.${name}` }),
      maxPayloadBytes: this.#opts.maxPayloadBytes ?? DEFAULT_MAX_BYTES,
      ...(this.#opts.admin === undefined ? {} : { admin: this.#opts.admin }),
      ...(this.#opts.deadLetter === undefined
        ? {}
        : { deadLetter: (service: string, method: string) => this.#opts.deadLetter?.(service, method, name) }),
    };
  }
}
