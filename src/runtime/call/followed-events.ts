/**
 * A served instance's `on X.event` subscription (and a client's `events.x.subscribe`, and a
 * state watch's subscription to its owner's updates, `states/app-states.ts`), on every
 * transport X's publishers may emit on.
 * Before the instance registers it subscribes on every transport this App carries events on
 * that X allows (`FollowHost.eventCarriers`; local among them when discovery is in one
 * process), its own event transport for X first: a publisher that registers later and emits at
 * once (in its `postStart`) finds the subscription there, whichever of them it publishes on.
 * It then reads from discovery where X's registered instances publish (`InstanceInfo.events`;
 * for a record without it, local in one process, else the first broker in its endpoints) and
 * subscribes on any such transport this App carries events on that it has not yet (a publisher
 * whose IDL allows one this App's does not); a publisher on a transport this App does not carry
 * events on is a warning naming the subscriber, the event and both sides' transports, since
 * nothing it publishes can reach this instance. docs/decisions.md says why.
 */
import type { Logger } from "pino";
import type { ServiceDescriptor, TransportName } from "../descriptor.js";
import type { Directory, InstanceInfo } from "../discovery/types.js";
import { untilAborted } from "../transports/abort.js";
import type { Envelope, EventSubscription, Transport, Unsubscribe } from "../transports/transport.js";

/** Transports that can carry events between processes (zmq only with an event hub). */
const CARRIES_EVENTS: ReadonlySet<string> = new Set(["amqp", "redis", "nats", "zmq"]);

/** Transports that carry events whenever an App has them: a record's endpoints on one of them say where it publishes. */
const BROKERS: ReadonlySet<string> = new Set(["amqp", "redis", "nats"]);

/** How many instance ids a warning names before "and N more". */
const NAMED = 5;

/** How a followed subscription is named in its logs, where it subscribes and whom it follows. */
export interface FollowOptions {
  /** What it receives, as its logs name it (default `X.event`), and the pronoun for it (default "it"). */
  readonly what?: { readonly noun: string; readonly it: string };
  /** Its path on each transport (default the transport itself; state updates take `volatile`). */
  readonly path?: (t: Transport) => Pick<Transport, "subscribe">;
  /** The registered instances it follows (default every instance of X; a state watch, those of its major). */
  readonly follows?: (i: InstanceInfo) => boolean;
  /**
   * The publishers' transports it cannot subscribe on that were warned about, shared by the
   * subscriptions given the same object: a state watch subscribes again after each silence of
   * its owner, and its views of the same state (the shards of a watchAll) are many; it is said
   * once, not at each resubscription or by each view.
   */
  readonly warned?: { unreachable: ReadonlySet<TransportName> };
  /**
   * The transports it subscribes on before it looks at discovery, in order (default: the App's
   * event transport for X, then every other carrier X allows). `fanc subscribe` and `fanc watch`,
   * which open every broker but connect to one only when they subscribe there, give the one X's
   * instances publish on: a broker nobody publishes on is not asked for.
   */
  readonly upfront?: readonly TransportName[];
  /**
   * What a warning says of a publishers' transport `t` it cannot subscribe on, and what would fix
   * it; `has`: the App has `t` but it carries no events (default: about the App's transports).
   */
  readonly lacking?: (t: TransportName, has: boolean) => string;
}

/** What a followed subscription needs from its App. */
export interface FollowHost {
  /** Aborted when the App begins to stop: a subscription under way is given up. */
  readonly stopping: AbortSignal;
  /** The App's event transport for `source`; throws when none carries events across processes. */
  eventTransport(source: ServiceDescriptor): Transport;
  /**
   * The App's transports that carry events, in its order (zmq only with an event hub), and
   * local last when discovery does not span processes (its Apps share the local hub).
   */
  eventCarriers(): readonly TransportName[];
  /** The App's transport `name`; throws when it has none. */
  transport(name: TransportName): Transport;
  directory(): Pick<Directory, "watch">;
}

