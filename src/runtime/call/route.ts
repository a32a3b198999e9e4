/**
 * Routing of one client to one service: the instances in the discovery cache that satisfy the
 * client's version range and can be reached over a transport this App has, recomputed only
 * when the cache changes, and a strategy that picks one per call without I/O.
 */
import semver from "semver";
import type { TransportName } from "../descriptor.js";
import { builtinStrategies, type PickContext, type Strategy } from "../discovery/strategies.js";
import type { InstanceInfo, InstanceSet, StrategyName } from "../discovery/types.js";
import { Code, FanError } from "../errors.js";
import type { Transport } from "../transports/transport.js";
import { mayPark, type ParkingHost, parkingMajor, queueInfo } from "./parked.js";
import { admits, sinceFits, splitPick, tooOld, type TrafficRule } from "./versions.js";

/** Where one call goes. */
export interface Target {
  readonly info: InstanceInfo;
  readonly transport: Transport;
  readonly endpoint: string;
  /** The transport takes typed values (the unserialised local transport). */
  readonly values: boolean;
}

/** What a route needs from its App. */
export interface RouteHost extends ParkingHost {
  readonly appId: string;
  /** The transport and endpoint to reach `info` by (pinned to one transport if given). */
  reach(info: InstanceInfo, pinned: TransportName | undefined): Omit<Target, "info"> | undefined;
  /** Names of the transports this App has, for error messages. */
  transportNames(): readonly string[];
  /** In-flight calls from this App to an instance (power-of-two-choices). */
  inFlight(instanceId: string): number;
}

/** Options of a route (from `app.client(def, opts)`). */
export interface RouteOptions {
  readonly range?: string;
  readonly strategy?: StrategyName;
  readonly transport?: TransportName;
  /** The operator's live traffic rule of the service (`fanc route`; `call/versions.ts`). */
  readonly traffic?: ServiceTraffic;
  /**
   * Pushes while no instance is registered (call/parked.ts): the version of the client's
   * generated code and the transports the service allows. Without it, such a push is refused.
   */
  readonly parking?: { readonly version: string; readonly transports: readonly TransportName[] };
}

/** One service's traffic rule, as the App follows it. */
export interface ServiceTraffic {
  current(): TrafficRule | undefined;
  onChange(fn: () => void): () => void;
}

/** Validates a semver range, or throws INVALID_ARGUMENT naming it. */
export function checkRange(range: string | undefined): string | undefined {
  if (range === undefined || range === "" || range === "*") return undefined;
  const r = semver.validRange(range);
  if (r === null)
    throw new FanError(Code.INVALID_ARGUMENT, `invalid version range ${JSON.stringify(range)}`, { details: { range } });
  return r;
}

/** The member a call is for, when it matters to the pick (`@since`; a push may be parked). */
export interface Member {
  readonly name: string;
  readonly since?: string;
  readonly kind?: "rpc" | "push";
  readonly shard?: unknown;
}

