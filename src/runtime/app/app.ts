/**
 * The App: one per process (more in tests). It owns discovery, config, logging and transports,
 * serves handlers and hands out typed clients. `createApp()` with no options is the embedded
 * default: a private in-memory registry and config, and the local transport.
 */
import type { Logger } from "pino";
import { Infra, type DiscoveryInput, type TransportsConfig } from "./infra.js";
import { Caller, type ClientHost, type ClientOptions } from "../call/client.js";
import type {
  ServiceDefinition,
  ServiceDescriptor,
  ShardedStateHandle,
  StateHandle,
  Subscription,
  TransportName,
} from "../descriptor.js";
import type { ConfigObjects } from "../discovery/config.js";
import type { EtcdRegistryOptions } from "../discovery/etcd.js";
import type { ConfigSource, InstanceSet } from "../discovery/types.js";
import { DEFAULT_LEASE_TTL_MS } from "../discovery/directory.js";
import { Code, FanError } from "../errors.js";
import { instanceIdFor, shortId } from "../ids.js";
import type { Interceptor } from "../call/interceptors.js";
import { withEnvironment } from "./env.js";
import { Lifecycle } from "./lifecycle.js";
import { createLogger } from "../telemetry/logging.js";
import { Publisher } from "../call/publisher.js";
import { assertHandlerComplete } from "../call/handler-check.js";
import { ServedInstance, type ServeHost, type ServeOptions } from "../call/served.js";
import { newCounters, type Counters } from "../telemetry/stats.js";
import { appStates, type AppStates, type StatesOptions, type StateWatchOptions } from "../states/app-states.js";
import type { TaskContext } from "./tasks.js";
import type { LocalTransport } from "../transports/local/index.js";
import type { HeaderSource } from "../policy/headers.js";
import type { PolicyOptions } from "../policy/options.js";
import { Policies } from "../policy/policies.js";
import { type ServerPolicyOptions, serverGate } from "../policy/server.js";
import { Telemetry, type AdminOptions, type TelemetryOptions } from "../telemetry/index.js";
import { AdminServer } from "../telemetry/admin.js";
import { HealthService, healthHandler } from "../telemetry/health.js";
import { policyMetrics } from "../telemetry/policy.js";
import { BreakerBoard } from "../policy/breaker-board.js";
import type { ServiceTraffic } from "../call/route.js";
import { TrafficRules } from "../call/versions.js";

/** Options of `createApp`. */
export interface AppOptions {
  /** Cluster name: the discovery and config namespace (default "dev"). */
  readonly cluster?: string;
  /**
   * Discovery: "memory" (the process-wide memory registry), "etcd://host:port[,...]" (any
   * other string is an error at once), a Registry object (apps given the same one see each
   * other), or a built Discovery. Default: `$FAN_DISCOVERY` with `createApp`, else a memory
   * registry private to this App.
   */
  readonly discovery?: DiscoveryInput;
  /** Options of an `etcd://` discovery: TLS (`tls: { ca, cert, key }`), `auth: { username, password }`, timeouts. */
  readonly etcd?: EtcdRegistryOptions;
  /** Config: the registry (default), a YAML file path, plain objects by service name, or a ConfigSource. */
  readonly config?: string | ConfigObjects | ConfigSource;
  /** Transports by name: options, or a ready TransportFactory. `local` is always present. */
  readonly transports?: TransportsConfig;
  /** The app-wide logger (default: pino at FAN_LOG_LEVEL or info). */
  readonly logger?: Logger;
  /** Client interceptors of every client of this App (inside trace and deadline). */
  readonly interceptors?: readonly Interceptor[];
  /** How long start waits for hard dependencies (default 30 000 ms). */
  readonly dependencyTimeoutMs?: number;
  /** How long stop lets in-flight work finish (default 10 000 ms). */
  readonly stopGraceMs?: number;
  /** How long start waits for a `@unique` instance's first election (default 2 000 ms). */
  readonly uniqueWaitMs?: number;
  /** Registration lease TTL (default 5 000 ms). */
  readonly leaseTtlMs?: number;
  /** Max decoded payload size (default 4 MiB). */
  readonly maxPayloadBytes?: number;
  /** Stop gracefully on SIGINT/SIGTERM (a second signal exits at once). Default false. */
  readonly handleSignals?: boolean;
  /** Replicated states: heartbeat interval and optional snapshot persistence (docs/states.md). */
  readonly states?: StatesOptions;
  /** The client policy chain: breakers, retries, hedging, bulkhead (docs/policies.md); `false`: off. */
  readonly policy?: PolicyOptions | false;
  /** Headers added to every outgoing call (credentials); a function is called per call. */
  readonly headers?: HeaderSource;
  /** Server side: interceptors, `@auth` verifier, load shedding (docs/policies.md). */
  readonly server?: ServerPolicyOptions;
  /** Metrics, spans and the `fan.Health` service (all on by default); `false` turns them off. */
  readonly telemetry?: TelemetryOptions | false;
  /** A small http port with `/metrics`, `/health` and `/ready` (for an App not on http). */
  readonly admin?: AdminOptions;
  /**
   * For tests (`createTestApp` sets it): a handler's unexpected exception reaches a caller in
   * the same process as the `cause` of its INTERNAL error, whose message says where the
   * handler threw. Never sent over a network transport. Default false.
   */
  readonly revealErrors?: boolean;
}

