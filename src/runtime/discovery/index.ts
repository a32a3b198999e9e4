/**
 * Discovery and config: `createDiscovery` builds a registry (memory or etcd), a Directory and
 * a ConfigSource over it. Election (`campaign`) and ids (`nextId`) use the same registry.
 */
import type { Logger } from "pino";
import { pino } from "pino";
import { ObjectConfigSource, RegistryConfigSource, type ConfigObjects } from "./config.js";
import { RegistryDirectory } from "./directory.js";
import { EtcdRegistry, type EtcdRegistryOptions } from "./etcd.js";
import { MemoryRegistry, sharedMemoryRegistry } from "./memory.js";
import type { Registry } from "./registry.js";
import type { ConfigSource } from "./types.js";
import { YamlConfigSource } from "./yaml-config.js";

export { RegistryDirectory, DEFAULT_LEASE_TTL_MS } from "./directory.js";
export type { DirectoryOptions } from "./directory.js";
export { MemoryRegistry, sharedMemoryRegistry } from "./memory.js";
export type { MemoryRegistryOptions } from "./memory.js";
export { EtcdRegistry, parseEtcdSpec } from "./etcd.js";
export type { EtcdRegistryOptions } from "./etcd.js";
export { ObjectConfigSource, RegistryConfigSource } from "./config.js";
export type { ConfigObjects } from "./config.js";
export { YamlConfigSource, parseConfigText } from "./yaml-config.js";
export { liveConfig, configDecoder } from "./live-config.js";
export type { LiveConfig } from "./live-config.js";
export { campaign, leader } from "./election.js";
export type { CampaignOptions, Leadership } from "./election.js";
export { nextId } from "./ids.js";
export { builtinStrategies, fnv1a } from "./strategies.js";
export type { Strategy, PickContext } from "./strategies.js";
export type { RegisterInfo } from "./registrar.js";
export * as keys from "./keys.js";
export type { Registry, KeyValue, Lease, Watch, WatchEvent, PutOptions } from "./registry.js";
export type {
  InstanceInfo,
  Registration,
  InstanceSet,
  StrategyName,
  ResolveOptions,
  Directory,
  ConfigSource,
} from "./types.js";

/**
 * Where discovery lives: the process's memory registry (`"memory"`), an etcd cluster
 * (`"etcd://host:port[,host:port...]"`), or a Registry you built. Any string is accepted by
 * the type (it often comes from configuration) and checked at run time.
 */
export type DiscoverySpec = "memory" | `etcd://${string}` | (string & {}) | Registry;

/** Options of `createDiscovery`. */
export interface DiscoveryOptions {
  readonly cluster: string;
  /** Registration lease TTL, ms (default 5000). */
  readonly leaseTtlMs?: number;
  readonly log?: Logger;
  /** This process's app id (prefer-local); default random. */
  readonly appId?: string;
  /**
   * Where config comes from: the registry (default: `/fan/{cluster}/config/...`), a YAML file
   * path (`"settings.yml"`, watched), plain objects by service, or any ConfigSource.
   */
  readonly config?: "registry" | string | ConfigObjects | ConfigSource;
  /** Connection options of an `etcd://` spec: TLS, user and password, timeouts. */
  readonly etcd?: Omit<EtcdRegistryOptions, "log">;
}

/** What `createDiscovery` returns. */
export interface Discovery {
  readonly registry: Registry;
  readonly directory: RegistryDirectory;
  readonly config: ConfigSource;
  /** Deregisters, stops watches, and closes the registry when it was created here. */
  close(): Promise<void>;
}

/** Builds discovery and config for an App. Throws a clear error on a bad spec. */
export function createDiscovery(spec: DiscoverySpec, opts: DiscoveryOptions): Discovery {
  if (typeof opts !== "object" || opts === null || typeof opts.cluster !== "string") {
    throw new TypeError("createDiscovery: opts.cluster (a string) is required");
  }
  const log = opts.log ?? pino({ level: "silent" });
  const { registry, owned } = openRegistry(spec, log, opts.etcd);
  const directory = new RegistryDirectory(registry, {
    cluster: opts.cluster,
    log,
    ...(opts.leaseTtlMs === undefined ? {} : { leaseTtlMs: opts.leaseTtlMs }),
    ...(opts.appId === undefined ? {} : { appId: opts.appId }),
  });
  const config = openConfig(opts.config, registry, opts.cluster, log);
  let closing: Promise<void> | undefined;
  return {
    registry,
    directory,
    config,
    close: () =>
      (closing ??= (async () => {
        await Promise.allSettled([directory.close(), config.close()]);
        if (owned) await registry.close();
      })()),
  };
}

function openRegistry(
  spec: DiscoverySpec,
  log: Logger,
  etcd: Omit<EtcdRegistryOptions, "log"> | undefined,
): { registry: Registry; owned: boolean } {
  if (spec === "memory") return { registry: sharedMemoryRegistry(), owned: false };
  if (typeof spec === "string") {
    if (!spec.startsWith("etcd://"))
      throw new TypeError(
        `unknown discovery ${JSON.stringify(spec)}: expected "memory" or "etcd://host:port[,host:port...]"`,
      );
    return { registry: new EtcdRegistry(spec, { ...etcd, log }), owned: true };
  }
  if (typeof spec !== "object" || spec === null || typeof spec.list !== "function") {
    throw new TypeError('createDiscovery: spec must be "memory", "etcd://host:port[,...]" or a Registry');
  }
  return { registry: spec, owned: false };
}

function openConfig(c: DiscoveryOptions["config"], registry: Registry, cluster: string, log: Logger): ConfigSource {
  if (c === undefined || c === "registry") return new RegistryConfigSource(registry, cluster, log);
  if (typeof c === "string") return new YamlConfigSource(c, { log });
  if (isConfigSource(c)) return c;
  return new ObjectConfigSource(c, log);
}

function isConfigSource(c: object): c is ConfigSource {
  const o = c as Partial<ConfigSource>;
  return typeof o.get === "function" && typeof o.update === "function" && typeof o.watch === "function";
}

/** A fresh, private memory registry (tests that must not share the process-wide one). */
export function memoryRegistry(): MemoryRegistry {
  return new MemoryRegistry();
}
