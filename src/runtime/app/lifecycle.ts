/**
 * The App's lifecycle, in order and each step awaited. Start: open discovery and transports,
 * load and validate every service's config, wait for hard dependencies, `preStart`, `start`
 * (handler hook, then serve, subscribe, register), `postStart`, then tasks and timers. Stop:
 * cancel tasks, deregister and stop taking work, drain in-flight calls up to the grace
 * period, `stop`, `postStop`, close. SIGINT/SIGTERM stop gracefully, from the first step of
 * start on (a signal during start cancels it); a second signal exits.
 */
import type { Logger } from "pino";
import semver from "semver";
import type { Infra } from "./infra.js";
import type { AppOptions } from "./app.js";
import { Code, FanError } from "../errors.js";
import type { HookName, ServedInstance } from "../call/served.js";
import type { InstanceInfo } from "../discovery/types.js";
import { TaskRunner, parseInterval, tasksOf, type TaskContext, type TaskSpec } from "./tasks.js";
import { untilAborted } from "../transports/abort.js";
import { flushDropWarnings } from "../telemetry/drops.js";
import { eventProblems, untilReachable, type Wanted } from "./dependencies.js";

type State = "new" | "starting" | "running" | "stopping" | "stopped" | "failed";

const STOPPED_WHILE_STARTING = (): FanError =>
  new FanError(Code.CANCELLED, "the app cannot start: it was stopped while starting");