/**
 * Creates an App. What the options leave out of `cluster`, `discovery` and the transports'
 * addresses comes from the environment (`FAN_CLUSTER`, `FAN_DISCOVERY`, `FAN_TRANSPORTS`,
 * `FAN_AMQP_URL`, `FAN_REDIS_URL`, `FAN_HTTP_PORT`... see `app/env.ts`); options win.
 */
export function createApp(options: AppOptions = {}): App {
  return new App(withEnvironment(options));
}

/** A process's set of served services and clients. */
export class App implements ClientHost {
  /** This App's id, advertised with its instances (prefer-local). */
  readonly appId = shortId();
  readonly cluster: string;
  /** The app-wide logger; give children of it to libraries (`app.logger.child({ component })`). */
  readonly logger: Logger;
  /** What was dropped, expired or failed. */
  readonly counters: Counters = newCounters();
  readonly interceptors: readonly Interceptor[];
  readonly log: Logger;
  /** Policy events, circuit breaker states and retry budgets (docs/policies.md). */
  readonly policy: Policies;
  readonly headers: HeaderSource | undefined;
  /** `createApp({ server })`: server interceptors, `@auth` verifier, load shedding. */
  readonly serverOptions: ServerPolicyOptions | undefined;
  /** Metrics, spans and health of this App. */
  readonly telemetry: Telemetry;
  readonly #admin: AdminServer | undefined;
  /** Publishes this App's open breakers for `fanc ls` (policy/breaker-board.ts). */
  readonly #board: BreakerBoard;
  #healthInstance: ServedInstance | undefined;
  /** Transports some served instance uses (fan.Health is served on these). */
  readonly #servedOn = new Set<TransportName>();
  readonly #options: AppOptions;
  readonly #infra: Infra;
  readonly #served: ServedInstance[] = [];
  /** `client()`'s cache: per definition's descriptor and options, the typed client and its caller. */
  readonly #clients = new Map<ServiceDescriptor, Map<string, { readonly client: unknown; readonly caller: Caller }>>();
  readonly #inflight = new Map<string, number>();
  readonly #clientSubs = new Set<Subscription>();
  readonly #lifecycle: Lifecycle;
  readonly #states: AppStates;
  #traffic: TrafficRules | undefined;

