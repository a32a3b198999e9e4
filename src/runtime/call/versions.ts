/**
 * Version routing: the default range of a generated client (its own major), `@since` members
 * (never sent to an older instance), and the live traffic rules operators set with
 * `fanc route`: pin a service to a version or range, or split its traffic by weights between
 * versions. Rules live in the registry under `/fan/{cluster}/routes/{service}` as JSON
 * (`{"pin":"2.0.3"}` or `{"split":{"2.1.0":10,"2.0.3":90}}`); every App watches the prefix
 * and applies a change to its next call.
 */
import type { Logger } from "pino";
import semver from "semver";
import { clusterPrefix } from "../discovery/keys.js";
import type { Registry, Watch } from "../discovery/registry.js";
import type { InstanceInfo } from "../discovery/types.js";
import { Code, FanError } from "../errors.js";

/** An operator's traffic rule for one service. */
export type TrafficRule = { readonly pin: string } | { readonly split: Readonly<Record<string, number>> };

/** `/fan/{cluster}/routes/` */
export function routesRoot(cluster: string): string {
  return `${clusterPrefix(cluster)}routes/`;
}

/**
 * The default range of a client generated at `version`, the one place it is derived (calls,
 * states, `fanc call` and `fanc watch`): the major's releases (`2.x`), and at a prerelease also
 * that one and the later prereleases of its version (`2.x || >=2.0.0-beta.1 <2.0.0`: beta.2 and
 * rc.1, not 2.1.0-beta.1 nor 3.0.0-alpha), since `2.x` alone admits no prerelease (semver) and a
 * client must reach the version it was generated from. Every set stays within the major, so a
 * push may still wait in the major's queue (call/parked.ts).
 */
export function majorRange(version: string): string {
  const v = semver.parse(version);
  if (v === null) throw new FanError(Code.INVALID_ARGUMENT, `invalid version ${JSON.stringify(version)}`);
  const whole = `${v.major}.x`;
  return v.prerelease.length === 0 ? whole : `${whole} || >=${v.version} <${v.major}.${v.minor}.${v.patch}`;
}

/** Parses and checks a rule; throws INVALID_ARGUMENT saying what is wrong. */
export function parseRule(value: unknown): TrafficRule {
  const bad = (why: string): FanError => new FanError(Code.INVALID_ARGUMENT, `invalid traffic rule: ${why}`);
  const o = typeof value === "string" ? (JSON.parse(value) as unknown) : value;
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw bad("not an object");
  const r = o as Record<string, unknown>;
  if (typeof r.pin === "string") {
    if (semver.validRange(r.pin) === null) throw bad(`pin ${JSON.stringify(r.pin)} is not a version or range`);
    return { pin: r.pin };
  }
  if (typeof r.split === "object" && r.split !== null && !Array.isArray(r.split)) {
    const split = r.split as Record<string, unknown>;
    const entries = Object.entries(split);
    if (entries.length === 0) throw bad("split names no version");
    for (const [v, w] of entries) {
      if (semver.valid(v) === null) throw bad(`split version ${JSON.stringify(v)} is not a version`);
      if (typeof w !== "number" || !Number.isFinite(w) || w < 0) throw bad(`weight of ${v} is not a number >= 0`);
    }
    if (entries.every(([, w]) => w === 0)) throw bad("every weight is 0");
    return { split: split as Record<string, number> };
  }
  throw bad('expected {"pin": "<version or range>"} or {"split": {"<version>": <weight>, ...}}');
}

/** True when an instance may take calls under `rule` (a split admits only the versions it names). */
export function admits(rule: TrafficRule | undefined, info: InstanceInfo): boolean {
  if (rule === undefined) return true;
  if ("pin" in rule) return semver.satisfies(info.version, rule.pin);
  return (rule.split[info.version] ?? 0) > 0;
}

/**
 * Picks the version group of one call under a split: weights of the versions present,
 * renormalised. `groups` maps version → its candidates.
 */