/** Runs start and stop for one App. */
export class Lifecycle {
  readonly #stopping = new AbortController();
  readonly #hardStop = new AbortController();
  readonly #served: ServedInstance[];
  readonly #infra: Infra;
  readonly #options: AppOptions;
  readonly #log: Logger;
  readonly #tasks: TaskSpec[] = [];
  readonly #runner: TaskRunner;
  readonly #preStarted = new Set<ServedInstance>();
  #state: State = "new";
  #starting: Promise<void> | undefined;
  #stoppingP: Promise<void> | undefined;
  #signals: (() => void) | undefined;
  /** A signal came: the process exits once the stop it began is done. */
  #signalled = false;
  /** The start hook running now (settled: its rejection is handled); a stop waits for it. */
  #inHook: Promise<void> = Promise.resolve();
  /** The start failed by itself, not cancelled by a stop: a signal's stop then exits 1. */
  #failure: { error: unknown } | undefined;
  /** What every `start()` call gets: the start, held back once a signal came (see start). */
  #started: Promise<void> | undefined;
  /** Called when `process.exit` returns after a signal's stop (stubbed: a test harness). */
  #exitReturned: () => void = () => undefined;
  readonly #afterExit = new Promise<void>((resolve) => {
    this.#exitReturned = resolve;
  });

  constructor(served: ServedInstance[], infra: Infra, options: AppOptions, log: Logger) {
    this.#served = served;
    this.#infra = infra;
    this.#options = options;
    this.#log = log;
    this.#runner = new TaskRunner(log);
  }

  /** Aborted when stop begins. */
  get stopping(): AbortSignal {
    return this.#stopping.signal;
  }

  /** Aborted when the grace period of stop is over. */
  get hardStop(): AbortSignal {
    return this.#hardStop.signal;
  }

  /** Throws when the app has started (serving and tasks must be declared before start). */
  assertNotStarted(what: string): void {
    if (this.#state !== "new")
      throw new FanError(Code.FAILED_PRECONDITION, `${what}: the app has already been started`);
  }

  addTask(spec: TaskSpec): void {
    this.assertNotStarted(`task ${spec.name}`);
    this.#tasks.push(spec);
  }

  addTimer(name: string, interval: number | string, run: (ctx: TaskContext) => unknown): void {
    this.addTask({ name, kind: "timer", intervalMs: parseInterval(interval), run });
  }

  start(): Promise<void> {
    if (this.#state !== "new")
      return (
        this.#started ??
        Promise.reject(new FanError(Code.FAILED_PRECONDITION, `the app cannot start: it is ${this.#state}`))
      );
    this.#state = "starting";
    if (this.#options.handleSignals === true) this.#installSignals();
    this.#starting = this.#start().then(
      () => {
        this.#state = "running";
      },
      async (e: unknown) => {
        // Not cancelled by a stop: a signal during the teardown must not make this an exit 0.
        if (!this.#stopping.signal.aborted) this.#failure = { error: e };
        await this.#teardown();
        this.#state = "failed";
        if (!this.#signalled) this.#signals?.();
        throw e;
      },
    );
    // After a signal the App ends the process once its stop is done, so no caller's
    // `await app.start()` may reject (exit 1) or go on before: every call gets this promise,
    // which settles then only if `process.exit` returns (a harness that stubs it).
    this.#started = this.#starting.catch((e: unknown) =>
      this.#signalled ? this.#afterExit.then(() => Promise.reject(e)) : Promise.reject(e),
    );
    return this.#started;
  }

  stop(closeClients: () => Promise<void>): Promise<void> {
    if (this.#stoppingP !== undefined) return this.#stoppingP;
    this.#stoppingP = this.#stop(closeClients);
    return this.#stoppingP;
  }

  async #start(): Promise<void> {
    const cancelled = (): void => this.#stopping.signal.throwIfAborted();
    // What waits on brokers and discovery (a transport's connection, up to its connectTimeoutMs)
    // ends at a stop: the start rejects and its teardown closes what the wait was for.
    const orStop = <T>(p: Promise<T>): Promise<T> => untilAborted(p, this.#stopping.signal);
    this.#checkEvents();
    await orStop(this.#infra.open());
    this.#sortByDependencies();
    await orStop(this.#loadConfigs());
    await this.#waitForDependencies();
    cancelled();
    await this.#hooks("preStart", (s) => this.#preStarted.add(s));
    for (const s of this.#served) {
      cancelled();
      await orStop(s.resumeStates());
      await this.#startHook(s, "start");
      await orStop(s.bind());
    }
    cancelled();
    await this.#hooks("postStart");
    cancelled();
    for (const spec of this.#tasks) this.#runner.start(spec);
    for (const s of this.#served)
      for (const spec of tasksOf(s.handler)) this.#runner.start({ ...spec, name: `${s.descriptor.name}.${spec.name}` });
    this.#log.info({ services: this.#served.map((s) => s.descriptor.name) }, "app started");
  }

  async #stop(closeClients: () => Promise<void>): Promise<void> {
    const wasRunning = this.#state === "running" || this.#state === "starting";
    // A stop during start cancels it: waiting for dependencies or an election ends now, the
    // start rejects and undoes itself, instead of the stop waiting out dependencyTimeoutMs.
    if (this.#state === "starting") this.#stopping.abort(STOPPED_WHILE_STARTING());
    await this.#starting?.catch(() => undefined);
    if (this.#state === "failed" || this.#state === "new") {
      this.#state = "stopped";
      await closeClients();
      await this.#infra.close();
      this.#signals?.();
      if (wasRunning) this.#log.info("app stopped while starting");
      return;
    }
    this.#state = "stopping";
    this.#stopping.abort(new FanError(Code.UNAVAILABLE, "the app is stopping"));
    const grace = this.#options.stopGraceMs ?? 10_000;
    // Every step runs even when an earlier one fails, so a failing transport close or
    // deregistration never leaves the app half-stopped with its signal handlers installed;
    // the first failure is logged and rethrown once everything else is done.
    const failures: unknown[] = [];
    const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (e) {
        this.#log.error({ err: e }, `stop: ${what} failed`);
        failures.push(e);
      }
    };
    await step("stopping tasks", () => this.#runner.stop(grace));
    await Promise.all(this.#served.map((s) => step(`unbinding ${s.descriptor.name}`, () => s.unbind(grace))));
    this.#hardStop.abort(new FanError(Code.UNAVAILABLE, "the app stopped"));
    await this.#hooks("stop", undefined, true);
    await this.#hooks("postStop", undefined, true);
    await step("closing clients", closeClients);
    await step("closing transports and discovery", () => this.#infra.close());
    // Drops counted behind the warnings' rate limit and not yet summarized: their line now.
    flushDropWarnings();
    this.#state = "stopped";
    this.#signals?.();
    if (wasRunning) this.#log.info(failures.length === 0 ? "app stopped" : "app stopped with errors");
    if (failures.length > 0) throw FanError.from(failures[0]);
  }

  /**
   * Undoes a failed start: unbinds, calls stop hooks of services whose preStart ran, closes.
   * A start cancelled by a stop (a signal, `stop()`) is stopped as a running app is: what it
   * serves deregisters at once and drains for up to the grace period, and a hook it was in
   * (a slow `postStart`, its `ctx.signal` aborted) gets the rest of that period to end before
   * the stop hooks run; what the start never reached is not undone.
   */
  async #teardown(): Promise<void> {
    const stopped = this.#stopping.signal.aborted;
    const graceMs = stopped ? (this.#options.stopGraceMs ?? 10_000) : 0;
    const deadline = Date.now() + graceMs;
    this.#stopping.abort(new FanError(Code.UNAVAILABLE, "the app failed to start"));
    await this.#runner.stop(1000);
    await Promise.allSettled(this.#served.map((s) => s.unbind(graceMs)));
    if (!(await settlesWithin(this.#inHook, deadline - Date.now())))
      this.#log.warn({ graceMs }, "a start hook still runs after the grace period; stopping anyway");
    this.#hardStop.abort(new FanError(Code.UNAVAILABLE, "the app failed to start"));
    for (const s of this.#preStarted) {
      await s.hook("stop").catch((e: unknown) => s.log.error({ err: e }, "stop hook failed"));
      await s.hook("postStop").catch((e: unknown) => s.log.error({ err: e }, "postStop hook failed"));
    }
    await this.#infra.close();
  }

  /**
   * One hook of start, which a stop does not wait for: the start rejects with the stop's reason
   * and the teardown waits for the hook (it has `ctx.signal`) within the grace period.
   */
  #startHook(s: ServedInstance, name: HookName, after?: (s: ServedInstance) => void): Promise<void> {
    const run = s.hook(name).then(() => after?.(s));
    this.#inHook = run.catch(() => undefined);
    return untilAborted(run, this.#stopping.signal);
  }

  async #hooks(name: HookName, after?: (s: ServedInstance) => void, tolerant = false): Promise<void> {
    const order = tolerant ? [...this.#served].reverse() : this.#served;
    for (const s of order) {
      try {
        if (tolerant) {
          await s.hook(name);
          after?.(s);
        } else await this.#startHook(s, name, after);
      } catch (e) {
        if (!tolerant && e === this.#stopping.signal.reason) throw e; // a stop cut the start short
        if (!tolerant)
          throw new FanError(Code.FAILED_PRECONDITION, `${s.descriptor.name} ${name} failed: ${(e as Error).message}`, {
            cause: e,
          });
        s.log.error({ err: e }, `${name} hook failed`);
      }
    }
  }

  async #loadConfigs(): Promise<void> {
    const problems: string[] = [];
    const causes: unknown[] = [];
    for (const s of this.#served) {
      try {
        await s.loadConfig();
      } catch (e) {
        problems.push(e instanceof Error ? e.message : String(e));
        causes.push(e);
      }
    }
    if (problems.length === 0) return;
    const details = causes.map((c) => (FanError.is(c) ? c.details : undefined));
    throw new FanError(Code.FAILED_PRECONDITION, `the app cannot start: ${problems.join("; ")}`, {
      cause: causes[0],
      details,
    });
  }

  async #waitForDependencies(): Promise<void> {
    const timeout = this.#options.dependencyTimeoutMs ?? 30_000;
    const wanted = new Map<string, { service: string; range: string; by: string[] }>();
    for (const s of this.#served) {
      for (const d of s.descriptor.depends) {
        if (d.soft || this.#servedHere(d.service, d.range)) continue;
        const key = `${d.service} ${d.range}`;
        const w = wanted.get(key) ?? { service: d.service, range: d.range, by: [] };
        w.by.push(s.descriptor.name);
        wanted.set(key, w);
      }
    }
    if (wanted.size === 0) return;
    const dir = this.#infra.discovery.directory;
    const list = [...wanted.values()];
    this.#log.info({ dependencies: list.map((w) => `${w.service} ${w.range}`) }, "waiting for hard dependencies");
    const deadline = Date.now() + timeout;
    const signal = this.#stopping.signal;
    const host = {
      reaches: (i: InstanceInfo): boolean => this.#infra.reach(i, undefined) !== undefined,
      network: this.#infra.network,
      log: this.#log,
    };
    // Registered, then reachable: an instance that shares no transport with this App is waited
    // past (with a warning naming both sides) as an absent one is, until the same deadline.
    const unreachable = new Set<Wanted>();
    const reachable = async (w: Wanted): Promise<void> => {
      await dir.waitFor(w.service, w.range, timeout, signal);
      const set = await dir.watch(w.service);
      try {
        await untilReachable(set, w, host, deadline, signal);
      } catch (e) {
        if (!signal.aborted) unreachable.add(w);
        throw e;
      }
    };
    const results = await Promise.allSettled(list.map(reachable));
    signal.throwIfAborted();
    const missing = list.flatMap((w, i) => {
      const r = results[i] as PromiseSettledResult<void>;
      if (r.status === "fulfilled") return [];
      const within = unreachable.has(w) ? `no instance this app can reach within ${timeout} ms: ` : "";
      return [`${w.service} ${w.range} (needed by ${w.by.join(", ")}): ${within}${(r.reason as Error).message}`];
    });
    if (missing.length > 0) {
      const what =
        unreachable.size === 0
          ? "not discoverable"
          : unreachable.size === missing.length
            ? "not reachable"
            : "not discoverable or not reachable";
      throw new FanError(Code.UNAVAILABLE, `the app cannot start: hard dependencies ${what}: ${missing.join("; ")}`, {
        details: {
          missing: list
            .filter((_, i) => results[i]?.status === "rejected")
            .map((w) => ({
              service: w.service,
              range: w.range,
              neededBy: w.by,
              ...(unreachable.has(w) ? { unreachable: true } : {}),
            })),
        },
      });
    }
  }

  /**
   * Events that could never travel between processes, said before anything starts. An `on`
   * subscription that could never receive fails the start (as it would at bind); a service
   * whose declared events no transport of this App carries is warned about, once per service,
   * naming its events, this App's transports and what would carry them: it may be served for
   * its calls alone (a replica for reads, a test of calls), but each `emit` of it fails with
   * FAILED_PRECONDITION, after the handler's own effects (docs/decisions.md).
   */
  #checkEvents(): void {
    const { emits, subscribes } = eventProblems(
      this.#served.map((s) => s.descriptor),
      (d) => this.#infra.eventTransportName(d),
    );
    for (const e of emits)
      this.#log.warn(
        { service: e.service, events: e.events, transports: this.#infra.network },
        `${e.service} emits ${e.events.join(", ")}, but ${e.why}. Until then every emit of them fails with FAILED_PRECONDITION, after its handler's own effects`,
      );
    if (subscribes.length > 0)
      throw new FanError(Code.FAILED_PRECONDITION, `the app cannot start: ${subscribes.join("; ")}`);
  }

  #servedHere(service: string, range: string): boolean {
    return this.#served.some((s) => s.descriptor.name === service && semver.satisfies(s.descriptor.version, range));
  }

  /** Orders served instances so that a locally served hard dependency starts first. */
  #sortByDependencies(): void {
    const out: ServedInstance[] = [];
    const seen = new Set<ServedInstance>();
    const visit = (s: ServedInstance): void => {
      if (seen.has(s)) return;
      seen.add(s);
      for (const d of s.descriptor.depends) {
        if (d.soft) continue;
        for (const t of this.#served) if (t.descriptor.name === d.service) visit(t);
      }
      out.push(s);
    };
    for (const s of this.#served) visit(s);
    this.#served.splice(0, this.#served.length, ...out);
  }

  /** Installed when start begins, so a signal during start stops what has started (and exits 0). */
  #installSignals(): void {
    const onSignal = (sig: NodeJS.Signals): void => {
      if (this.#signalled) {
        this.#log.warn({ signal: sig }, "second signal: exiting now");
        process.exit(130);
      }
      this.#signalled = true;
      const what =
        this.#failure !== undefined
          ? "while a failed start is undone: exiting 1 once it is"
          : `${this.#state === "starting" ? "while starting: " : ""}stopping gracefully`;
      this.#log.info({ signal: sig }, `signal received ${what} (send it again to exit at once)`);
      void this.#stopFromSignal();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    this.#signals = () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    };
  }

  #stopFromSignal: () => Promise<void> = async () => undefined;

  /** Wires the graceful stop a signal triggers (the App passes its own `stop`). */
  onSignal(stop: () => Promise<void>): void {
    this.#stopFromSignal = async () => {
      let code = 0;
      try {
        await stop();
      } catch (e) {
        this.#log.error({ err: e }, "stop failed");
        code = 1;
      }
      if (this.#failure !== undefined) {
        // Failed before the signal came: still a failure, for a supervisor that restarts on one.
        this.#log.error({ err: this.#failure.error }, "the app failed to start");
        code = 1;
      }
      try {
        process.exit(code);
      } finally {
        this.#exitReturned();
      }
    };
  }
}

/** Whether `p` settles within `ms` (≤ 0: only if it already has, this tick). */
async function settlesWithin(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([p.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}