  constructor(options: AppOptions = {}) {
    this.#options = options;
    this.cluster = options.cluster ?? "dev";
    this.logger = options.logger ?? createLogger();
    this.log = this.logger.child({ app: this.appId });
    this.interceptors = options.interceptors ?? [];
    this.policy = new Policies(options.policy, this.log);
    this.headers = options.headers;
    this.serverOptions = options.server;
    this.telemetry = new Telemetry(
      {
        counters: this.counters,
        served: () => this.#served.map((s) => s.descriptor),
        watch: (service) => this.watch(service),
        reaches: (info) => this.#infra.reach(info, undefined) !== undefined,
      },
      options.telemetry,
    );
    if (this.telemetry.metrics !== undefined) this.policy.on(policyMetrics(this.telemetry.metrics));
    this.#admin =
      options.admin === undefined ? undefined : new AdminServer(options.admin, this.telemetry.admin, this.log);
    this.#infra = new Infra({
      cluster: this.cluster,
      appId: this.appId,
      log: this.log,
      admin: this.telemetry.admin,
      deadLetter: (service, method, transport) => this.telemetry.metrics?.deadLetter(service, method, transport),
      ...pick(options, ["discovery", "config", "transports", "leaseTtlMs", "maxPayloadBytes", "etcd", "stopGraceMs"]),
    });
    this.#board = new BreakerBoard(
      () => (this.#infra.isOpen ? this.#infra.registry : undefined),
      this.cluster,
      this.appId,
      options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS,
      this.log,
    );
    this.policy.on(this.#board.listener);
    this.#lifecycle = new Lifecycle(this.#served, this.#infra, options, this.log);
    this.#states = appStates(this, this.#infra, this.#served, options.states);
    this.#lifecycle.onSignal(() => this.stop());
  }

  /** Serves `handler` as an instance of `def` when the app starts. Returns the app, for chaining. */
  serve<H>(def: ServiceDefinition<H, unknown>, handler: H, opts: ServeOptions = {}): this {
    this.#lifecycle.assertNotStarted("serve");
    if (def === null || typeof def !== "object" || typeof def.descriptor !== "object")
      throw new FanError(Code.INVALID_ARGUMENT, "serve: expected a generated service definition");
    if (handler === null || typeof handler !== "object")
      throw new FanError(Code.INVALID_ARGUMENT, `serve ${def.descriptor.name}: the handler must be an object`);
    assertHandlerComplete(def.descriptor, handler);
    const transports = this.#serveTransports(def.descriptor, opts.transports);
    this.#states.checkServe(def.descriptor, transports);
    for (const t of transports) this.#servedOn.add(t);
    const instanceId = opts.instanceId ?? instanceIdFor(def.descriptor.name);
    if (this.#served.some((s) => s.instanceId === instanceId))
      throw new FanError(Code.ALREADY_EXISTS, `instance id ${instanceId} is already served by this app`);
    this.#served.push(
      new ServedInstance(
        def as ServiceDefinition<unknown, unknown>,
        handler as object,
        opts,
        instanceId,
        transports,
        this.#serveHost(),
        this.log,
      ),
    );
    return this;
  }

  /** The typed client of `def` (cached per definition and options without interceptors). */
  client<C>(def: ServiceDefinition<unknown, C>, opts: ClientOptions = {}): C {
    if (def === null || typeof def !== "object" || typeof def.createClient !== "function")
      throw new FanError(Code.INVALID_ARGUMENT, "client: expected a generated service definition");
    if (opts.interceptors !== undefined || opts.policy !== undefined || opts.headers !== undefined)
      return def.createClient(new Caller(this, def.descriptor, opts));
    const key = `${opts.version ?? ""}|${opts.strategy ?? ""}|${opts.transport ?? ""}|${opts.shardFallback ?? ""}`;
    let byOpts = this.#clients.get(def.descriptor);
    if (byOpts === undefined) {
      byOpts = new Map();
      this.#clients.set(def.descriptor, byOpts);
    }
    let c = byOpts.get(key);
    if (c === undefined) {
      const caller = new Caller(this, def.descriptor, opts);
      c = { client: def.createClient(caller), caller };
      byOpts.set(key, c);
    }
    return c.client as C;
  }

  /**
   * Drops the clients of `def` this App cached (`client()`, per definition: one that is no
   * longer used, e.g. the gateway's after a reload built new definitions) and detaches them
   * from discovery and the traffic rules; the next `client(def)` makes a new one. Only once no
   * call made on them runs: a call made on a released client fails FAILED_PRECONDITION.
   * Returns how many were released.
   */
  releaseClient(def: Pick<ServiceDefinition<unknown, unknown>, "descriptor">): number {
    const byOpts = this.#clients.get(def.descriptor);
    this.#clients.delete(def.descriptor);
    for (const c of byOpts?.values() ?? []) c.caller.close();
    return (byOpts?.size ?? 0) + this.#states.release(def.descriptor);
  }

  /** Publishes the events and states of a service this app serves. */
  publisher<C>(def: ServiceDefinition<unknown, C>): Publisher<C> {
    return new Publisher<C>(def.descriptor, this.#infra, this.#states.owners, this.log);
  }

  /** Runs `fn` from start until stop (its signal aborts on stop). */
  task(name: string, fn: (ctx: TaskContext) => unknown): this {
    this.#lifecycle.addTask({ name, kind: "task", run: fn });
    return this;
  }

  /** Runs `fn` every `intervalMs` from start until stop, never overlapping. */
  timer(name: string, intervalMs: number | string, fn: (ctx: TaskContext) => unknown): this {
    this.#lifecycle.addTimer(name, intervalMs, fn);
    return this;
  }

  /** Config, preStart, start (register, consume), postStart; rejects (and undoes) on failure. */
  start(): Promise<void> {
    const health = this.telemetry.health;
    if (health.phase !== "new") return this.#lifecycle.start();
    health.set("starting");
    const admin = this.#admin?.open();
    return Promise.all([admin, this.#lifecycle.start()]).then(
      async () => {
        await this.#serveHealth();
        health.set("running");
      },
      async (e: unknown) => {
        health.set("stopped");
        await this.#admin?.close();
        throw e;
      },
    );
  }

  /** Deregister, stop taking work, drain in-flight calls (up to the grace period), postStop. */
  stop(): Promise<void> {
    const health = this.telemetry.health;
    if (health.phase !== "stopped") health.set("stopping");
    const closeClients = async (): Promise<void> => {
      this.policy.close();
      await Promise.all([this.#closeClients(), this.#states.close(), this.#board.close()]);
      await this.#healthInstance?.unbind(0);
    };
    return this.#lifecycle.stop(closeClients).finally(async () => {
      health.set("stopped");
      await this.#admin?.close();
    });
  }

  /**
   * The built-in `fan.Health` instance, bound on the transports the App serves on once start finished (an App
   * that serves nothing has none). Kept out of the served list: no hooks, config or tasks.
   */
  async #serveHealth(): Promise<void> {
    if (!this.telemetry.healthService || this.#served.length === 0) return;
    const instance = new ServedInstance(
      HealthService as ServiceDefinition<unknown, unknown>,
      healthHandler(this.telemetry.health),
      {},
      `fan.Health-${this.appId}`,
      [...this.#servedOn],
      this.#serveHost(),
      this.log,
    );
    try {
      await instance.bind();
      this.#healthInstance = instance;
    } catch (e) {
      this.log.error({ err: e }, "fan.Health could not be served; /health and /ready still answer");
      await instance.unbind(0);
    }
  }

  /** The Prometheus text exposition of this App's metrics (what `GET /metrics` answers). */
  metrics(): Promise<string> {
    const m = this.telemetry.metrics;
    if (m === undefined)
      return Promise.reject(new FanError(Code.FAILED_PRECONDITION, "metrics are off (createApp({ telemetry }))"));
    return m.text();
  }

  /** The admin port's bound port number, once started (`createApp({ admin: { port: 0 } })`). */
  get adminPort(): number | undefined {
    return this.#admin?.port;
  }

  /** The App's local transport (tests and relays send raw envelopes through it). */
  get localTransport(): LocalTransport {
    return this.#infra.local;
  }

  /** Instances served by this app: service name → instance ids. */
  instances(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const s of this.#served) out[s.descriptor.name] = [...(out[s.descriptor.name] ?? []), s.instanceId];
    return out;
  }

  // ClientHost -------------------------------------------------------------------------------

  clientPolicy(service: ServiceDescriptor, opts: PolicyOptions | false | undefined): ReturnType<Policies["forClient"]> {
    return this.policy.forClient(service.name, opts);
  }

  ready(): Promise<void> | undefined {
    return this.#infra.isOpen ? undefined : this.#infra.open();
  }

  watch(service: string): Promise<InstanceSet> {
    return this.#infra.discovery.directory.watch(service);
  }

  /** The live traffic rule of `service` (`fanc route`), from the rules this App follows. */
  async traffic(service: string): Promise<ServiceTraffic> {
    this.#traffic ??= new TrafficRules(this.#infra.registry, this.cluster, this.log);
    const rules = this.#traffic;
    await rules.open();
    return { current: () => rules.rule(service), onChange: (fn) => rules.onChange(service, fn) };
  }

  reach(...args: Parameters<Infra["reach"]>): ReturnType<Infra["reach"]> {
    return this.#infra.reach(...args);
  }

  transportNames(): readonly string[] {
    return this.#infra.names();
  }

  parked(...args: Parameters<Infra["parked"]>): ReturnType<Infra["parked"]> {
    return this.#infra.parked(...args);
  }

  inFlight(instanceId: string): number {
    return this.#inflight.get(instanceId) ?? 0;
  }

  /** True once `stop` has finished (ClientHost: a refused call then names the stop as its reason). */
  stopped(): boolean {
    return this.telemetry.health.phase === "stopped";
  }

  acquire(instanceId: string): () => void {
    this.#inflight.set(instanceId, (this.#inflight.get(instanceId) ?? 0) + 1);
    return () => this.#inflight.set(instanceId, (this.#inflight.get(instanceId) ?? 1) - 1);
  }

  async subscribe(
    service: ServiceDescriptor,
    event: string,
    fn: (event: unknown) => void | Promise<void>,
  ): Promise<Subscription> {
    await this.ready();
    const sub = await this.publisher({ descriptor: service, createClient: () => undefined }).listen(
      event,
      fn,
      `${service.name}.client.${this.appId}.${shortId()}`,
    );
    this.#clientSubs.add(sub);
    return {
      unsubscribe: async () => {
        this.#clientSubs.delete(sub);
        await sub.unsubscribe();
      },
    };
  }

  /** The handle of a state of `service` (`client.states.x`); `opts` sets how its watches receive updates. */
  state(
    service: ServiceDescriptor,
    name: string,
    opts?: StateWatchOptions,
  ): StateHandle<unknown> | ShardedStateHandle<unknown> {
    return this.#states.handle(service, name, opts);
  }

  // -------------------------------------------------------------------------------------------

  async #closeClients(): Promise<void> {
    const subs = [...this.#clientSubs];
    this.#clientSubs.clear();
    await Promise.allSettled(subs.map((s) => s.unsubscribe()));
    await this.#traffic?.close();
  }

  #serveTransports(d: ServiceDescriptor, asked: readonly TransportName[] | undefined): readonly TransportName[] {
    const allowed = (n: TransportName): boolean => n === "local" || d.transports.includes(n);
    if (asked === undefined) return this.#infra.names().filter(allowed);
    const bad = asked.filter((n) => !allowed(n));
    if (bad.length > 0)
      throw new FanError(
        Code.INVALID_ARGUMENT,
        `${d.name} may not be served over ${bad.join(", ")} (its @transports: ${d.transports.join(", ")})`,
      );
    const missing = asked.filter((n) => !this.#infra.names().includes(n));
    if (missing.length > 0)
      throw new FanError(
        Code.INVALID_ARGUMENT,
        `${d.name}: this app has no ${missing.join(", ")} transport; add it to createApp({ transports })`,
      );
    return asked.includes("local") ? asked : ["local", ...asked];
  }

  #serveHost(): ServeHost {
    const infra = this.#infra;
    const lc = this.#lifecycle;
    return {
      appId: this.appId,
      cluster: this.cluster,
      counters: this.counters,
      // Off entirely (createApp({ telemetry: false })): dispatchers then wrap no sink per call.
      ...(this.telemetry.metrics === undefined && !this.telemetry.tracing ? {} : { telemetry: this.telemetry }),
      hardStop: lc.hardStop,
      stopping: lc.stopping,
      uniqueWaitMs: this.#options.uniqueWaitMs ?? 2000,
      revealErrors: this.#options.revealErrors === true,
      transport: (n) => infra.transport(n),
      eventTransport: (s) => infra.eventTransport(s),
      eventTransportName: (s) => infra.eventTransportName(s),
      eventCarriers: () => infra.eventCarriers(),
      directory: () => infra.discovery.directory,
      registry: () => infra.registry,
      configSource: () => infra.config,
      client: (def) => this.client(def),
      publisher: (descriptor) => this.publisher({ descriptor, createClient: () => undefined }),
      states: this.#states.owners,
      gate: (service, instanceId, opts) => serverGate(service, instanceId, opts, this),
    };
  }
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): { [P in K]?: Exclude<T[P], undefined> } {
  const out: { [P in K]?: Exclude<T[P], undefined> } = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k] as Exclude<T[K], undefined>;
  return out;
}