/**
 * The transport `info`'s App publishes `service`'s events on: its recorded `events`. A record
 * without it is, when discovery is in one process (`inProcess`), of an App that carries them on
 * local (it records only network transports); else of an older version, and the first broker in
 * its endpoints that the service allows is where it publishes (not zmq: whether its zmq has an
 * event hub is not recorded); undefined when none says (it cannot publish across processes).
 */
export function publishedOn(
  service: ServiceDescriptor,
  info: InstanceInfo,
  inProcess = false,
): TransportName | undefined {
  if (info.events !== undefined) return CARRIES_EVENTS.has(info.events) ? info.events : undefined;
  if (inProcess) return "local";
  return (Object.keys(info.endpoints) as TransportName[]).find((t) => BROKERS.has(t) && service.transports.includes(t));
}

/**
 * Subscribes `sub` on every transport of the App that carries its source's events, its own
 * event transport first, and on any other one its publishers are registered on; resolves once
 * those are subscribed (a failure then fails the start). Later failures are logged as errors and
 * tried again at the next change in discovery. `subscriber` is who subscribes, as warnings name
 * it: the subscribing service, a client subscription, a state watch.
 */
export async function followedSubscription(
  host: FollowHost,
  sub: EventSubscription,
  deliver: (env: Envelope, via: TransportName) => Promise<void>,
  log: Logger,
  subscriber: string = sub.group,
  opts: FollowOptions = {},
): Promise<Unsubscribe> {
  const f = new Followed(host, sub, deliver, log, subscriber, opts);
  try {
    await f.start();
  } catch (e) {
    await f.close();
    throw e;
  }
  return f;
}

class Followed implements Unsubscribe {
  readonly #host: FollowHost;
  readonly #sub: EventSubscription;
  readonly #deliver: (env: Envelope, via: TransportName) => Promise<void>;
  readonly #log: Logger;
  /** Who subscribes, as warnings name it: the subscribing service, or a client subscription. */
  readonly #subscriber: string;
  readonly #opts: FollowOptions;
  /** What it receives, as logs name it, and its pronoun. */
  readonly #what: { readonly noun: string; readonly it: string };
  /** The subscription on each transport, in the order they were made. */
  readonly #subs = new Map<TransportName, Unsubscribe>();
  /** Publishers' transports this App cannot subscribe on, as of the last look (warned on entry); shared through `warned`. */
  readonly #said: { unreachable: ReadonlySet<TransportName> };
  /** Looks at discovery one at a time, in order. */
  #chain: Promise<void> = Promise.resolve();
  #off: (() => void) | undefined;
  #closed = false;

  constructor(
    host: FollowHost,
    sub: EventSubscription,
    deliver: (env: Envelope, via: TransportName) => Promise<void>,
    log: Logger,
    subscriber: string,
    opts: FollowOptions,
  ) {
    this.#host = host;
    this.#sub = sub;
    this.#deliver = deliver;
    this.#log = log;
    this.#subscriber = subscriber;
    this.#opts = opts;
    this.#what = opts.what ?? { noun: `${sub.source.name}.${sub.event}`, it: "it" };
    this.#said = opts.warned ?? { unreachable: new Set() };
  }