export function splitPick(
  rule: { readonly split: Readonly<Record<string, number>> },
  groups: ReadonlyMap<string, readonly InstanceInfo[]>,
): readonly InstanceInfo[] | undefined {
  let total = 0;
  for (const v of groups.keys()) total += rule.split[v] ?? 0;
  if (total <= 0) return undefined;
  let x = Math.random() * total;
  for (const [v, list] of groups) {
    x -= rule.split[v] ?? 0;
    if (x < 0) return list;
  }
  return [...groups.values()].at(-1);
}

/** Candidates a `@since` member may be sent to. */
export function sinceFits(since: string | undefined, info: InstanceInfo): boolean {
  return since === undefined || semver.gte(info.version, since);
}

/** UNIMPLEMENTED naming the member, the version it needs and the versions there are. */
export function tooOld(service: string, member: string, since: string, versions: readonly string[]): FanError {
  const there = [...new Set(versions)].sort(semver.compare);
  return new FanError(
    Code.UNIMPLEMENTED,
    `${service}.${member} needs version ${since} or later; the instances this client may call run ${there.join(", ") || "none"}`,
    { details: { service, member, since, versions: there } },
  );
}

/** The traffic rules of one cluster, followed live (one list and one watch per App). */
export class TrafficRules {
  readonly #registry: Registry;
  readonly #root: string;
  readonly #log: Logger;
  readonly #rules = new Map<string, TrafficRule>();
  readonly #listeners = new Map<string, Set<() => void>>();
  #watch: Watch | undefined;
  #opening: Promise<void> | undefined;

  constructor(registry: Registry, cluster: string, log: Logger) {
    this.#registry = registry;
    this.#root = routesRoot(cluster);
    this.#log = log;
  }

  /** Lists the rules and starts the watch (once). */
  open(): Promise<void> {
    this.#opening ??= (async () => {
      const { items, revision } = await this.#registry.list(this.#root);
      for (const kv of items) this.#set(kv.key, kv.value);
      this.#watch = await this.#registry.watch(this.#root, revision, (ev) => {
        if (ev.type === "put") this.#set(ev.kv.key, ev.kv.value);
        else if (ev.type === "delete") this.#delete(ev.key);
        else void this.#relist();
      });
    })();
    return this.#opening;
  }

  /** The rule in force for `service`. */
  rule(service: string): TrafficRule | undefined {
    return this.#rules.get(service);
  }

  /** Calls `fn` whenever `service`'s rule changes. */
  onChange(service: string, fn: () => void): () => void {
    let set = this.#listeners.get(service);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(service, set);
    }
    set.add(fn);
    return () => set.delete(fn);
  }

  async close(): Promise<void> {
    await this.#opening?.catch(() => undefined);
    await this.#watch?.close();
    this.#watch = undefined;
  }

  async #relist(): Promise<void> {
    const { items } = await this.#registry.list(this.#root);
    const seen = new Set<string>();
    for (const kv of items) seen.add(this.#set(kv.key, kv.value));
    for (const s of [...this.#rules.keys()]) if (!seen.has(s)) this.#delete(this.#root + s);
  }

  #set(key: string, value: string): string {
    const service = key.slice(this.#root.length);
    try {
      this.#rules.set(service, parseRule(value));
      this.#log.info({ service, rule: value }, "traffic rule applied");
    } catch (e) {
      this.#log.warn({ service, rule: value, err: (e as Error).message }, "ignoring an invalid traffic rule");
      this.#rules.delete(service);
    }
    this.#fire(service);
    return service;
  }

  #delete(key: string): void {
    const service = key.slice(this.#root.length);
    if (!this.#rules.delete(service)) return;
    this.#log.info({ service }, "traffic rule cleared");
    this.#fire(service);
  }

  #fire(service: string): void {
    for (const fn of this.#listeners.get(service) ?? []) fn();
  }
}
