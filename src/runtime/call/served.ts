/**
 * One served instance: its dispatcher and call scope, its config (validated at start and on
 * every update), its transport bindings, event subscriptions and discovery registration. A
 * `@unique` instance binds only while it leads, and campaigns again when it loses leadership.
 */
import type { Logger } from "pino";
import { decodeConfig, unknownKeys, withAbsence } from "../app/config.js";
import type { InstanceScope } from "./callctx.js";
import type { Emitter, LifecycleContext, ServiceHooks } from "./context.js";
import { lazyEmitter } from "./emitter.js";
import { followedSubscription } from "./followed-events.js";
import type { Publisher } from "./publisher.js";
import type { ServiceDefinition, ServiceDescriptor, TransportName } from "../descriptor.js";
import { campaign, type Leadership } from "../discovery/election.js";
import type { Registry } from "../discovery/registry.js";
import type { ConfigSource, Directory, Registration } from "../discovery/types.js";
import { Dispatcher } from "./dispatch.js";
import { isSharded, Ownership } from "./ownership.js";
import { checkPinnedShards, SHARD_NUMBER } from "./shards.js";
import { Code, FanError } from "../errors.js";
import { redactSecrets } from "../telemetry/logging.js";
import type { Counters } from "../telemetry/stats.js";
import type { CallTelemetry } from "../telemetry/calls.js";
import { untilAborted } from "../transports/abort.js";
import type { Served, Transport, Unsubscribe } from "../transports/transport.js";
import {
  SHARD_SNAPSHOT_METHOD,
  SNAPSHOT_METHOD,
  type StateOwners,
  type StatePublisher,
  type StatePublishers,
  statePublishers,
  withSnapshotMethod,
} from "../states/index.js";
import type { ServerGate } from "../policy/server.js";
import { warnOnSeveralOwners } from "../states/single-owner.js";

/** Options of `app.serve(def, handler, opts)`. */
export interface ServeOptions {
  /** Transports to serve on (default: every transport of the App the service allows). */
  readonly transports?: readonly TransportName[];
  /** This instance's id (default: the service's simple name and a random suffix). */
  readonly instanceId?: string;
  /** Raw (wire-form) config for this instance; replaces the config source's. */
  readonly config?: Record<string, unknown>;
  /** Work in flight on this instance beyond which calls are shed (RESOURCE_EXHAUSTED); over `createApp({ server: { maxInFlight } })`. */
  readonly maxInFlight?: number;
  /**
   * Shards this instance owns outright (registered in discovery); default: a share of the
   * shards nobody pinned, by rendezvous hashing over the live instances (`docs/sharding.md`).
   */
  readonly shards?: readonly number[];
}

/** What a served instance needs from its App. */
export interface ServeHost {
  readonly appId: string;
  readonly cluster: string;
  readonly counters: Counters;
  /** Spans and metrics of served calls. */
  readonly telemetry?: CallTelemetry;
  /** Fires when the grace period of a stop is over. */
  readonly hardStop: AbortSignal;
  /** Aborted when the app begins to stop. */
  readonly stopping: AbortSignal;
  readonly uniqueWaitMs: number;
  /** Unexpected handler exceptions reach in-process callers as `cause` (test apps). */
  readonly revealErrors: boolean;
  transport(name: TransportName): Transport;
  eventTransport(source: ServiceDescriptor): Transport;
  /** The name of `eventTransport(source)`; throws when no transport of the App carries them across processes. */
  eventTransportName(source: ServiceDescriptor): TransportName;
  /** The App's transports that carry events (local too in one process): a subscription is made on each its source allows (followed-events.ts). */
  eventCarriers(): readonly TransportName[];
  directory(): Directory;
  registry(): Registry;
  configSource(): ConfigSource;
  client<C>(def: ServiceDefinition<unknown, C>): C;
  /** The App's publisher of a service's events (`ctx.emit`). */
  publisher(service: ServiceDescriptor): Publisher;
  /** The App's state owners: they answer the built-in `$state` rpc and publish while an instance is bound. */
  readonly states: StateOwners;
  /** The server policy gate of an instance (load shedding, interceptors, `@auth`), when it needs one. */
  gate?(service: ServiceDescriptor, instanceId: string, opts: ServeOptions): ServerGate | undefined;
}

