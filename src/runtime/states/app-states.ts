/**
 * The App's side of replicated states, kept here so app.ts only calls in: the owners of the
 * states this App serves (published on each service's event transport), the watch host of its
 * clients (subscriptions on the same event transport and on those the owners are registered as
 * publishing on, call/followed-events.ts; snapshots through a client of the service that knows
 * the built-in `$state` rpc; both of the major the client's range picks),
 * and the checks that refuse a setup that
 * cannot carry state updates (http alone) instead of replicating nothing.
 */
import type { Logger } from "pino";
import semver from "semver";
import type { Infra } from "../app/infra.js";
import { Caller, type ClientHost } from "../call/client.js";
import { majorRange } from "../call/versions.js";
import type { ServedInstance } from "../call/served.js";
import type { ServiceDescriptor, ShardedStateHandle, StateHandle, TransportName } from "../descriptor.js";
import { Code, FanError } from "../errors.js";
import { shortId } from "../ids.js";
import type { Envelope, EventSubscription, Transport } from "../transports/transport.js";
import { type FollowHost, type FollowOptions, followedSubscription } from "../call/followed-events.js";
import { type SnapshotStore, StateOwners } from "./owner.js";
import { SHARD_NUMBER } from "../call/shards.js";
import {
  SHARD_SNAPSHOT_METHOD,
  SNAPSHOT_METHOD,
  stateEvent,
  stateMajor,
  stateStream,
  withSnapshotMethod,
} from "./protocol.js";
import { type PersistOptions, redisSnapshotStore } from "./redis-store.js";
import { stateHandle, type WatchHost } from "./watch.js";

const NEVER: AbortSignal = new AbortController().signal;
/** How long a publish may block before it fails. */
const PUBLISH_TIMEOUT_MS = 10_000;

/** `createApp({ states })`. */
export interface StatesOptions {
  /** How often owners send heartbeats, in ms (default 1000); watchers call an owner absent after three missed. */
  readonly heartbeatMs?: number;
  /** Keep the latest snapshot of every owned state in Redis, so a restarted owner resumes it. */
  readonly persist?: PersistOptions;
}

/** `app.state(service, name, opts)`: how the watches of that handle receive updates. */
export interface StateWatchOptions {
  /**
   * The event transport a watch subscribes to updates on, asked at each (re)subscription (a
   * rejection is a failed subscription, retried). Default: this App's event transport for the
   * service. The gateway, one App in front of services on different brokers, answers with the
   * transport the state's owners publish on.
   */
  readonly updatesVia?: (service: ServiceDescriptor) => Promise<TransportName>;
  /**
   * The semver range of the client the handle belongs to (`app.client(X, { version })`): it picks
   * the major whose stream the watches subscribe to and whose instances answer their snapshots.
   * Default: the descriptor's major. A range that admits two majors fails each watch and get.
   */
  readonly version?: string;
  /**
   * How a watch that follows its owners (no `updatesVia`) does it: the transports it subscribes
   * on first and what its warnings say of one it lacks (call/followed-events.ts), who it is in
   * them, and the logger its follow lines go to (default this App's). `fanc watch` gives them.
   */
  readonly follow?: Pick<FollowOptions, "upfront" | "lacking"> & {
    readonly subscriber?: string;
    readonly log?: Logger;
  };
}

/** What app.ts holds. */
export interface AppStates {
  readonly owners: StateOwners;
  /** `client.states.x` of a client of this App. */
  handle(
    service: ServiceDescriptor,
    name: string,
    opts?: StateWatchOptions,
  ): StateHandle<unknown> | ShardedStateHandle<unknown>;
  /** Refuses to serve a service with states over network transports when none can carry its updates. */
  checkServe(d: ServiceDescriptor, transports: readonly TransportName[]): void;
  /** Closes and drops the snapshot clients of `service`'s watches (`app.releaseClient`); returns how many. */
  release(service: ServiceDescriptor): number;
  close(): Promise<void>;
}

