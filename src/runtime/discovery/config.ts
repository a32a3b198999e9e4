/**
 * Config sources that hand out raw (wire-form) config objects and change notifications; the
 * App validates them against the IDL's config schema. `update` is a JSON Merge Patch at the
 * top level: each key of the patch replaces that key, `null` deletes it.
 *
 * - `ObjectConfigSource`: a plain object per service, in memory.
 * - `RegistryConfigSource`: one registry key per top-level config key under
 *   `/fan/{cluster}/config/{service}/{key}` (JSON value), watched, so `etcdctl put` works too.
 */
import type { Logger } from "pino";
import { pino } from "pino";
import { editDistance } from "../../util/edit-distance.js";
import { checkSegment, configPrefix, configRoot } from "./keys.js";
import type { KeyValue, Registry, Watch, WatchEvent } from "./registry.js";
import type { ConfigSource } from "./types.js";

/** Raw config objects by service name. */
export type ConfigObjects = Record<string, Record<string, unknown>>;

type Listener = (raw: Record<string, unknown>) => void;

/** Keeps listeners per service and calls them safely. */
class Listeners {
  private readonly byService = new Map<string, Set<Listener>>();

  constructor(private readonly log: Logger) {}

  add(service: string, fn: Listener): () => void {
    let set = this.byService.get(service);
    if (set === undefined) {
      set = new Set();
      this.byService.set(service, set);
    }
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.byService.delete(service);
    };
  }

  count(service: string): number {
    return this.byService.get(service)?.size ?? 0;
  }

  emit(service: string, raw: Record<string, unknown>): void {
    for (const fn of this.byService.get(service) ?? []) {
      try {
        fn(structuredClone(raw));
      } catch (e) {
        this.log.error({ err: e, targetService: service }, "config listener threw");
      }
    }
  }

  clear(): void {
    this.byService.clear();
  }
}

/** Throws a clear error when a patch is not a plain object of JSON values. */
export function checkPatch(service: string, patch: unknown): Record<string, unknown> {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) {
    throw new TypeError(`config update of ${service}: the patch must be an object`);
  }
  for (const k of Object.keys(patch)) {
    if (k === "__proto__" || k === "constructor" || k === "prototype")
      throw new TypeError(`config update of ${service}: key ${k} is not allowed`);
  }
  try {
    JSON.stringify(patch);
  } catch (e) {
    throw new TypeError(`config update of ${service}: the patch is not JSON-serialisable (${(e as Error).message})`);
  }
  return patch as Record<string, unknown>;
}

/** Applies a top-level merge patch (null deletes) and returns the new object. */
export function mergeTop(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = structuredClone(v);
  }
  return out;
}

/** A ConfigSource over plain objects (the embedded default for tests and examples). */
export class ObjectConfigSource implements ConfigSource {
  private readonly data = new Map<string, Record<string, unknown>>();
  private readonly listeners: Listeners;

  constructor(initial: ConfigObjects = {}, log?: Logger) {
    this.listeners = new Listeners(log ?? pino({ level: "silent" }));
    if (typeof initial !== "object" || initial === null)
      throw new TypeError("config objects must be an object of service name to config");
    for (const [service, raw] of Object.entries(initial))
      this.data.set(service, structuredClone(checkPatch(service, raw)));
  }

  async get(service: string): Promise<Record<string, unknown>> {
    return structuredClone(this.data.get(service) ?? {});
  }

  async update(service: string, patch: Record<string, unknown>): Promise<void> {
    const next = mergeTop(this.data.get(service) ?? {}, checkPatch(service, patch));
    this.data.set(service, next);
    this.listeners.emit(service, next);
  }

  /** Replaces a service's whole config (as a file reload does). */
  async replace(service: string, raw: Record<string, unknown>): Promise<void> {
    this.data.set(service, structuredClone(checkPatch(service, raw)));
    this.listeners.emit(service, this.data.get(service)!);
  }

  async watch(service: string, fn: (raw: Record<string, unknown>) => void): Promise<() => Promise<void>> {
    const off = this.listeners.add(service, fn);
    return async () => void off();
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}

/** A ConfigSource over a Registry (etcd or memory): one key per top-level config key. */
export class RegistryConfigSource implements ConfigSource {
  private readonly listeners: Listeners;
  private readonly watches = new Map<string, { watch: Promise<Watch>; cache: Map<string, KeyValue> }>();
  private readonly log: Logger;

  constructor(
    private readonly registry: Registry,
    private readonly cluster: string,
    log?: Logger,
  ) {
    this.log = log ?? pino({ level: "silent" });
    this.listeners = new Listeners(this.log);
    configPrefix(cluster, "x");
  }

  async get(service: string): Promise<Record<string, unknown>> {
    const prefix = configPrefix(this.cluster, service);
    const { items } = await this.registry.list(prefix);
    return assemble(prefix, items, this.log);
  }

  /**
   * `cluster dev has no config for shop.catalog.Catalog ...; it has config for: Catalog; did you
   * mean Catalog? ...`: the services the cluster holds config for, and the one likely meant
   * (an `etcdctl put` under the short name or a typo, config left under the service's old package).
   */
  async absence(service: string): Promise<string | undefined> {
    const root = configRoot(this.cluster);
    const held = await this.#held();
    if (held.has(service)) return undefined;
    const head = `cluster ${this.cluster} has no config for ${service} (its keys are ${root}<service's full name>/<key>)`;
    if (held.size === 0) return `${head}; it has config for no service`;
    const meant = likelySection(service, [...held]);
    const hint =
      meant === undefined ? "" : `; did you mean ${meant}? Move its keys to ${configPrefix(this.cluster, service)}`;
    return `${head}; it has config for: ${[...held].sort().join(", ")}${hint}`;
  }