/** The lifecycle hook names, in the order start and stop call them. */
export type HookName = keyof ServiceHooks;

/** A served instance of one service. */
export class ServedInstance {
  readonly descriptor: ServiceDescriptor;
  readonly handler: object;
  readonly instanceId: string;
  readonly log: Logger;
  readonly #host: ServeHost;
  readonly #opts: ServeOptions;
  readonly #transports: readonly TransportName[];
  readonly #dispatcher: Dispatcher;
  readonly #servedAs: ServiceDescriptor;
  #config: unknown = Object.freeze({});
  #unwatchConfig: (() => Promise<void>) | undefined;
  #bindings: Served[] = [];
  #subs: Unsubscribe[] = [];
  #registration: Registration | undefined;
  #leadership: Leadership | undefined;
  #binding: Promise<void> | undefined;
  readonly #ownership: Ownership | undefined;
  /** Stops the warning about states with several owners (states/single-owner.ts). */
  #ownersCheck: (() => void) | undefined;
  /** `ctx.emit` of every call and lifecycle context of this instance (made on first use). */
  readonly #emitter: () => Emitter;
  /** `ctx.states` of every call and lifecycle context of this instance (made on first use). */
  readonly #states: () => StatePublishers<Record<string, unknown>>;

  constructor(
    def: ServiceDefinition<unknown, unknown>,
    handler: object,
    opts: ServeOptions,
    instanceId: string,
    transports: readonly TransportName[],
    host: ServeHost,
    log: Logger,
  ) {
    this.descriptor = def.descriptor;
    this.handler = handler;
    this.instanceId = instanceId;
    this.#host = host;
    this.#opts = opts;
    this.#transports = transports;
    this.log = log.child({ service: def.descriptor.name, instanceId });
    this.#emitter = lazyEmitter(def.descriptor, () => host.publisher(def.descriptor));
    let states: StatePublishers<Record<string, unknown>> | undefined;
    this.#states = () =>
      (states ??= statePublishers(Object.keys(def.descriptor.states), (name) =>
        host.states.owner(def.descriptor, name),
      ));
    const pinned = checkPinnedShards(def.descriptor.name, opts.shards, def.descriptor.shards);
    if (isSharded(def.descriptor) || pinned.length > 0)
      this.#ownership = new Ownership(
        def.descriptor,
        instanceId,
        pinned,
        handler,
        () => this.lifecycleContext(),
        this.log,
      );
    // Served with the built-in snapshot rpc when the service has states (states/protocol.ts).
    this.#servedAs = withSnapshotMethod(def.descriptor);
    this.#dispatcher = new Dispatcher(
      this.#servedAs,
      handler,
      this.#scope(),
      host.counters,
      host.gate?.(def.descriptor, instanceId, opts),
      host.telemetry,
    );
    if (this.#servedAs !== def.descriptor) {
      this.#dispatcher.builtin(SNAPSHOT_METHOD, (req) =>
        host.states.snapshot(def.descriptor, (req as { state: unknown }).state),
      );
      this.#dispatcher.builtin(SHARD_SNAPSHOT_METHOD, (req) => {
        const r = req as { state: unknown; [SHARD_NUMBER]: unknown };
        return host.states.snapshot(def.descriptor, r.state, r[SHARD_NUMBER]);
      });
    }
  }

  /** The typed config currently in force. */
  get config(): unknown {
    return this.#config;
  }

  /** Loads and validates config (throws naming every missing key), then follows updates. */
  async loadConfig(): Promise<void> {
    const name = this.descriptor.name;
    const source = this.#host.configSource();
    const raw = this.#opts.config ?? (await source.get(name));
    try {
      this.#config = decodeConfig(this.descriptor, raw);
    } catch (e) {
      // `Catalog:` for shop.catalog.Catalog: "missing adminToken" alone sends the reader to the wrong key.
      const absent = this.#opts.config === undefined ? await source.absence?.(name) : undefined;
      throw absent === undefined ? e : withAbsence(e, absent);
    }
    this.log.info({ config: redactSecrets(this.descriptor.config, raw) }, "config loaded");
    this.#warnUnknown(raw);
    if (this.#opts.config !== undefined || this.descriptor.config === undefined) return;
    // Every key has a default, so nothing refused a section kept under the short name: said.
    const misplaced = Object.keys(raw).length === 0 ? await source.misplaced?.(name) : undefined;
    if (misplaced !== undefined) this.log.warn({ service: name }, `config: defaults in force: ${misplaced}`);
    this.#unwatchConfig = await this.#host.configSource().watch(name, (next) => this.#onConfig(next));
  }

  /** Its states take their saved snapshots (`persist`), for its `start` hook to see. */
  resumeStates(): Promise<void> {
    return this.#host.states.resume(this.descriptor);
  }

  /** Calls one lifecycle hook of the handler, if it has it. */
  async hook(name: HookName): Promise<void> {
    const fn = (this.handler as ServiceHooks)[name];
    if (typeof fn === "function") await fn.call(this.handler, this.lifecycleContext());
  }

  /** What lifecycle hooks receive. */
  lifecycleContext(): LifecycleContext<unknown> {
    const host = this.#host;
    const emitter = this.#emitter;
    return {
      service: this.descriptor.name,
      instanceId: this.instanceId,
      log: this.log,
      config: this.#config,
      signal: host.stopping,
      get emit() {
        return emitter();
      },
      client: (def) => host.client(def),
      state: <T>(name: string) => host.states.owner(this.descriptor, name) as StatePublisher<T>,
      states: this.#states(),
    };
  }

  /** Begins taking work: serve on each transport, subscribe, register (after election if `@unique`). */
  async bind(): Promise<void> {
    if (!this.descriptor.unique) return this.#bindNow();
    const elected = this.#campaign();
    let t: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((r) => (t = setTimeout(r, this.#host.uniqueWaitMs)));
    await Promise.race([elected, waited]);
    clearTimeout(t);
    if (this.#leadership === undefined) this.log.info("standing by: another instance leads");
  }

  /** Stops taking work and drains in-flight calls for up to `graceMs`; true when all finished. */
  async unbind(graceMs: number): Promise<boolean> {
    const leadership = this.#leadership;
    this.#leadership = undefined;
    let drained = true;
    // The record of a sharded instance says the drain ends by then (`releasingUntil`).
    const until = Date.now() + graceMs;
    await this.#unbindNow(async () => {
      drained = await this.#dispatcher.drain(Math.max(0, until - Date.now()));
      if (!drained)
        this.log.warn({ inflight: this.#dispatcher.inflight }, "in-flight work still running after the grace period");
    }, until);
    await leadership?.resign().catch((e: unknown) => this.log.warn({ err: e }, "resigning leadership failed"));
    await this.#unwatchConfig?.().catch(() => undefined);
    return drained;
  }

  async #campaign(): Promise<void> {
    const host = this.#host;
    while (!host.stopping.aborted) {
      let lead: Leadership;
      try {
        lead = await campaign(host.registry(), {
          cluster: host.cluster,
          service: this.descriptor.name,
          instanceId: this.instanceId,
          signal: host.stopping,
          log: this.log,
        });
      } catch (e) {
        if (!host.stopping.aborted) this.log.error({ err: e }, "leader election failed");
        return;
      }
      if (host.stopping.aborted) {
        // Won just as the app began to stop: hand the lead back instead of binding late.
        await lead.resign().catch((e: unknown) => this.log.warn({ err: e }, "resigning leadership failed"));
        return;
      }
      this.#leadership = lead;
      await this.#bindNow();
      const lost = new Promise<void>((r) => lead.onLost(r));
      this.log.info({ fencingToken: lead.fencingToken }, "leading");
      await lost;
      if (this.#leadership !== lead) return;
      this.#leadership = undefined;
      this.log.warn("leadership lost; standing by");
      await this.#unbindNow();
    }
  }

  #bindNow(): Promise<void> {
    this.#binding ??= this.#doBind().finally(() => (this.#binding = undefined));
    return this.#binding;
  }

  async #doBind(): Promise<void> {
    const endpoints: Partial<Record<TransportName, string>> = {};
    // A transport waits for its broker up to its connectTimeoutMs: a stop ends the wait (the
    // App closes the transport, which ends the serve it left behind), so unbind, which waits
    // for this bind, does not wait it out.
    const orStop = <T>(p: Promise<T>): Promise<T> => untilAborted(p, this.#host.stopping);
    for (const name of this.#transports) {
      const transport = this.#host.transport(name);
      const served = await orStop(
        transport.serve(this.#servedAs, this.instanceId, this.#dispatcher.via(name, transport.window)),
      );
      this.#bindings.push(served);
      endpoints[name] = served.endpoint;
    }
    for (const s of this.descriptor.subscriptions) {
      const source = s.source();
      const event = source.events[s.event];
      if (event === undefined)
        throw new FanError(
          Code.INTERNAL,
          `${this.descriptor.name} subscribes to ${s.service}.${s.event}, which does not exist`,
        );
      const sub = {
        source,
        event: s.event,
        group: this.descriptor.name,
        instanceId: this.instanceId,
        broadcast: event.broadcast,
      };
      // On every transport of this App that carries the source's events, before registering.
      this.#subs.push(
        await orStop(followedSubscription(this.#host, sub, (env, via) => this.#dispatcher.event(env, via), this.log)),
      );
    }
    await this.#host.states.bound(this.descriptor, this.#ownership);
    this.#registration = await this.#host.directory().register({
      service: this.descriptor.name,
      instanceId: this.instanceId,
      version: this.descriptor.version,
      endpoints,
      ...this.#eventsOn(),
      shards: checkPinnedShards(this.descriptor.name, this.#opts.shards, this.descriptor.shards),
      ...(this.#ownership === undefined ? {} : { shardCount: this.descriptor.shards, serving: [] }),
      appId: this.#host.appId,
    });
    const reg = this.#registration;
    // The record says which shards this instance serves: the hand-over of a moving shard (ownership.ts).
    await this.#ownership?.start(this.#host.directory(), (serving) =>
      this.#registration === reg ? reg.update(serving) : Promise.resolve(),
    );
    this.#ownersCheck = await warnOnSeveralOwners(
      this.descriptor,
      this.instanceId,
      this.#host.appId,
      this.#host.directory(),
      this.log,
    );
  }

  /**
   * `events`: where this App publishes the service's events and state updates, for readers of
   * discovery (`fanc subscribe`, the gateway) that would otherwise guess it from the endpoints,
   * whose order follows `serve(..., { transports })` and need not include it. Left out when only
   * the local hub carries them (one process) or no transport can (`emit` then fails naming why).
   */
  #eventsOn(): { events?: TransportName } {
    let name: TransportName;
    try {
      name = this.#host.eventTransportName(this.descriptor);
    } catch {
      return {};
    }
    return name === "local" ? {} : { events: name };
  }

  /**
   * Takes the instance down; with `drain` (a graceful stop) and calls in flight, those run to the
   * end before its states stop publishing: until then they read and write them as before (the
   * shard view stays), and each state's last heartbeat and saved snapshot then hold their writes.
   * Otherwise (nothing in flight, or a lost leadership: another instance leads) the states stop
   * publishing first, so their last heartbeat goes out before the record is gone.
   *
   * A sharded instance's graceful stop is a hand-over (ownership.ts): its record stays, marked
   * `stopping` (nothing is routed to it from then on) and serving every shard it held, with the
   * drain's end `until` as `releasingUntil`, and goes only once the drain ended and the states
   * were saved, so the instances taking its shards resume them with the drained calls' writes.
   */
  async #unbindNow(drain?: () => Promise<void>, until?: number): Promise<void> {
    // A bind still under way (a @unique instance that just won) would register after this
    // unbind and stay registered: let it finish, then take everything down.
    await this.#binding?.catch(() => undefined);
    const reg = this.#registration;
    this.#registration = undefined;
    const handOver = reg !== undefined && drain !== undefined && until !== undefined && this.#ownership !== undefined;
    const statesFirst = !handOver && (drain === undefined || this.#dispatcher.inflight === 0);
    if (reg !== undefined && statesFirst) void this.#host.states.unbound(this.descriptor);
    // Sharded calls that arrive until the bindings are down are still redirected by the table
    // (or refused while their shard is not ready), never served unchecked: ownership stops last.
    let kept = false;
    if (handOver) kept = await this.#leave(reg, until);
    else this.#ownership?.freeze();
    this.#ownersCheck?.();
    this.#ownersCheck = undefined;
    const deregister = (): Promise<void> | undefined =>
      reg?.deregister().catch((e: unknown) => this.log.warn({ err: e }, "deregistering failed"));
    if (!kept) await deregister();
    const subs = this.#subs.splice(0);
    const bindings = this.#bindings.splice(0);
    await Promise.allSettled([...subs.map((s) => s.close()), ...bindings.map((b) => b.stop())]);
    if (drain !== undefined) {
      await drain();
      if (reg !== undefined && !statesFirst) await this.#host.states.unbound(this.descriptor);
    }
    // Released: the instances taking its shards gain them now.
    if (kept) await deregister();
    this.#ownership?.stop();
  }

  /**
   * Marks the record `stopping`, serving what this instance still holds until `until`; false
   * (with a warning) when that write failed: the record is then removed at once, as before
   * hand-overs on stop, so that calls go elsewhere.
   */
  async #leave(reg: Registration, until: number): Promise<boolean> {
    const serving = (this.#ownership as Ownership).leave(until);
    try {
      await reg.update(serving);
      return true;
    } catch (e) {
      this.log.warn(
        { err: e, serving: serving.serving },
        "stopping: marking this instance's discovery record as stopping failed, so it is removed now: the instances taking its shards take them at once, without the writes of the calls it still drains",
      );
      return false;
    }
  }

  #onConfig(raw: Record<string, unknown>): void {
    try {
      this.#config = decodeConfig(this.descriptor, raw);
      this.log.info({ config: redactSecrets(this.descriptor.config, raw) }, "config updated");
      this.#warnUnknown(raw);
    } catch (e) {
      this.log.error({ err: e }, "config update rejected; keeping the previous config");
    }
  }

  /**
   * Keys the IDL's config block does not declare are ignored: said, since a misspelt key leaves
   * its default in force. Not for a service without a config block (a mock standing in for one
   * is served without it, and reads the same source).
   */
  #warnUnknown(raw: Record<string, unknown>): void {
    const schema = this.descriptor.config;
    if (schema === undefined) return;
    const unknown = unknownKeys(schema, raw);
    if (unknown.length === 0) return;
    const declared = schema.fields.map((f) => f.name);
    this.log.warn(
      { unknownKeys: unknown, declared },
      `config of ${this.descriptor.name} has keys its IDL config block does not declare, ignored: ${unknown.join(", ")} (declared: ${declared.join(", ") || "none"})`,
    );
  }

  #scope(): InstanceScope {
    const host = this.#host;
    const scope: InstanceScope = {
      service: this.descriptor.name,
      instanceId: this.instanceId,
      log: this.log,
      config: () => this.#config,
      client: (def) => host.client(def),
      emitter: this.#emitter,
      state: (name) => host.states.owner(this.descriptor, name),
      states: this.#states,
      hardStop: host.hardStop,
      revealErrors: host.revealErrors,
      ...(this.descriptor.unique ? { fencingToken: () => this.#leadership?.fencingToken } : {}),
      ...(this.#ownership === undefined
        ? {}
        : {
            shardGuard: this.#ownership.guard,
            shardSettled: this.#ownership.settled,
            shards: () => (this.#ownership as Ownership).owned(),
          }),
    };
    return scope;
  }
}