/** Builds the states side of an App. */
export function appStates(
  app: ClientHost & { readonly appId: string; readonly cluster: string },
  infra: Infra,
  served: readonly ServedInstance[],
  opts: StatesOptions = {},
): AppStates {
  const heartbeatMs = opts.heartbeatMs ?? 1000;
  if (!(heartbeatMs >= 10))
    throw new FanError(Code.INVALID_ARGUMENT, `states.heartbeatMs must be at least 10, got ${heartbeatMs}`);
  const log = app.log.child({ component: "states" });
  let store: SnapshotStore | undefined;
  if (opts.persist !== undefined) store = redisSnapshotStore(opts.persist, log);
  const owners = new StateOwners({
    cluster: app.cluster,
    log,
    heartbeatMs,
    store,
    serves: (name) => served.some((s) => s.descriptor.name === name),
    // One stream per major version: 1.x and 2.x served side by side never share one.
    eventOf: stateStream,
    ownerId: app.appId,
    publish: async (service, env) => {
      if (!infra.isOpen) await infra.open();
      // A lossy fan-out when the transport has one (redis pub/sub): updates are numbered, a lost one is a resync.
      const t = infra.eventTransport(service);
      await (t.volatile ?? t).publish(env, { signal: NEVER, deadline: Date.now() + PUBLISH_TIMEOUT_MS });
    },
  });
  const views = new Set<{ close(): Promise<void> }>();
  /** Snapshot clients by service and range (`snapshotRange`). */
  const callers = new Map<ServiceDescriptor, Map<string, Caller>>();
  const carrierMissing = (d: ServiceDescriptor): FanError | undefined => {
    // In one process (a memory registry) the local hub carries updates; across processes a
    // network transport that carries events must (the same rule as events, app/infra.ts).
    if (infra.network.length === 0 || !infra.spansProcesses) return undefined;
    try {
      infra.eventTransportName(d);
      return undefined;
    } catch {
      // none of the App's network transports that the service allows carries events
    }
    return new FanError(
      Code.FAILED_PRECONDITION,
      `the states of ${d.name} need a broker transport to carry their updates: this app has ${infra.network.join(", ")} ` +
        `and ${d.name} allows ${d.transports.join(", ")}; add amqp, redis, nats or zmq to both (http relays state updates through one of them)`,
    );
  };
  /** What a watch's subscription needs to follow the owners onto their transport (call/followed-events.ts). */
  const followHost: FollowHost = {
    stopping: NEVER,
    eventTransport: (s) => infra.eventTransport(s),
    eventCarriers: () => infra.eventCarriers(),
    transport: (n) => infra.transport(n),
    directory: () => infra.discovery.directory,
  };
  /** The owners' transports this App cannot subscribe on, warned once per state and major (not per view or resubscription). */
  const warned = new Map<string, { unreachable: ReadonlySet<TransportName> }>();
  /**
   * A watch's own broadcast subscription to the updates of `state` of `major`: on the transport
   * `via` alone when the handle names it (`updatesVia`), else on this App's event transport for
   * the service and every other one the major's registered instances publish on, following them
   * as they change (an owner on nats alone, or one that fails over to nats, reaches a watcher on
   * amqp,nats); a warning names both sides when this App lacks their transport.
   */
  const subscribe = async (
    via: TransportName | undefined,
    service: ServiceDescriptor,
    major: number,
    state: string,
    shard: number | undefined,
    deliver: (payload: unknown) => void,
    follow: StateWatchOptions["follow"],
  ): Promise<{ close(): Promise<void> }> => {
    const ready = app.ready();
    if (ready !== undefined) await ready;
    const id = `${service.name}.watch.${app.appId}.${shortId()}`;
    const sub: EventSubscription = {
      source: service,
      event: stateEvent(state, shard, major),
      group: id,
      instanceId: id,
      broadcast: true,
      ephemeral: true,
    };
    const path = (t: Transport): Pick<Transport, "subscribe"> => t.volatile ?? t;
    const onUpdate = async (env: Envelope): Promise<void> => deliver(env.payload);
    if (via !== undefined) return path(infra.transport(via)).subscribe(sub, onUpdate);
    // Said once per state and major, not per shard: this App's transports are the same for each.
    const label = `${service.name}.${state} (major ${major})`;
    const said = warned.get(label) ?? { unreachable: new Set<TransportName>() };
    warned.set(label, said);
    return followedSubscription(
      followHost,
      sub,
      onUpdate,
      follow?.log ?? log,
      follow?.subscriber ?? "a watch in this app",
      {
        ...(follow?.upfront === undefined ? {} : { upfront: follow.upfront }),
        ...(follow?.lacking === undefined ? {} : { lacking: follow.lacking }),
        what: { noun: `the updates of ${label}`, it: "them" },
        path,
        follows: (i) => semver.major(i.version) === major,
        warned: said,
      },
    );
  };
  /** The client that asks `service`'s instances in `range` (`snapshotRange`) for snapshots. */
  const callerOf = (service: ServiceDescriptor, range: string): Caller => {
    let byRange = callers.get(service);
    if (byRange === undefined) {
      byRange = new Map();
      callers.set(service, byRange);
    }
    let c = byRange.get(range);
    if (c === undefined) {
      c = new Caller(app, withSnapshotMethod(service), { version: range });
      byRange.set(range, c);
    }
    return c;
  };
  /**
   * The refusal of a snapshot when the major's only instances are prereleases the range does
   * not admit (`2.x` and a lone 2.0.0-beta.1): the client's calls are refused the same way
   * ("versions available: 2.0.0-beta.1"), but a view hears the beta's heartbeats on the major's
   * stream, and "owner absent" alone reads as a bug. Undefined for any other failure.
   */
  const prereleasesOnly = async (
    service: ServiceDescriptor,
    state: string,
    major: number,
    range: string,
    asked: string,
    e: unknown,
  ): Promise<FanError | undefined> => {
    if (!FanError.is(e) || e.code !== Code.UNAVAILABLE) return undefined;
    const set = await app.watch(service.name).catch(() => undefined);
    const ofMajor = (set?.instances() ?? []).map((i) => i.version).filter((v) => semver.major(v) === major);
    if (ofMajor.length === 0 || ofMajor.some((v) => semver.satisfies(v, asked))) return undefined;
    const versions = [...new Set(ofMajor)].sort(semver.compare);
    return new FanError(
      Code.UNAVAILABLE,
      `${service.name}.${state}: major ${major} runs only prereleases (${versions.join(", ")}), which the range ` +
        `${range} does not admit (a range admits a prerelease only when it names one, as in semver), so this ` +
        `client's calls do not reach them either; to watch a prerelease's state, give the client a range that ` +
        `names it: { version: "${[range, ...versions].join(" || ")}" }`,
      { cause: e, details: { service: service.name, state, range, notAdmitted: versions } },
    );
  };
  /**
   * The watch host of one handle: its updates on `major`'s stream, its snapshots from that
   * major's instances (any of them: the state is the major's, whichever of its versions owns it;
   * a prerelease when the client's `range` admits it: its own, else the default of its generated
   * version, `majorRange`). `major` is an error when the client's range admits two majors: each
   * watch and get fails with it.
   */
  const hostOf = (major: number | FanError, range: string, o: StateWatchOptions | undefined): WatchHost => ({
    log,
    heartbeatMs,
    check: (service) => {
      if (major instanceof FanError) throw major;
      const missing = carrierMissing(service);
      if (missing !== undefined) throw missing;
    },
    opened: (view) => {
      views.add(view);
      return () => void views.delete(view);
    },
    subscribe: async (service, state, shard, deliver) => {
      if (major instanceof FanError) throw major;
      const via = o?.updatesVia === undefined ? undefined : await o.updatesVia(service);
      return subscribe(via, service, major, state, shard, deliver, o?.follow);
    },
    snapshot: async (service, state, shard, callOpts) => {
      if (major instanceof FanError) throw major;
      const asked = snapshotRange(major, range);
      const c = callerOf(service, asked);
      try {
        // A shard's snapshot is a sharded call: routed to the shard's owner, redirected if it moved.
        if (shard !== undefined) return await c.call(SHARD_SNAPSHOT_METHOD, { state, [SHARD_NUMBER]: shard }, callOpts);
        return await c.call(SNAPSHOT_METHOD, { state }, callOpts);
      } catch (e) {
        throw (await prereleasesOnly(service, state, major, range, asked, e)) ?? e;
      }
    },
  });
  return {
    owners,
    handle: (service, name, o) => {
      // Built with every client (generated code makes its handles eagerly): a range that admits
      // two majors fails the watches and gets, not the client of a caller that only calls.
      // No range: the default of the generated version, as the client's calls have (a beta's own).
      const range = o?.version ?? majorRange(service.version);
      let major: number | FanError;
      try {
        major = stateMajor(service, range, name);
      } catch (e) {
        major = FanError.from(e, Code.INVALID_ARGUMENT);
      }
      return stateHandle(service, name, hostOf(major, range, o));
    },
    checkServe: (d, transports) => {
      if (Object.keys(d.states).length === 0 || !transports.some((t) => t !== "local")) return;
      const missing = carrierMissing(d);
      if (missing !== undefined) throw missing;
    },
    release: (service) => {
      const byRange = callers.get(service);
      callers.delete(service);
      for (const c of byRange?.values() ?? []) c.close();
      return byRange?.size ?? 0;
    },
    close: async () => {
      const open = [...views];
      views.clear();
      await Promise.allSettled(open.map((v) => v.close()));
      await owners.close();
    },
  };
}

/**
 * The range of the instances a view of `major` asks for snapshots: every release of the major
 * and whatever the client's range admits. `2.x` alone admits no prerelease (semver), so a client
 * pinned to `2.0.0-beta.1` called the beta but its view found no instance to take a snapshot from.
 */
function snapshotRange(major: number, range: string): string {
  const all = `${major}.x`;
  return semver.subset(all, range) ? range : `${all} || ${range}`;
}