  /** `absence`, when the cluster holds config under a name likely meant for `service`. */
  async misplaced(service: string): Promise<string | undefined> {
    const held = await this.#held();
    return held.has(service) || likelySection(service, [...held]) === undefined ? undefined : this.absence(service);
  }

  /** The services the cluster holds config for. */
  async #held(): Promise<Set<string>> {
    const root = configRoot(this.cluster);
    const { items } = await this.registry.list(root);
    return new Set(items.map((kv) => kv.key.slice(root.length, kv.key.indexOf("/", root.length))));
  }

  /** Writes the patch's keys in one transaction (where the registry has them): services see the whole change at once. */
  async update(service: string, patch: Record<string, unknown>): Promise<void> {
    const prefix = configPrefix(this.cluster, service);
    const writes = Object.entries(checkPatch(service, patch)).map(([k, v]) => {
      checkSegment("config key", k);
      return { key: prefix + k, value: v === null ? null : JSON.stringify(v) };
    });
    if (this.registry.writeAll !== undefined) return this.registry.writeAll(writes);
    for (const w of writes) {
      if (w.value === null) await this.registry.delete(w.key);
      else await this.registry.put(w.key, w.value);
    }
  }

  /** Deletes every key of a service's config, then writes `raw` (what `fanc config push` does). */
  async replace(service: string, raw: Record<string, unknown>): Promise<void> {
    const current = await this.get(service);
    const patch: Record<string, unknown> = { ...checkPatch(service, raw) };
    for (const k of Object.keys(current)) if (!(k in patch)) patch[k] = null;
    await this.update(service, patch);
  }

  async watch(service: string, fn: (raw: Record<string, unknown>) => void): Promise<() => Promise<void>> {
    const off = this.listeners.add(service, fn);
    try {
      await this.ensureWatch(service);
    } catch (e) {
      off();
      throw e;
    }
    return async () => {
      off();
      if (this.listeners.count(service) === 0) await this.dropWatch(service);
    };
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await Promise.allSettled([...this.watches.keys()].map((s) => this.dropWatch(s)));
  }

  private async ensureWatch(service: string): Promise<void> {
    const existing = this.watches.get(service);
    if (existing !== undefined) {
      await existing.watch;
      return;
    }
    const prefix = configPrefix(this.cluster, service);
    const cache = new Map<string, KeyValue>();
    const entry = { watch: this.startWatch(service, prefix, cache), cache };
    this.watches.set(service, entry);
    entry.watch.catch(() => this.watches.delete(service));
    await entry.watch;
  }

  private async startWatch(service: string, prefix: string, cache: Map<string, KeyValue>): Promise<Watch> {
    const { items, revision } = await this.registry.list(prefix);
    cache.clear();
    for (const kv of items) cache.set(kv.key, kv);
    return this.registry.watch(prefix, revision, (ev) => this.onEvent(service, prefix, cache, ev));
  }

  private onEvent(service: string, prefix: string, cache: Map<string, KeyValue>, ev: WatchEvent): void {
    if (ev.type === "reset") {
      const entry = this.watches.get(service);
      if (entry === undefined) return;
      entry.watch = this.startWatch(service, prefix, cache).then((w) => {
        this.listeners.emit(service, assemble(prefix, [...cache.values()], this.log));
        return w;
      });
      entry.watch.catch((e: unknown) => this.log.error({ err: e, targetService: service }, "config re-list failed"));
      return;
    }
    if (ev.type === "put") cache.set(ev.kv.key, ev.kv);
    else cache.delete(ev.key);
    // The events of one write (a transaction's keys arrive together) make one change.
    if (this.emitting.has(service)) return;
    this.emitting.add(service);
    queueMicrotask(() => {
      this.emitting.delete(service);
      if (this.watches.has(service)) this.listeners.emit(service, assemble(prefix, [...cache.values()], this.log));
    });
  }

  /** Services with a change waiting for the end of the current batch of watch events. */
  private readonly emitting = new Set<string>();

  private async dropWatch(service: string): Promise<void> {
    const entry = this.watches.get(service);
    if (entry === undefined) return;
    this.watches.delete(service);
    await (await entry.watch.catch(() => undefined))?.close();
  }
}

/** Builds the raw config object from the keys under a service's prefix (nested keys nest). */
export function assemble(prefix: string, items: readonly KeyValue[], log: Logger): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of [...items].sort((a, b) => (a.key < b.key ? -1 : 1))) {
    let value: unknown;
    try {
      value = JSON.parse(kv.value);
    } catch {
      value = kv.value; // a plain `etcdctl put` of a bare string
    }
    const path = kv.key
      .slice(prefix.length)
      .split("/")
      .filter((s) => s !== "");
    if (path.some((p) => p === "__proto__" || p === "constructor" || p === "prototype")) {
      log.warn({ key: kv.key }, "config: ignoring a key with a forbidden name");
      continue;
    }
    setPath(out, path, value);
  }
  return out;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const seg of path.slice(0, -1)) {
    const next = node[seg];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[seg] = {};
    node = node[seg] as Record<string, unknown>;
  }
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}

/**
 * The section (a service name config is kept under) most likely written for `service`: its
 * short name (any case), else the closest (another package, a typo); undefined when none is close.
 */
export function likelySection(service: string, sections: readonly string[]): string | undefined {
  const short = (name: string): string => name.slice(name.lastIndexOf(".") + 1).toLowerCase();
  const same = sections.find((x) => short(x) === short(service));
  if (same !== undefined) return same;
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const x of sections) {
    const score = Math.min(editDistance(x, service), editDistance(short(x), short(service)));
    if (score < bestScore) [best, bestScore] = [x, score];
  }
  return bestScore <= Math.max(1, Math.floor(short(service).length / 3)) ? best : undefined;
}