/** The instances of one service a client may call, and the pick. */
export class Route {
  readonly #host: RouteHost;
  readonly #set: InstanceSet;
  readonly #service: string;
  readonly #range: string | undefined;
  /** The range as the caller wrote it (`2.x`, `^2`), for messages: semver's form is `>=2.0.0 <3.0.0-0`. */
  readonly #rangeText: string | undefined;
  readonly #strategy: Strategy;
  readonly #pinned: TransportName | undefined;
  readonly #ctx: {
    appId: string;
    inFlight: (id: string) => number;
    cursor: { n: number };
    shardKey: string | undefined;
  };
  #infos: InstanceInfo[] | undefined;
  /** prefer-local: the candidates served by this App (empty when none). */
  #locals: Target[] = [];
  readonly #preferLocal: boolean;
  #targets = new Map<InstanceInfo, Target>();
  #list: readonly Target[] = [];
  readonly #traffic: ServiceTraffic | undefined;
  /** The rule in force at the last refresh. */
  #rule: TrafficRule | undefined;
  readonly #parking: RouteOptions["parking"];
  /** Removes this route's listeners from the instance set and the traffic rule (`close`). */
  readonly #off: (() => void)[] = [];

  constructor(host: RouteHost, set: InstanceSet, service: string, opts: RouteOptions) {
    this.#host = host;
    this.#set = set;
    this.#service = service;
    this.#range = checkRange(opts.range);
    this.#rangeText = this.#range === undefined ? undefined : opts.range;
    const strategy = builtinStrategies[opts.strategy ?? "prefer-local"];
    if (strategy === undefined)
      throw new FanError(Code.INVALID_ARGUMENT, `unknown resolution strategy ${JSON.stringify(opts.strategy)}`);
    this.#strategy = strategy;
    this.#preferLocal = (opts.strategy ?? "prefer-local") === "prefer-local";
    this.#pinned = opts.transport;
    this.#parking = opts.parking;
    this.#ctx = { appId: host.appId, inFlight: (id) => host.inFlight(id), cursor: { n: 0 }, shardKey: undefined };
    this.#off.push(
      set.onChange(() => {
        this.#infos = undefined;
      }),
    );
    this.#traffic = opts.traffic;
    this.#rule = opts.traffic?.current();
    const offRule = opts.traffic?.onChange(() => {
      this.#infos = undefined;
      this.#rule = this.#traffic?.current();
    });
    if (offRule !== undefined) this.#off.push(offRule);
  }

  /**
   * Stops following the instance set and the traffic rule (the set is the App's, shared by
   * every route of the service): a route no call uses any more (its client released) leaves
   * nothing behind. Picks after this may see a stale set.
   */
  close(): void {
    for (const off of this.#off.splice(0)) off();
  }

  /** Picks the target of one call; throws UNAVAILABLE naming what is missing. */
  pick(shardKey: string | undefined, pinned: TransportName | undefined, member?: Member): Target {
    if (pinned !== undefined && pinned !== this.#pinned) return this.#pickPinned(shardKey, pinned, member) as Target;
    if (this.#infos === undefined) this.#refresh();
    const infos = this.#infos as InstanceInfo[];
    if (infos.length === 0) return this.#parkedOr(this.#pinned, member) as Target;
    if (member?.since !== undefined || (this.#rule !== undefined && "split" in this.#rule)) {
      const info = this.#choose(infos, shardKey, member);
      return this.#targets.get(info) as Target;
    }
    const locals = this.#locals;
    if (this.#preferLocal && locals.length > 0) return locals[this.#ctx.cursor.n++ % locals.length] as Target;
    this.#ctx.shardKey = shardKey;
    return this.#targets.get(this.#strategy(infos, this.#ctx as PickContext)) as Target;
  }

  /** Every target of this route (pinned to a transport if given): where a failover may go. */
  targets(pinned: TransportName | undefined, member?: Member): readonly Target[] {
    let list: readonly Target[];
    if (pinned !== undefined && pinned !== this.#pinned) list = this.#pinnedTargets(pinned);
    else {
      if (this.#infos === undefined) this.#refresh();
      list = this.#list;
    }
    const since = member?.since;
    // Only failover and pushes with `@since` pay for the filter (a rare path).
    return since === undefined ? list : list.filter((t) => sinceFits(since, t.info));
  }

  /**
   * `pick` among the candidates `skip` does not reject (the policy layer skips instances whose
   * circuit breaker is open, and those a retry already tried): undefined when it rejects them
   * all; still throws UNAVAILABLE when there is no candidate at all.
   */
  pickWhere(
    shardKey: string | undefined,
    pinned: TransportName | undefined,
    skip: (target: Target) => boolean,
    member?: Member,
  ): Target | undefined {
    if (pinned !== undefined && pinned !== this.#pinned) return this.#pickPinned(shardKey, pinned, member, skip);
    if (this.#infos === undefined) this.#refresh();
    const infos = this.#infos as InstanceInfo[];
    if (infos.length === 0) return this.#parkedOr(this.#pinned, member, skip);
    const targets = this.#targets;
    // `@since` first, over every candidate (UNIMPLEMENTED only when none is new enough), then
    // the skipped ones: a retry or an open breaker must not turn into UNIMPLEMENTED.
    const since = member?.since;
    const fitting = since === undefined ? infos : this.#newEnough(infos, since, member as Member);
    const left = fitting.filter((i) => !skip(targets.get(i) as Target));
    if (since !== undefined || (this.#rule !== undefined && "split" in this.#rule)) {
      if (left.length === 0) return undefined;
      return this.#targets.get(this.#choose(left, shardKey, member)) as Target;
    }
    if (this.#preferLocal) {
      const locals = this.#locals.filter((t) => !skip(t));
      if (locals.length > 0) return locals[this.#ctx.cursor.n++ % locals.length] as Target;
    }
    if (left.length === 0) return undefined;
    this.#ctx.shardKey = shardKey;
    return this.#targets.get(this.#strategy(left, this.#ctx as PickContext)) as Target;
  }

  #pinnedTargets(pinned: TransportName): Target[] {
    const targets: Target[] = [];
    for (const info of this.#set.instances()) {
      if (!this.#fits(info)) continue;
      const reach = this.#host.reach(info, pinned);
      if (reach !== undefined) targets.push({ info, ...reach });
    }
    return targets;
  }

  #pickPinned(
    shardKey: string | undefined,
    pinned: TransportName,
    member: Member | undefined,
    skip?: (target: Target) => boolean,
  ): Target | undefined {
    let targets = this.#pinnedTargets(pinned);
    if (targets.length === 0) return this.#parkedOr(pinned, member, skip);
    const since = member?.since;
    if (since !== undefined && skip !== undefined) {
      const fitting = new Set(
        this.#newEnough(
          targets.map((t) => t.info),
          since,
          member as Member,
        ),
      );
      targets = targets.filter((t) => fitting.has(t.info));
    }
    if (skip !== undefined) targets = targets.filter((t) => !skip(t));
    if (targets.length === 0) return undefined;
    const info = this.#choose(
      targets.map((t) => t.info),
      shardKey,
      member,
    );
    return targets.find((t) => t.info === info) as Target;
  }

  /**
   * No instance fits: a push that can wait in its service's queue goes there (call/parked.ts;
   * undefined when `skip` rejects the queue, as an open breaker does), anything else is refused
   * with UNAVAILABLE naming what is missing.
   */
  #parkedOr(
    pinned: TransportName | undefined,
    member: Member | undefined,
    skip?: (t: Target) => boolean,
  ): Target | undefined {
    const parking = this.#parking;
    if (parking === undefined || member?.kind !== "push" || member.shard !== undefined || member.since !== undefined)
      throw this.#unavailable(pinned);
    const major = parkingMajor(this.#range, this.#rule, parking.version);
    // An instance the push could be meant for is registered (of that major; any, for a client of
    // any version) but this route cannot use it (its version, the traffic rule, no common
    // transport): that is a refusal, not an outage.
    if (major !== undefined && !mayPark(this.#range, major, this.#set.instances())) throw this.#unavailable(pinned);
    const reach =
      major === undefined ? undefined : this.#host.parked?.(this.#service, `${major}.0.0`, pinned, parking.transports);
    if (major === undefined || reach === undefined) throw this.#unavailable(pinned, true);
    const name = reach.transport.name;
    const target = { info: queueInfo(this.#service, `${major}.0.0`, name, reach.endpoint), ...reach };
    return skip?.(target) === true ? undefined : target;
  }

  /** The instances new enough for `member`'s `@since`; none: UNIMPLEMENTED naming what is there. */
  #newEnough(infos: readonly InstanceInfo[], since: string, member: Member): InstanceInfo[] {
    const list = infos.filter((i) => sinceFits(since, i));
    if (list.length === 0)
      throw tooOld(
        this.#service,
        member.name,
        since,
        infos.map((i) => i.version),
      );
    return list;
  }

  /** The strategy's pick among `infos` after `@since` and a traffic split (none fits: UNIMPLEMENTED). */
  #choose(infos: readonly InstanceInfo[], shardKey: string | undefined, member: Member | undefined): InstanceInfo {
    const since = member?.since;
    let list = since === undefined ? infos : this.#newEnough(infos, since, member as Member);
    const rule = this.#rule;
    if (rule !== undefined && "split" in rule) {
      const groups = new Map<string, InstanceInfo[]>();
      for (const i of list) groups.set(i.version, [...(groups.get(i.version) ?? []), i]);
      list = splitPick(rule, groups) ?? list;
    }
    const ctx = { ...this.#ctx, shardKey } as PickContext;
    return this.#strategy(list, ctx);
  }

  #refresh(): void {
    const infos: InstanceInfo[] = [];
    const targets = new Map<InstanceInfo, Target>();
    for (const info of this.#set.instances()) {
      if (!this.#fits(info)) continue;
      const reach = this.#host.reach(info, this.#pinned);
      if (reach === undefined) continue;
      infos.push(info);
      targets.set(info, { info, ...reach });
    }
    this.#infos = infos;
    this.#targets = targets;
    this.#list = [...targets.values()];
    this.#locals = [...targets.values()].filter((t) => t.info.appId === this.#host.appId);
  }

  /** Every registered instance that fits the version range, reachable or not (shard ownership). */
  fitting(): InstanceInfo[] {
    return this.#set.instances().filter((i) => this.#fits(i));
  }

  /** How to reach `info` (pinned to one transport if given), or undefined when this App cannot. */
  targetOf(info: InstanceInfo, pinned: TransportName | undefined): Target | undefined {
    const known = pinned === undefined || pinned === this.#pinned ? this.#targets.get(info) : undefined;
    if (known !== undefined) return known;
    const reach = this.#host.reach(info, pinned ?? this.#pinned);
    return reach === undefined ? undefined : { info, ...reach };
  }

  /** Calls `fn` after every change of the instance set or of the traffic rule. */
  onChange(fn: () => void): () => void {
    const offSet = this.#set.onChange(fn);
    const offRule = this.#traffic?.onChange(fn);
    return () => {
      offSet();
      offRule?.();
    };
  }

  #fits(info: InstanceInfo): boolean {
    return (this.#range === undefined || semver.satisfies(info.version, this.#range)) && admits(this.#rule, info);
  }

  #unavailable(pinned: TransportName | undefined, unparked = false): FanError {
    const all = this.#set.instances();
    const rule = this.#rule;
    const ruled = rule === undefined ? "" : ` under the traffic rule ${JSON.stringify(rule)} (fanc route show)`;
    const wanted = `${this.#service}${this.#rangeText === undefined ? "" : ` ${this.#rangeText}`}${ruled}`;
    let why: string;
    if (all.length === 0) why = "no instance is registered";
    else {
      const fitting = all.filter((i) => this.#fits(i));
      if (fitting.length === 0)
        why = `versions available: ${[...new Set(all.map((i) => i.version))].sort(semver.compare).join(", ")}`;
      else {
        const offered = [...new Set(fitting.flatMap((i) => Object.keys(i.endpoints)))].sort().join(", ");
        const mine = this.#host.transportNames();
        why =
          pinned !== undefined && !mine.includes(pinned)
            ? `the call is pinned to ${pinned}, which this app does not have (it has ${mine.join(", ")})`
            : `no common transport: instances offer ${offered || "none"}, this app ${pinned === undefined ? `has ${mine.join(", ")}` : `is pinned to ${pinned}`}`;
      }
    }
    // A push that could have waited in a queue, but not knowing which one.
    if (unparked)
      why += `; a push waits in its service's queue only when the client names one major and one of amqp, redis or nats (app.client(def, { transport }))`;
    return new FanError(Code.UNAVAILABLE, `no instance of ${wanted} (${why})`, {
      details: { service: this.#service, range: this.#rangeText ?? "*" },
    });
  }
}