  async start(): Promise<void> {
    const { source } = this.#sub;
    const upfront = this.#opts.upfront;
    if (upfront !== undefined) for (const t of upfront) await this.#add(t);
    else {
      // Throws when no transport of the App carries them across processes (the start fails).
      const own = this.#host.eventTransport(source).name;
      await this.#add(own);
      for (const t of this.#host.eventCarriers())
        if (t !== own && (t === "local" || source.transports.includes(t))) await this.#add(t);
    }
    const set = await untilAborted(this.#host.directory().watch(source.name), this.#host.stopping);
    const follows = this.#opts.follows;
    const instances = (): readonly InstanceInfo[] =>
      follows === undefined ? set.instances() : set.instances().filter(follows);
    const first = this.#follow(instances(), true);
    this.#chain = first.catch(() => undefined);
    this.#off = set.onChange(() => {
      this.#chain = this.#chain
        .then(() => this.#follow(instances(), false))
        .catch((e: unknown) => this.#log.error({ err: e }, "following the publishers of an event failed"));
    });
    await first;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#off?.();
    await this.#chain;
    const subs = [...this.#subs.values()];
    this.#subs.clear();
    await Promise.allSettled(subs.map((s) => s.close()));
  }

  /** Subscribes on each transport the publishers use that is not subscribed yet; warns for those it cannot. */
  async #follow(instances: readonly InstanceInfo[], atStart: boolean): Promise<void> {
    if (this.#closed || this.#host.stopping.aborted) return;
    const { source, event } = this.#sub;
    const { noun, it } = this.#what;
    const carriers = this.#host.eventCarriers();
    const unreachable = new Set<TransportName>();
    for (const [t, ids] of publishers(source, instances, carriers.includes("local"))) {
      if (this.#subs.has(t)) continue;
      if (!carriers.includes(t)) {
        unreachable.add(t);
        if (!this.#said.unreachable.has(t)) {
          this.#warn(t, ids, carriers);
          // At once: the shards of a watchAll look at the same time, and one of them says it.
          this.#said.unreachable = new Set([...this.#said.unreachable, t]);
        }
        continue;
      }
      try {
        await this.#add(t);
      } catch (e) {
        if (atStart) throw e;
        this.#log.error(
          { err: e, targetService: source.name, event, transport: t },
          `subscribing to ${noun} on ${t}, where instances of ${source.name} publish ${it} (${named(ids)}), failed: what they publish there does not reach ${this.#subscriber} until the next change in discovery tries again`,
        );
        continue;
      }
      this.#log.info(
        { targetService: source.name, event, transport: t, publishers: ids },
        `subscribed to ${noun} on ${t} as well: instances of ${source.name} publish ${it} there (${named(ids)})`,
      );
    }
    this.#said.unreachable = unreachable;
  }

  async #add(name: TransportName): Promise<void> {
    const t = this.#host.transport(name);
    const u = await untilAborted(
      (this.#opts.path?.(t) ?? t).subscribe(this.#sub, (env) => this.#deliver(env, name)),
      this.#host.stopping,
    );
    if (this.#closed) await u.close();
    else this.#subs.set(name, u);
  }

  #warn(t: TransportName, ids: readonly string[], carriers: readonly TransportName[]): void {
    const { source, event } = this.#sub;
    const { noun, it } = this.#what;
    let has: boolean;
    try {
      this.#host.transport(t);
      has = true;
    } catch {
      has = false;
    }
    const lacks =
      this.#opts.lacking?.(t, has) ??
      `${has ? `this app's ${t} carries no events (zmq needs an event hub: its events or hub option, or FAN_ZMQ_EVENTS_*)` : `this app has no ${t} transport`} (its event transports: ${carriers.join(", ") || "none"}; it subscribes on ${[...this.#subs.keys()].join(", ")}); add ${t} to its transports (createApp({ transports }) or FAN_TRANSPORTS)`;
    this.#log.warn(
      {
        targetService: source.name,
        event,
        publishedOn: t,
        publishers: ids,
        subscribedOn: [...this.#subs.keys()],
        eventTransports: carriers,
      },
      `${this.#subscriber} does not receive ${noun} from instances that publish ${it} on ${t} (${named(ids)}): ${lacks}`,
    );
  }
}

/** The transports `service`'s registered instances publish on, each with its instances (`id@version`). */
function publishers(
  service: ServiceDescriptor,
  instances: readonly InstanceInfo[],
  inProcess: boolean,
): Map<TransportName, string[]> {
  const by = new Map<TransportName, string[]>();
  for (const i of instances) {
    const t = publishedOn(service, i, inProcess);
    if (t !== undefined) by.set(t, [...(by.get(t) ?? []), `${i.instanceId}@${i.version}`]);
  }
  return by;
}

function named(ids: readonly string[]): string {
  return ids.length <= NAMED ? ids.join(", ") : `${ids.slice(0, NAMED).join(", ")} and ${ids.length - NAMED} more`;
}
